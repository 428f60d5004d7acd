"""`gmv db reset`: empties every gmv table in one transaction, keeps the schema, asks for --yes."""

from __future__ import annotations

import pytest

from gmv_sql.db import catalog
from gmv_sql.db.migrate import current_revision, head_revision
from tests.factories import seed

VECTOR_TABLES = "SELECT count(*) FROM pg_tables WHERE schemaname = 'gmv' AND tablename ~ '^(training|generated)_embedding_'"


def _counts(conn) -> dict[str, int]:
    tables = (*catalog.DATA_TABLES, *catalog.CREDIT_TABLES)
    return {t: conn.execute(f"SELECT count(*) FROM gmv.{t}").fetchone()[0] for t in tables}


@pytest.fixture
def valued(gmv, conn):
    """A database with rows in every data table and every credit table."""
    seed(conn, n_training=20, n_generated=5, dim=4)
    gmv("match", "--space", "test", "--k", "3")
    gmv("value", "refresh")
    gmv("report", "royalties", "--period", "2026-01", "--pool", "100.00")
    gmv("license", "set", "paid", "--url", "https://example.org/paid")  # a row in gmv.rights_change
    # An owner's login (gmv db grant-owner creates the role too; the row is what reset must empty).
    conn.execute(
        "INSERT INTO gmv.owner_login (role_name, owner_id) SELECT 'gmv_owner_x', min(owner_id) FROM gmv.owner"
    )
    conn.execute("UPDATE gmv.generated_image SET quality = 2")  # a change the refresh has not seen yet
    counts = _counts(conn)
    assert all(counts.values()), counts
    assert conn.execute(VECTOR_TABLES).fetchone()[0] == 2
    return counts


def test_refuses_without_yes_and_keeps_the_data(gmv, conn, valued):
    result = gmv("db", "reset", ok=False)
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 1 and len(lines) == 1, result.output
    assert "add --yes" in lines[0] and "20 training_image" in lines[0], lines[0]
    assert _counts(conn) == valued
    assert conn.execute(VECTOR_TABLES).fetchone()[0] == 2


def test_reset_deletes_all_data_keeps_the_schema_and_a_second_reset_is_a_no_op(gmv, conn, valued):
    out = gmv("db", "reset", "--yes").output
    assert "deleted all gmv data" in out and "20 training_image" in out and "space test" in out, out
    assert set(_counts(conn).values()) == {0}
    assert conn.execute(VECTOR_TABLES).fetchone()[0] == 0
    assert conn.execute("SELECT count(*) FROM report.owner_value").fetchone()[0] == 0
    # The schema stays at head, with its valuation schemes.
    assert current_revision(conn) == head_revision()
    assert conn.execute("SELECT count(*) FROM gmv.valuation_scheme").fetchone()[0] == 5

    again = gmv("db", "reset", "--yes").output
    assert "holds no gmv data: nothing deleted" in again, again
    assert current_revision(conn) == head_revision()

    # The emptied database takes the pipeline again, from identity 1.
    world = seed(conn, n_training=10, n_generated=3, dim=4)
    assert world["space"].space_id == 1 and min(world["training_ids"]) == 1
    gmv("match", "--space", "test", "--k", "3")
    gmv("value", "refresh")
    assert conn.execute("SELECT count(*) FROM gmv.match").fetchone()[0] == 9


def test_a_failed_reset_deletes_nothing(gmv, conn, valued):
    # A table that is not gmv's references gmv.owner: TRUNCATE refuses, and the whole reset rolls back.
    conn.execute("CREATE TABLE public.invoice (owner_id bigint REFERENCES gmv.owner)")
    result = gmv("db", "reset", "--yes", ok=False)
    assert result.exit_code == 1
    assert "nothing deleted" in result.output and '"invoice" references "owner"' in result.output, (
        result.output
    )
    assert _counts(conn) == valued
    assert conn.execute(VECTOR_TABLES).fetchone()[0] == 2
