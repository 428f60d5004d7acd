"""Every gmv match run is recorded in gmv.match_run (settings, measured recall, versions) and every
match row names its run."""

from __future__ import annotations

from functools import partial

import pytest

from gmv_sql import __version__
from gmv_sql.db.connect import connect
from gmv_sql.errors import InputError
from gmv_sql.match import matcher, recall
from tests.factories import seed


def _runs(conn) -> list[dict]:
    cur = conn.execute("SELECT * FROM gmv.match_run ORDER BY run_id")
    names = [c.name for c in cur.description]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def test_index_run_is_recorded_with_recall_and_versions(conn, db_url):
    world = seed(conn, n_training=300, n_generated=40, dim=16, seed=2)
    result = matcher.match_space(partial(connect, db_url), world["space"], k=5, workers=2, batch=9)
    [run] = _runs(conn)
    assert run["run_id"] == result.run_id
    assert (run["space_id"], run["k"], run["exact"], run["index_kind"]) == (
        world["space"].space_id,
        5,
        False,
        "hnsw",
    )
    assert run["index_params"] == {
        "m": 16,
        "ef_construction": 64,
        "opclass": "halfvec_cosine_ops",  # new spaces index (embedding::halfvec(dim)): precision half
        "precision": "half",
        "storage": "vector",
        "distance": "cosine",
    }
    assert run["ef_search"] == result.ef_search == 100
    assert (run["images_matched"], run["rows_written"]) == (40, 200)
    assert run["recall_status"] == "measured" and run["recall_sample"] == 40
    assert 0.9 <= run["recall_at_k"] <= 1 and run["recall_at_k"] == pytest.approx(result.recall)
    assert run["started_at"] <= run["finished_at"]
    assert run["gmv_sql_version"] == __version__
    assert run["postgres_version"] == conn.execute("SHOW server_version").fetchone()[0]
    assert (
        run["pgvector_version"]
        == conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'").fetchone()[0]
    )
    assert conn.execute("SELECT array_agg(DISTINCT run_id) FROM gmv.match").fetchone() == ([run["run_id"]],)


def test_recall_sample_is_a_reproducible_subset_of_the_matched_images(conn, db_url):
    world = seed(conn, n_training=300, n_generated=60, dim=16, seed=4)
    result = matcher.match_space(partial(connect, db_url), world["space"], k=4, recall_sample=25)
    assert (result.recall_status, result.recall_sample) == ("measured", 25)
    ids = [int(g) for g in world["generated_ids"]]
    assert recall.sample_ids(ids, 25) == recall.sample_ids(list(reversed(ids)), 25)
    assert set(recall.sample_ids(ids, 25)) <= set(ids) and len(recall.sample_ids(ids, 25)) == 25


def test_recall_of_a_bad_index_setting_is_measured_low(conn, db_url):
    """The measurement can fail: ef_search = k with strict filtering off on clustered data misses neighbours."""
    world = seed(conn, n_training=2000, n_generated=60, dim=32, seed=5, n_clusters=2)
    space = world["space"]
    plan = matcher.MatchPlan(space, 20, 20)
    low = recall.measure(conn, plan, [int(g) for g in world["generated_ids"]])
    exact_plan = matcher.MatchPlan(space, 20, None, exact=True)
    assert recall.measure(conn, exact_plan, [int(g) for g in world["generated_ids"]]).recall == 1.0
    assert low.recall < 1.0


def test_skipped_exact_and_empty_runs_say_so(conn, db_url):
    world = seed(conn, n_training=100, n_generated=10, dim=8, seed=6)
    first = matcher.match_space(partial(connect, db_url), world["space"], k=3, recall_sample=0)
    again = matcher.match_space(partial(connect, db_url), world["space"])
    redo = matcher.match_space(partial(connect, db_url), world["space"], k=3, exact=True, rematch=True)
    runs = _runs(conn)
    assert [(r["recall_status"], r["recall_at_k"], r["recall_sample"]) for r in runs] == [
        ("skipped", None, 0),
        ("nothing_matched", None, 0),
        ("exact", 1.0, 0),
    ]
    assert [r["run_id"] for r in runs] == [first.run_id, again.run_id, redo.run_id]
    assert runs[2]["index_kind"] is None and runs[2]["ef_search"] is None and runs[2]["rematch"]
    assert conn.execute("SELECT array_agg(DISTINCT run_id) FROM gmv.match").fetchone() == ([redo.run_id],)
    with pytest.raises(InputError, match="--recall-sample -1"):
        matcher.match_space(partial(connect, db_url), world["space"], recall_sample=-1)


def test_rematched_images_name_the_new_run(conn, db_url):
    world = seed(conn, n_training=100, n_generated=20, dim=8, seed=7)
    first = matcher.match_space(partial(connect, db_url), world["space"], k=3)
    victim = conn.execute("SELECT training_id FROM gmv.match WHERE rank = 1 LIMIT 1").fetchone()[0]
    conn.execute("UPDATE gmv.training_image SET opted_out = true WHERE training_id = %s", (victim,))
    second = matcher.match_space(partial(connect, db_url), world["space"])
    assert second.unmatched_ineligible > 0 and second.matched == second.unmatched_ineligible
    by_run = dict(
        conn.execute("SELECT run_id, count(DISTINCT generated_id) FROM gmv.match GROUP BY 1").fetchall()
    )
    assert by_run == {first.run_id: 20 - second.matched, second.run_id: second.matched}


def test_cli_prints_the_recall_and_records_the_run(gmv, conn):
    seed(conn, n_training=200, n_generated=30, dim=8)
    out = gmv("match", "--space", "test", "--k", "5", "--recall-sample", "10").output
    assert "recall@5 " in out and "on 10 of the images matched (match run 1)" in out
    rows = conn.execute("SELECT recall_status, recall_sample FROM gmv.match_run").fetchall()
    assert rows == [("measured", 10)]
    out = gmv("match", "--space", "test", "--rematch", "--recall-sample", "0").output
    assert "recall not measured (--recall-sample 0), recorded as skipped (match run 2)" in out
