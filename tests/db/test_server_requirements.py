"""check_pgvector against the real test server: it passes a migrated database, feeds the server's own
versions to pgvector_refusal, and refuses a database where pgvector is not created yet.

Each refusal's wording for an old PostgreSQL or pgvector is tested in tests/unit/test_server_requirements.py
(a real server cannot be made to report an older version)."""

import psycopg
import pytest

from gmv_sql.db.connect import MIN_PGVECTOR, check_pgvector, parse_version, pgvector_versions
from gmv_sql.errors import DatabaseError


def test_check_pgvector_passes_the_test_server(db_url):
    with psycopg.connect(db_url, autocommit=True) as conn:
        installed, available = pgvector_versions(conn)
        assert installed is not None and parse_version(installed) >= MIN_PGVECTOR
        assert check_pgvector(conn) == installed
        # The server's real versions, not constants: libpq's number and SHOW server_version agree.
        shown = conn.execute("SHOW server_version").fetchone()[0]
        assert parse_version(shown)[:1] == (conn.info.server_version // 10000,)


def test_database_without_the_extension_is_refused_unless_gmv_db_up_asks(empty_db_url):
    with psycopg.connect(empty_db_url, autocommit=True) as conn:
        installed, available = pgvector_versions(conn)
        assert installed is None and available is not None
        assert check_pgvector(conn, allow_missing=True) is None
        with pytest.raises(
            DatabaseError, match=r"is not set up for gmv \(no vector extension yet\); run `gmv db up`"
        ):
            check_pgvector(conn)
