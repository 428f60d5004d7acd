"""The ledger in the report schema: report.statement, statement_line, statement_credit, match_run and
space, each commented (view and every column), readable by gmv_reader, who reads nothing of gmv."""

from __future__ import annotations

import psycopg
import pytest

from tests.factories import reader_url
from tests.ledger import world as w
from tests.ledger.world import D

VIEWS = ["statement", "statement_line", "statement_credit", "statement_match", "match_run", "space"]


def test_every_view_and_column_has_a_comment(conn):
    for view in VIEWS:
        oid = conn.execute("SELECT %s::regclass::oid", (f"report.{view}",)).fetchone()[0]
        assert conn.execute("SELECT obj_description(%s, 'pg_class')", (oid,)).fetchone()[0], view
        columns = conn.execute(
            "SELECT attname, col_description(attrelid, attnum) FROM pg_attribute"
            " WHERE attrelid = %s AND attnum > 0 AND NOT attisdropped",
            (oid,),
        ).fetchall()
        assert columns and all(comment for _, comment in columns), (view, [c for c, d in columns if not d])


def test_views_show_the_ledger_and_the_reader_reads_only_them(conn, db_url):
    w.matched_world(conn, db_url)
    w.issue(conn, pool="120.00")
    space = conn.execute(
        "SELECT space, model, index_kind, index_params, k, n_training_vectors, n_generated_vectors,"
        " n_matched_generated, n_match_rows, n_match_runs FROM report.space"
    ).fetchone()
    index = {"m": 16, "ef_construction": 64, "precision": "half"}
    assert space == ("test", "synthetic", "hnsw", index, 5, 120, 40, 40, 200, 1)
    run = conn.execute(
        "SELECT run_id, space, exact, recall_status, images_matched FROM report.match_run"
    ).fetchone()
    assert run == (1, "test", True, "exact", 40)
    statement = conn.execute(
        "SELECT statement_id, kind, period, scope, amount, model, k, min_recall_at_k FROM report.statement"
    ).fetchone()
    assert statement == (1, "original", "2026-01", "all", D("120.00"), "synthetic", 5, 1.0)
    assert conn.execute("SELECT sum(amount) FROM report.statement_line").fetchone() == (D("120.00"),)
    assert conn.execute("SELECT sum(amount) FROM report.statement_credit").fetchone() == (D("120.00"),)
    assert conn.execute(
        "SELECT count(*), count(generated_uri), count(DISTINCT generated_id) FROM report.statement_match"
    ).fetchone() == (200, 200, 40)
    with psycopg.connect(reader_url(db_url), autocommit=True) as reader:
        for view in VIEWS:
            assert reader.execute(f"SELECT * FROM report.{view}").fetchall(), view
        for table in ("statement", "statement_line", "statement_credit", "statement_match", "match_run"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                reader.execute(f"SELECT * FROM gmv.{table}")
        with pytest.raises(psycopg.Error):
            reader.execute("SELECT gmv.space_vector_count('training', 1)")  # no USAGE on schema gmv
