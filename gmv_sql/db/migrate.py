"""Runs the alembic migrations in migrations/ against a database URL (used by `gmv db up` and the tests)."""

from __future__ import annotations

import psycopg
from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine
from sqlalchemy.pool import NullPool

from gmv_sql.db.connect import check_pgvector, connect
from gmv_sql.errors import DatabaseError
from gmv_sql.resources import migrations_dir, query


def _config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(migrations_dir()))
    return cfg


def head_revision() -> str:
    return ScriptDirectory.from_config(_config()).get_current_head()


def current_revision(conn: psycopg.Connection) -> str | None:
    if not conn.execute(query("db", "has_alembic_version")).fetchone()[0]:
        return None
    row = conn.execute(query("db", "alembic_version")).fetchone()
    return row[0] if row else None


def _run(url: str, action, revision: str) -> None:
    # Fail early, with the one-line pgvector message, before alembic starts.
    with connect(url, register_vector=False) as conn:
        check_pgvector(conn, allow_missing=True)
    engine = create_engine("postgresql+psycopg://", creator=lambda: psycopg.connect(url), poolclass=NullPool)
    try:
        with engine.connect() as connection:
            cfg = _config()
            cfg.attributes["connection"] = connection
            action(cfg, revision)
            connection.commit()
    except psycopg.Error as exc:
        raise DatabaseError(f"migration to {revision} failed: {str(exc).splitlines()[0]}") from exc
    except Exception as exc:  # sqlalchemy wraps driver errors
        orig = getattr(exc, "orig", None)
        if isinstance(orig, psycopg.Error):
            raise DatabaseError(f"migration to {revision} failed: {str(orig).splitlines()[0]}") from exc
        raise
    finally:
        engine.dispose()


def upgrade(url: str, revision: str = "head") -> None:
    _run(url, command.upgrade, revision)


def downgrade(url: str, revision: str) -> None:
    _run(url, command.downgrade, revision)


def ensure_at_head(url: str, *, auto_upgrade: bool) -> None:
    """Raise unless the schema is at head; with auto_upgrade (embedded server) migrate instead."""
    with connect(url, register_vector=False) as conn:
        current = current_revision(conn)
    head = head_revision()
    if current == head:
        return
    if auto_upgrade:
        upgrade(url)
        return
    shown = current or "an empty schema"
    raise DatabaseError(f"the database is at {shown}, gmv needs migration {head}; run `gmv db up`")
