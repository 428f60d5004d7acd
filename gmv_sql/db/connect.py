"""Connections: which database, pgvector checks, and type registration (once per connection)."""

from __future__ import annotations

import re

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from gmv_sql.config import external_database_url
from gmv_sql.errors import DatabaseError
from gmv_sql.resources import query

MIN_PGVECTOR = (0, 8, 0)
MIN_SERVER_VERSION = 160000


def database_url(cli_url: str | None = None) -> str:
    """The URL gmv uses: --database-url > GMV_DATABASE_URL > DATABASE_URL > the embedded server."""
    url = external_database_url(cli_url)
    if url:
        return normalise_url(url)
    from gmv_sql.db import embedded

    return embedded.ensure_running()


def is_embedded(cli_url: str | None = None) -> bool:
    return external_database_url(cli_url) is None


def normalise_url(url: str) -> str:
    # SQLAlchemy-style URLs ("postgresql+psycopg://") are common in .env files; libpq wants plain ones.
    return re.sub(r"^postgres(?:ql)?\+\w+://", "postgresql://", url)


_SECRET_QUERY_PARAM = re.compile(r"([?&](?:ssl)?password=)[^&#]*", re.IGNORECASE)


def mask_password(url: str) -> str:
    """The URL with any password replaced by ***, for printing.

    Errs on the side of hiding: a password may hold unescaped '@', '/' or '?' (libpq rejects some of
    those, but the text must not leak before it does), and libpq also reads ?password= / ?sslpassword=.
    """
    if "://" in url:
        scheme, rest = url.split("://", 1)
        rest = _SECRET_QUERY_PARAM.sub(lambda m: m.group(1) + "***", rest)
        # userinfo ends at the last '@' before the query; if none is there, the password itself holds
        # a '?', and it ends at the last '@' of all.
        query_at = rest.find("?")
        head = rest if query_at < 0 else rest[:query_at]
        at = head.rfind("@")
        if at < 0 and query_at >= 0 and ":" in head and "/" not in head:
            at = rest.rfind("@")
        if at >= 0 and ":" in rest[:at]:
            user = rest[: rest.index(":")]
            rest = f"{user}:***{rest[at:]}" if at > len(user) + 1 else rest
        return f"{scheme}://{rest}"
    try:
        params = conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        return url
    for key in ("password", "sslpassword"):
        if params.get(key):
            params[key] = "***"
    return make_conninfo(**params)


def parse_version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", text)[:3])


def pgvector_versions(conn: psycopg.Connection) -> tuple[str | None, str | None]:
    """(installed in this database, available on the server)."""
    row = conn.execute(query("db", "pgvector_versions")).fetchone()
    return row[0], row[1]


def check_pgvector(conn: psycopg.Connection, *, allow_missing: bool = False) -> str | None:
    """Raise a one-line DatabaseError unless pgvector >= 0.8 is usable; return the installed version."""
    where = f"database {conn.info.dbname!r} on {conn.info.host or 'localhost'}"
    installed, available = pgvector_versions(conn)
    reason = pgvector_refusal(
        where, conn.info.server_version, installed, available, allow_missing=allow_missing
    )
    if reason:
        raise DatabaseError(reason)
    return installed


def pgvector_refusal(
    where: str,
    server_version: int,
    installed: str | None,
    available: str | None,
    *,
    allow_missing: bool = False,
) -> str | None:
    """Why gmv cannot use this server (one line), or None. server_version as libpq gives it (170002);
    installed/available: pgvector's version in this database / on the server, None when absent."""
    if installed is None and available is None:
        return (
            f"{where} has no pgvector extension; install pgvector >= 0.8 on that server "
            "(or use the pgvector/pgvector:pg17 image of docker-compose.yml), or unset GMV_DATABASE_URL "
            "to use the embedded server"
        )
    if server_version < MIN_SERVER_VERSION:
        return (
            f"{where} runs PostgreSQL {server_version // 10000}, gmv needs 16 or newer "
            "(vector columns stored inline); upgrade the server or unset GMV_DATABASE_URL to use the embedded one"
        )
    version = installed or available
    if parse_version(version) < MIN_PGVECTOR:
        return (
            f"{where} has pgvector {version}, gmv needs >= 0.8 (iterative index scans); install pgvector 0.8+ "
            "and run ALTER EXTENSION vector UPDATE as a superuser"
        )
    if installed is None and not allow_missing:
        return f"{where} is not set up for gmv (no vector extension yet); run `gmv db up`"
    return None


def connect(
    url: str, *, autocommit: bool = True, register_vector: bool = True, **kwargs
) -> psycopg.Connection:
    """Open a psycopg connection; with register_vector, check pgvector and register its types.

    The gmv convention: connections autocommit, and a transaction is opened explicitly with
    conn.transaction() where statements must commit together (a real BEGIN … COMMIT, not a savepoint).
    """
    try:
        conn = psycopg.connect(url, autocommit=autocommit, connect_timeout=15, **kwargs)
    except psycopg.OperationalError as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DatabaseError(
            f"cannot connect to {mask_password(url)}: {reason}; check --database-url / GMV_DATABASE_URL"
        ) from exc
    try:
        if register_vector:
            check_pgvector(conn)
            _register(conn)
        if not autocommit:
            # End the transaction the checks opened, so the caller's conn.transaction() is a real
            # transaction that commits, not a savepoint inside ours.
            conn.commit()
    except BaseException:
        conn.close()
        raise
    return conn


def _register(conn: psycopg.Connection) -> None:
    from pgvector.psycopg import register_vector

    register_vector(conn)
