"""Where gmv keeps its state and which database it talks to."""

from __future__ import annotations

import os
from pathlib import Path

from gmv_sql.errors import ConfigError

DATABASE_URL_ENV_VARS = ("GMV_DATABASE_URL", "DATABASE_URL")


def gmv_home() -> Path:
    """GMV_HOME (default ~/.gmv): the embedded server's data directory lives here."""
    raw = os.environ.get("GMV_HOME") or "~/.gmv"
    home = Path(raw).expanduser()
    if home.exists() and not home.is_dir():
        raise ConfigError(f"GMV_HOME={raw!r} is a file, not a folder; point GMV_HOME at a folder")
    return home


def external_database_url(cli_url: str | None) -> str | None:
    """--database-url, then GMV_DATABASE_URL, then DATABASE_URL; None means use the embedded server."""
    if cli_url:
        return cli_url
    for var in DATABASE_URL_ENV_VARS:
        value = os.environ.get(var)
        if value:
            return value
    return None


def default_workers(limit: int, cores_per_worker: int = 1) -> int:
    """Workers for a stage: one per `cores_per_worker` cores of this machine, at least 1, at most `limit`."""
    return max(1, min(limit, (os.cpu_count() or 1) // cores_per_worker))
