"""`gmv index advise`: both kinds measured on a sample at the target recall, a recommendation, nothing written."""

from __future__ import annotations

import json

from tests.factories import fingerprints, seed


def test_advise_measures_both_kinds_and_writes_nothing(gmv, conn):
    seed(conn, n_training=1500, n_generated=60, dim=16, seed=5)
    before = fingerprints(conn, "gmv", "r")
    indexes = conn.execute("SELECT indexname FROM pg_indexes WHERE schemaname = 'gmv' ORDER BY 1").fetchall()
    result = gmv(
        "index",
        "advise",
        "--space",
        "test",
        "--rows",
        "1200",
        "--queries",
        "40",
        "--target-recall",
        "0.9",
        "--format",
        "json",
    )
    rows = json.loads(result.stdout)
    assert [r["kind"] for r in rows] == ["hnsw", "ivfflat"]
    for r in rows:
        assert r["reached"] and r["recall"] >= 0.9 and r["per_s"] > 0
    assert rows[0]["setting"].startswith("ef_search=") and rows[1]["setting"].startswith("probes=")
    assert "lists=1 (built on 1,200 rows)" in rows[1]["index"]
    assert "recommended for space 'test':" in result.stderr
    assert "measured on 1,200 of its 1,500 training vectors and 40 generated" in result.stderr
    assert "gmv index build --space test --kind" in result.stderr
    # Rolled back: the same rows, no scratch space, the same indexes.
    assert fingerprints(conn, "gmv", "r") == before
    assert (
        conn.execute("SELECT indexname FROM pg_indexes WHERE schemaname = 'gmv' ORDER BY 1").fetchall()
        == indexes
    )


def test_advise_needs_vectors(gmv, conn):
    seed(conn, n_training=20, n_generated=0, dim=4)
    result = gmv("index", "advise", "--space", "test", ok=False)
    assert result.exit_code == 1 and "needs training and generated vectors" in result.output
