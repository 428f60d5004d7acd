"""Migrations on a populated database: downgrading the derived objects (0002 -> 0001) and upgrading
again keeps every stored row, byte for byte, and the report views come back with the same answers."""

from __future__ import annotations

import psycopg
import pytest

from gmv_sql.db.migrate import current_revision, downgrade, head_revision, upgrade
from tests.factories import HOSTILE_NAMES, fingerprints, query_fingerprint, reader_url, relations, seed

pytestmark = pytest.mark.timeout(120)


# Created after 0001 with data a downgrade to 0001 cannot keep (0007: the rights log; the match
# coverage, which the upgrade rebuilds from the stored vectors).
LATER_TABLES = {"match_coverage", "rights_change"}
LATER_VIEWS = {"rights_change"}


# Columns of 0001's tables that later revisions added are left out (0007: opted_out_from).
TRAINING_0001 = (
    "SELECT training_id, sha256, uri, owner_id, license_id, width, height, attributes, opted_out, ingested_at"
    " FROM gmv.training_image"
)


def _since_0001(found: dict, later: set[str]) -> dict:
    return {name: value for name, value in found.items() if name not in later}


def _tables(conn) -> dict:
    """Fingerprints of the tables (and columns) 0001 created."""
    return _since_0001(fingerprints(conn, "gmv", "r"), LATER_TABLES) | {
        "training_image": query_fingerprint(conn, TRAINING_0001)
    }


def _indexes(conn) -> set[tuple[str, str]]:
    return set(conn.execute("SELECT tablename, indexdef FROM pg_indexes WHERE schemaname = 'gmv'").fetchall())


def test_downgrade_and_upgrade_keep_every_row(db_url):
    with psycopg.connect(db_url, autocommit=True) as conn:
        from pgvector.psycopg import register_vector

        register_vector(conn)
        seed(
            conn,
            n_training=300,
            n_generated=120,
            dim=16,
            k=5,
            owners=HOSTILE_NAMES[:6],
            months=3,
            pool="1000.00",
        )
        conn.execute("REFRESH MATERIALIZED VIEW gmv.training_credit")
        conn.execute("REFRESH MATERIALIZED VIEW gmv.training_credit_monthly")
        tables = _tables(conn)
        indexes = _indexes(conn)
        reports = _since_0001(fingerprints(conn, "report", "v"), LATER_VIEWS)
    assert {"owner", "training_image", "generated_image", "match", "revenue_pool"} <= set(tables)
    assert any(name.startswith("training_embedding_") for name in tables)
    assert tables["match"][0] == 120 * 5
    assert all(count > 0 for count, _ in reports.values()), reports
    print(
        f"\nmigrations: {len(tables)} tables ({sum(c for c, _ in tables.values())} rows) and {len(reports)} report views compared"
    )

    for cycle in range(2):
        downgrade(db_url, "0001_tables")
        with psycopg.connect(db_url, autocommit=True) as conn:
            assert current_revision(conn) == "0001_tables"
            assert conn.execute("SELECT to_regnamespace('report')").fetchone() == (None,)
            assert relations(conn, "gmv", "mv") == []
            assert _tables(conn) == tables, f"rows changed by downgrade (cycle {cycle})"
        upgrade(db_url)
        with psycopg.connect(db_url, autocommit=True) as conn:
            assert current_revision(conn) == head_revision()
            assert _tables(conn) == tables, f"rows changed by upgrade (cycle {cycle})"
            assert _indexes(conn) >= indexes  # the HNSW index of the vector table is still there
            # Materialized views are rebuilt from the kept rows: same answers as before.
            assert _since_0001(fingerprints(conn, "report", "v"), LATER_VIEWS) == reports
        with psycopg.connect(reader_url(db_url), autocommit=True) as reader:
            assert reader.execute("SELECT count(*) FROM report.owner_value").fetchone()[0] > 0
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                reader.execute("SELECT * FROM gmv.owner")
