"""SQL k-NN matching: same answers as numpy, uses the HNSW index, filters without losing rows, resumable."""

from __future__ import annotations

import json
import time
from functools import partial

import numpy as np
import pytest
from psycopg import sql

from gmv_sql import spaces
from gmv_sql.db import locks
from gmv_sql.db.connect import connect
from gmv_sql.errors import ConflictError, InputError
from gmv_sql.match import matcher
from tests.factories import numpy_knn, seed


def _stored(conn, space_id: int) -> dict[int, list[tuple[int, float]]]:
    out: dict[int, list[tuple[int, float]]] = {}
    for g, t, d in conn.execute(
        "SELECT generated_id, training_id, distance FROM gmv.match WHERE space_id = %s ORDER BY generated_id, rank",
        (space_id,),
    ):
        out.setdefault(g, []).append((t, d))
    return out


@pytest.mark.parametrize("distance", ["cosine", "l2", "inner_product"])
def test_exact_match_equals_numpy(conn, db_url, distance):
    world = seed(conn, n_training=150, n_generated=20, dim=8, distance=distance, seed=3)
    result = matcher.match_space(
        partial(connect, db_url), world["space"], k=5, exact=True, workers=2, batch=7
    )
    assert (result.matched, result.rows, result.exact) == (20, 100, True)
    order, dist = numpy_knn(world["training_vectors"], world["generated_vectors"], 5, distance=distance)
    stored = _stored(conn, world["space"].space_id)
    for j, g in enumerate(world["generated_ids"]):
        assert [t for t, _ in stored[g]] == list(world["training_ids"][order[j]])
        np.testing.assert_allclose([d for _, d in stored[g]], dist[j], rtol=1e-5, atol=1e-5)
    assert conn.execute("SELECT bool_and(exact), min(k), max(k) FROM gmv.match").fetchone() == (True, 5, 5)


def test_index_match_has_high_recall_and_stores_k(conn, db_url):
    world = seed(conn, n_training=400, n_generated=60, dim=16, seed=1)
    result = matcher.match_space(partial(connect, db_url), world["space"], k=10, workers=2, batch=16)
    assert result.matched == 60 and result.rows == 600 and not result.exact and result.ef_search >= 10
    order, _ = numpy_knn(world["training_vectors"], world["generated_vectors"], 10)
    stored = _stored(conn, world["space"].space_id)
    hits = [
        len({t for t, _ in stored[g]} & set(world["training_ids"][order[j]])) / 10
        for j, g in enumerate(world["generated_ids"])
    ]
    assert np.mean(hits) >= 0.95
    assert conn.execute("SELECT match_k FROM gmv.embedding_space").fetchone() == (10,)
    # Ranks are 1..k in distance order.
    rows = conn.execute(
        "SELECT generated_id, array_agg(distance ORDER BY rank), array_agg(rank ORDER BY rank) FROM gmv.match GROUP BY 1"
    ).fetchall()
    for _, dists, ranks in rows:
        assert ranks == list(range(1, 11)) and dists == sorted(dists)


def _plan_nodes(plan: dict) -> list[dict]:
    nodes = [plan]
    for child in plan.get("Plans", []):
        nodes += _plan_nodes(child)
    return nodes


def _explain(conn, space, *, exact: bool, ef_search: int = 40) -> list[dict]:
    plan = matcher.MatchPlan(space, k=10, ef_search=ef_search, exact=exact, ineligible=(1, 2))
    params = plan.params(lo=0, hi=10**9, ids=list(range(1, 1000)))
    with conn.transaction():
        matcher.apply_search_settings(conn, plan)
        plan = conn.execute(
            b"EXPLAIN (FORMAT JSON) " + matcher.knn_sql("knn_insert", space).as_bytes(conn), params
        ).fetchone()[0]
    if isinstance(plan, str):
        plan = json.loads(plan)
    return _plan_nodes(plan[0]["Plan"])


def test_explain_shows_the_hnsw_index_is_used(conn):
    # Big enough that a sequential scan + sort is not cheaper than the index (it is for ~300 rows).
    world = seed(conn, n_training=3000, n_generated=5, dim=16)
    conn.execute("ANALYZE")
    space = world["space"]
    nodes = _explain(conn, space, exact=False)
    index_scans = [n for n in nodes if n.get("Index Name") == space.index_name]
    assert index_scans, [n["Node Type"] for n in nodes]
    assert any(n["Node Type"] == "Limit" for n in nodes)
    exact_nodes = _explain(conn, space, exact=True)
    assert not [n for n in exact_nodes if n.get("Index Name") == space.index_name]


def _index_scans(conn, index_name: str) -> int:
    conn.execute("SELECT pg_stat_clear_snapshot()")
    return conn.execute(
        "SELECT idx_scan FROM pg_stat_user_indexes WHERE indexrelname = %s", (index_name,)
    ).fetchone()[0]


@pytest.mark.parametrize("storage", ["vector", "halfvec", "vector-full"])
@pytest.mark.parametrize("distance", ["cosine", "l2", "inner_product"])
def test_hnsw_match_agrees_with_exact_search(conn, db_url, storage, distance):
    """gmv match through the HNSW index of every storage and distance: the plan uses the index, the
    match really scanned it, and it finds >= 90% of the exact top-k (numpy on the stored values).
    vector: a halfvec index on a vector column (the default); vector-full: the index on the column."""
    storage, _, precision = storage.partition("-")
    world = seed(
        conn,
        n_training=1500,
        n_generated=40,
        dim=16,
        distance=distance,
        storage=storage,
        seed=4,
        index_precision=precision or "half",
    )
    space = world["space"]
    assert (space.storage, space.distance) == (storage, distance)
    indexdef = conn.execute(
        "SELECT indexdef FROM pg_indexes WHERE indexname = %s", (space.index_name,)
    ).fetchone()[0]
    key = "((embedding)::halfvec(16))" if storage == "vector" and precision != "full" else "embedding"
    assert f"USING hnsw ({key} {space.opclass})" in indexdef, indexdef
    assert space.opclass.startswith("vector" if precision == "full" else "halfvec")
    # At this size (and the default ef_search) the planner rightly prefers an exact sequential scan;
    # forbid it, so the plan can only be the index's — which it is only if the index's operator class
    # fits the query's operator and types.
    conn.execute(
        sql.SQL("ALTER DATABASE {} SET enable_seqscan = off").format(sql.Identifier(conn.info.dbname))
    )
    conn.execute("SET enable_seqscan = off")
    conn.execute("ANALYZE")
    assert [
        n
        for n in _explain(conn, space, exact=False, ef_search=100)
        if n.get("Index Name") == space.index_name
    ]
    scans_before = _index_scans(conn, space.index_name)

    result = matcher.match_space(partial(connect, db_url), space, k=10, workers=1)
    assert (result.matched, result.rows, result.exact, result.exact_fallback) == (40, 400, False, 0)
    deadline = time.monotonic() + 10  # a closed worker's statistics reach the server shortly after
    while _index_scans(conn, space.index_name) < scans_before + 40 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _index_scans(conn, space.index_name) >= scans_before + 40  # at least one scan per generated image

    # The exact answer over what is stored: halfvec keeps each component as a 16-bit float.
    stored_type = np.float16 if storage == "halfvec" else np.float32
    training = world["training_vectors"].astype(stored_type)
    generated = world["generated_vectors"].astype(stored_type)
    order, _ = numpy_knn(training, generated, 10, distance=distance)
    stored = _stored(conn, space.space_id)
    id_index = {int(t): i for i, t in enumerate(world["training_ids"])}
    hits = []
    for j, g in enumerate(world["generated_ids"]):
        got = [t for t, _ in stored[g]]
        hits.append(len(set(got) & set(world["training_ids"][order[j]])) / 10)
        # Each stored distance is the true distance of that pair, in the space's own measure.
        _, exact = numpy_knn(
            training[[id_index[t] for t in got]], generated[j : j + 1], 10, distance=distance
        )
        np.testing.assert_allclose(sorted(d for _, d in stored[g]), exact[0], rtol=1e-4, atol=1e-4)
    assert np.mean(hits) >= 0.9, np.mean(hits)


def test_filtering_never_returns_fewer_than_k(conn, db_url):
    """Hundreds of opted-out images sit right on the queries; the eligible ones are far away."""
    rng = np.random.default_rng(5)
    dim = 8
    query_centre = np.ones(dim, dtype=np.float32)
    near = query_centre + 0.01 * rng.normal(size=(600, dim)).astype(np.float32)
    far = -query_centre + 0.3 * rng.normal(size=(40, dim)).astype(np.float32)
    training = np.vstack([near, far])
    generated = query_centre + 0.01 * rng.normal(size=(6, dim)).astype(np.float32)
    world = seed(
        conn,
        training_vectors=training,
        generated_vectors=generated,
        owners=2,
        licenses=(("paid", True, False), ("banned", True, True)),
    )
    ids = world["training_ids"]
    # The near ones: half opted out, half under the excluded licence (licence alternates per image).
    conn.execute(
        "UPDATE gmv.training_image SET opted_out = true WHERE training_id = ANY(%s)",
        (list(map(int, ids[:600])),),
    )
    conn.execute(
        "UPDATE gmv.training_image SET license_id = %s WHERE training_id = ANY(%s)",
        (world["license_ids"][0], list(map(int, ids[600:]))),
    )
    result = matcher.match_space(partial(connect, db_url), world["space"], k=10, ef_search=10, workers=1)
    assert result.matched == 6 and result.rows == 60
    assert result.exact_fallback == 0  # the iterative index scan itself walked past the filtered rows
    eligible = np.zeros(len(ids), bool)
    eligible[600:] = True
    order, _ = numpy_knn(training, generated, 10, eligible=eligible)
    stored = _stored(conn, world["space"].space_id)
    for j, g in enumerate(world["generated_ids"]):
        got = {t for t, _ in stored[g]}
        assert got <= set(map(int, ids[600:]))
        assert len(got) == 10
        assert len(got & set(ids[order[j]])) >= 9


def test_k_is_fixed_per_space_and_rematch_changes_it(conn, db_url):
    world = seed(conn, n_training=60, n_generated=8, dim=8)
    space = world["space"]
    matcher.match_space(partial(connect, db_url), space, k=4, workers=1)
    space = spaces.get_space(conn, space.name)
    with pytest.raises(ConflictError, match="--rematch"):
        matcher.match_space(partial(connect, db_url), space, k=6)
    assert conn.execute("SELECT count(*), max(k) FROM gmv.match").fetchone() == (32, 4)
    result = matcher.match_space(partial(connect, db_url), space, k=6, rematch=True)
    assert result.matched == 8
    assert conn.execute("SELECT count(*), max(k) FROM gmv.match").fetchone() == (48, 6)
    assert conn.execute("SELECT match_k FROM gmv.embedding_space").fetchone() == (6,)
    # Same k again (or no k): nothing to do.
    assert matcher.match_space(partial(connect, db_url), spaces.get_space(conn, space.name)).matched == 0


def test_rerun_only_matches_what_is_missing(conn, db_url):
    world = seed(conn, n_training=80, n_generated=30, dim=8)
    space = world["space"]
    matcher.match_space(partial(connect, db_url), space, k=3, workers=2, batch=4)
    before = conn.execute(
        "SELECT generated_id, rank, training_id, matched_at FROM gmv.match ORDER BY 1, 2"
    ).fetchall()
    # Lose some images' matches (as if their batches had been interrupted) and add new generated images.
    conn.execute(
        "DELETE FROM gmv.match WHERE generated_id = ANY(%s)", (list(map(int, world["generated_ids"][:5])),)
    )
    more = seed(
        conn,
        n_training=0,
        n_generated=4,
        dim=8,
        seed=9,
        generated_vectors=np.random.default_rng(0).normal(size=(4, 8)),
        training_vectors=np.zeros((0, 8)),
    )
    result = matcher.match_space(
        partial(connect, db_url), spaces.get_space(conn, space.name), workers=2, batch=2
    )
    assert result.matched == 9 and result.rows == 27
    after = conn.execute(
        "SELECT generated_id, rank, training_id, matched_at FROM gmv.match ORDER BY 1, 2"
    ).fetchall()
    untouched = [r for r in before if r[0] not in set(world["generated_ids"][:5].tolist())]
    assert set(untouched) <= set(after)
    assert len(after) == 34 * 3
    assert all(g in {r[0] for r in after} for g in more["generated_ids"])


def test_opting_out_after_matching_rematches_affected_images(conn, db_url):
    world = seed(conn, n_training=50, n_generated=10, dim=8)
    space = world["space"]
    matcher.match_space(partial(connect, db_url), space, k=3, workers=1)
    victim = conn.execute("SELECT training_id FROM gmv.match WHERE rank = 1 LIMIT 1").fetchone()[0]
    affected = {
        r[0] for r in conn.execute("SELECT generated_id FROM gmv.match WHERE training_id = %s", (victim,))
    }
    conn.execute("UPDATE gmv.training_image SET opted_out = true WHERE training_id = %s", (victim,))
    result = matcher.match_space(partial(connect, db_url), spaces.get_space(conn, space.name), workers=1)
    assert result.unmatched_ineligible == len(affected) and result.matched == len(affected)
    assert conn.execute("SELECT count(*) FROM gmv.match WHERE training_id = %s", (victim,)).fetchone() == (0,)
    assert conn.execute("SELECT count(*) FROM gmv.match").fetchone() == (30,)


def test_bad_options_are_refused_before_writing(conn, db_url):
    world = seed(conn, n_training=20, n_generated=3, dim=4)
    with pytest.raises(InputError, match="--ef-search 5 is smaller than --k 10"):
        matcher.match_space(partial(connect, db_url), world["space"], k=10, ef_search=5)
    with pytest.raises(InputError, match="--k 0"):
        matcher.match_space(partial(connect, db_url), world["space"], k=0)
    with pytest.raises(InputError, match="--batch"):
        matcher.match_space(partial(connect, db_url), world["space"], batch=0)
    assert conn.execute("SELECT count(*) FROM gmv.match").fetchone() == (0,)
    assert conn.execute("SELECT match_k FROM gmv.embedding_space").fetchone() == (None,)


def test_recall_against_exact(conn):
    world = seed(conn, n_training=300, n_generated=40, dim=16)
    result = matcher.recall(conn, world["space"], k=10, sample=25)
    assert result.sample == 25 and result.k == 10 and result.ef_search == matcher.DEFAULT_EF_SEARCH
    assert 0.9 <= result.recall <= 1.0
    assert conn.execute("SELECT count(*) FROM gmv.match").fetchone() == (0,)


def test_one_match_per_space_at_a_time(conn, db_url):
    world = seed(conn, n_training=20, n_generated=3, dim=4)
    space = world["space"]
    conn.execute(
        "SELECT pg_advisory_lock(%s, %s)", (locks.MATCH, space.space_id)
    )  # as a running match holds it
    with pytest.raises(
        ConflictError, match="another gmv match or gmv index build is running for space 'test'"
    ):
        matcher.match_space(partial(connect, db_url), space, k=2)
    conn.execute("SELECT pg_advisory_unlock(%s, %s)", (locks.MATCH, space.space_id))
    assert matcher.match_space(partial(connect, db_url), space, k=2).matched == 3
