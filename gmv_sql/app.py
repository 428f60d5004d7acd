"""What every CLI command shares: the chosen database, opened lazily and migrated before use."""

from __future__ import annotations

from dataclasses import dataclass, field

import click
import psycopg

from gmv_sql.db import connect as dbconnect


@dataclass
class App:
    cli_database_url: str | None = None
    _url: str | None = field(default=None, repr=False)
    _checked: bool = field(default=False, repr=False)

    @property
    def embedded(self) -> bool:
        return dbconnect.is_embedded(self.cli_database_url)

    @property
    def url(self) -> str:
        """The database URL (starting the embedded server if that is the one in use)."""
        if self._url is None:
            self._url = dbconnect.database_url(self.cli_database_url)
        return self._url

    def ensure_schema(self) -> None:
        """The schema must be at head; the embedded server (ours alone) is migrated automatically."""
        if not self._checked:
            from gmv_sql.db.migrate import ensure_at_head

            ensure_at_head(self.url, auto_upgrade=self.embedded)
            self._checked = True

    def connect(self, *, autocommit: bool = True) -> psycopg.Connection:
        """A connection to the migrated database; autocommit unless asked (open transactions with
        conn.transaction()). Stages that open their own connections (workers) take this method."""
        self.ensure_schema()
        return dbconnect.connect(self.url, autocommit=autocommit)


pass_app = click.make_pass_decorator(App, ensure=True)
