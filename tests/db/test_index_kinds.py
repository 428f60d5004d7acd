"""Index kinds per space: HNSW or IVFFlat, halfvec or full precision; each is used by matching (EXPLAIN
and the server's scan counters); IVFFlat lists follow the row count and go stale as data grows."""

from __future__ import annotations

import json
import time
from functools import partial

import numpy as np
import pytest
from psycopg import sql

from gmv_sql import spaces
from gmv_sql.db.connect import connect
from gmv_sql.embed import store
from gmv_sql.errors import InputError
from gmv_sql.index import builder
from gmv_sql.match import matcher
from tests.factories import add_training_images, make_license, make_owner, numpy_knn, seed


def _plan_nodes(plan: dict) -> list[dict]:
    nodes = [plan]
    for child in plan.get("Plans", []):
        nodes += _plan_nodes(child)
    return nodes


def _explain_index_names(conn, plan: matcher.MatchPlan) -> list[str]:
    with conn.transaction():
        matcher.apply_search_settings(conn, plan)
        out = conn.execute(
            b"EXPLAIN (FORMAT JSON) " + plan.sql("knn_insert").as_bytes(conn),
            plan.params(lo=0, hi=10**9, ids=list(range(1, 10_000))),
        ).fetchone()[0]
    if isinstance(out, str):
        out = json.loads(out)
    return [n["Index Name"] for n in _plan_nodes(out[0]["Plan"]) if "Index Name" in n]


def _index_scans(conn, index_name: str) -> int:
    conn.execute("SELECT pg_stat_clear_snapshot()")
    row = conn.execute(
        "SELECT idx_scan FROM pg_stat_user_indexes WHERE indexrelname = %s", (index_name,)
    ).fetchone()
    return row[0] if row else 0


@pytest.mark.parametrize(
    ("kind", "precision", "storage"),
    [
        ("hnsw", "half", "vector"),
        ("hnsw", "full", "vector"),
        ("ivfflat", "half", "vector"),
        ("ivfflat", "full", "vector"),
        ("ivfflat", "full", "halfvec"),
    ],
)
def test_each_index_kind_is_used_by_matching(conn, db_url, kind, precision, storage):
    world = seed(conn, n_training=3000, n_generated=40, dim=16, storage=storage, seed=2)
    built = builder.build(conn, world["space"], kind=kind, precision=precision)
    space = built.space
    recorded = "half" if storage == "halfvec" else precision  # a halfvec column is indexed as stored
    assert (space.index_kind, space.index_precision, space.index_rows) == (kind, recorded, 3000)
    assert space.index_name == f"training_embedding_{space.space_id}_{kind}"
    definition = conn.execute(
        "SELECT indexdef FROM pg_indexes WHERE schemaname = 'gmv' AND indexname LIKE %s AND indexname NOT LIKE '%%pkey'",
        (f"training_embedding_{space.space_id}_%",),
    ).fetchall()
    assert len(definition) == 1, definition  # the other kind's index is gone
    definition = definition[0][0]
    half = precision == "half" or storage == "halfvec"
    key = "((embedding)::halfvec(16))" if precision == "half" and storage == "vector" else "embedding"
    assert f"USING {kind} ({key} {'halfvec' if half else 'vector'}_cosine_ops)" in definition, definition
    if kind == "ivfflat":
        assert space.ivfflat_lists == 3 and "lists='3'" in definition  # rows / 1000

    # --exact: a sequential scan over the full-precision vectors.
    conn.execute("ANALYZE")
    exact = matcher.MatchPlan(space, k=10, ef_search=None, exact=True)
    assert space.index_name not in _explain_index_names(conn, exact)
    # Only the index can serve the plan when sequential scans are off: it does if the ORDER BY
    # expression and operator class match the index.
    conn.execute(
        sql.SQL("ALTER DATABASE {} SET enable_seqscan = off").format(sql.Identifier(conn.info.dbname))
    )
    conn.execute("SET enable_seqscan = off")
    conn.execute("ANALYZE")
    plan = matcher.MatchPlan(
        space, k=10, ef_search=None if kind == "ivfflat" else 40, probes=2, ineligible=(1,)
    )
    assert space.index_name in _explain_index_names(conn, plan)

    before = _index_scans(conn, space.index_name)
    result = matcher.match_space(partial(connect, db_url), space, k=10, workers=1, probes=3)
    assert (result.matched, result.rows, result.index_kind) == (40, 400, kind)
    assert result.setting == ("IVFFlat, probes=3" if kind == "ivfflat" else "HNSW, ef_search=100")
    deadline = time.monotonic() + 10
    while _index_scans(conn, space.index_name) < before + 40 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _index_scans(conn, space.index_name) >= before + 40

    # Stored distances are full precision whatever the index holds; ranks follow them.
    stored = conn.execute(
        "SELECT generated_id, array_agg(training_id ORDER BY rank), array_agg(distance ORDER BY rank) "
        "FROM gmv.match GROUP BY 1 ORDER BY 1"
    ).fetchall()
    tv = world["training_vectors"].astype(np.float16 if storage == "halfvec" else np.float32)
    gv = world["generated_vectors"].astype(np.float16 if storage == "halfvec" else np.float32)
    row_of = {int(t): i for i, t in enumerate(world["training_ids"])}
    hits = []
    order, _ = numpy_knn(tv, gv, 10)
    for j, (g, training_ids, distances) in enumerate(stored):
        assert g == world["generated_ids"][j] and distances == sorted(distances)
        _, exact = numpy_knn(tv[[row_of[t] for t in training_ids]], gv[j : j + 1], 10)
        np.testing.assert_allclose(distances, exact[0], rtol=1e-5, atol=1e-6)
        hits.append(len(set(training_ids) & set(world["training_ids"][order[j]])) / 10)
    assert np.mean(hits) >= 0.9


def test_ivfflat_refuses_what_it_cannot_build(conn):
    world = seed(conn, n_training=50, n_generated=2, dim=8)
    space = world["space"]
    with pytest.raises(InputError, match=r"--lists 51 must be 1\.\.50"):
        builder.build(conn, space, kind="ivfflat", lists=51)
    with pytest.raises(InputError, match="--m and --ef-construction are HNSW"):
        builder.build(conn, space, kind="ivfflat", m=8)
    with pytest.raises(InputError, match="--lists is an IVFFlat"):
        builder.build(conn, space, kind="hnsw", lists=4)
    # Nothing changed: still the HNSW index the space was created with.
    assert spaces.get_space(conn, "test").index_kind == "hnsw"
    assert store.index_exists(conn, spaces.get_space(conn, "test"))
    empty = spaces.get_or_create_space(conn, "empty", model="m", dim=8)
    with pytest.raises(InputError, match="no training vectors.*gmv embed --space empty"):
        builder.build(conn, empty, kind="ivfflat")


def test_default_lists_follow_the_row_count():
    assert [store.default_lists(n) for n in (0, 999, 5000, 200_000, 1_000_000, 4_000_000)] == [
        1,
        1,
        5,
        200,
        1000,
        2000,
    ]


def test_stale_ivfflat_is_reported_with_the_rebuild_command(gmv, conn):
    world = seed(conn, n_training=1000, n_generated=20, dim=8, seed=3)
    out = gmv("index", "build", "--space", "test", "--kind", "ivfflat").output
    assert "built ivfflat halfvec lists=1 (built on 1,000 rows)" in out
    status = json.loads(gmv("db", "status", "--format", "json").output)
    index_row = next(r for r in status if r["item"] == "index test")
    assert "STALE" not in index_row["value"]
    recall = json.loads(gmv("match", "recall", "--space", "test", "--probes", "1", "--format", "json").output)
    # One list is every row, ordered at half precision: near-ties may swap against the full-precision truth.
    assert (recall[0]["probes"], recall[0]["ef_search"]) == (1, None) and recall[0]["recall"] >= 0.99

    # The table grows past twice the rows the lists were built for.
    owner = make_owner(conn, "late")
    license_id = make_license(conn, "late")
    ids = add_training_images(conn, [owner] * 1100, [license_id] * 1100, tag="late")
    rng = np.random.default_rng(0)
    store.copy_vectors(conn, world["space"], "training", ids, rng.normal(size=(1100, 8)).astype(np.float32))
    space = spaces.get_space(conn, "test")
    assert builder.stale_reason(space, 2000) is None  # exactly 2x: not yet
    status = json.loads(gmv("db", "status", "--format", "json").output)
    index_row = next(r for r in status if r["item"] == "index test")
    assert (
        "STALE" in index_row["value"] and "gmv index build --space test --kind ivfflat" in index_row["value"]
    )
    matched = gmv("match", "--space", "test", "--k", "5")
    assert "built on 1,000 training vectors and the space now holds 2,100" in matched.output
    assert "gmv index build --space test --kind ivfflat" in matched.output

    rebuilt = gmv("index", "build", "--space", "test", "--kind", "ivfflat").output
    assert "lists=2 (built on 2,100 rows)" in rebuilt
    status = json.loads(gmv("db", "status", "--format", "json").output)
    assert "STALE" not in next(r for r in status if r["item"] == "index test")["value"]
    # And back to HNSW with other parameters.
    hnsw = gmv(
        "index", "build", "--space", "test", "--kind", "hnsw", "--m", "8", "--precision", "full"
    ).output
    assert "built hnsw vector m=8 ef_construction=64 (built on 2,100 rows)" in hnsw


def test_build_refuses_while_the_space_is_being_matched(conn, db_url):
    from gmv_sql.db import locks
    from gmv_sql.errors import ConflictError

    world = seed(conn, n_training=50, n_generated=2, dim=8)
    with connect(db_url) as other, locks.space_lock(other, locks.MATCH, world["space"]):
        with pytest.raises(
            ConflictError, match="another gmv match or gmv index build is running for space 'test'"
        ):
            builder.build(conn, world["space"], kind="ivfflat")
    assert spaces.get_space(conn, "test").index_kind == "hnsw" and store.index_exists(conn, world["space"])
    assert builder.build(conn, world["space"], kind="ivfflat").space.index_kind == "ivfflat"


def test_match_follows_the_index_built_since_the_space_was_read(conn, db_url):
    world = seed(conn, n_training=50, n_generated=5, dim=8)
    read_before = world["space"]
    builder.build(conn, read_before, kind="ivfflat")
    result = matcher.match_space(partial(connect, db_url), read_before, k=3, workers=1)
    assert result.index_kind == "ivfflat" and result.setting == "IVFFlat, probes=1" and result.matched == 5


def test_migration_reads_the_index_kind_and_precision_back(conn, db_url):
    """Downgrading past 0010 drops the record, not the indexes; upgrading reads them back."""
    from gmv_sql.db.migrate import downgrade, upgrade

    seed(conn, n_training=3000, n_generated=2, dim=8, space="full", index_precision="full")
    ivf = seed(conn, n_training=2000, n_generated=2, dim=8, space="ivf", seed=1)["space"]
    builder.build(conn, ivf, kind="ivfflat", lists=7)
    half = seed(conn, n_training=10, n_generated=2, dim=8, space="half", seed=2)["space"]
    record = "SELECT name, index_kind, index_precision, ivfflat_lists FROM gmv.embedding_space ORDER BY name"
    before = conn.execute(record).fetchall()
    assert before == [
        ("full", "hnsw", "full", None),
        ("half", "hnsw", "half", None),
        ("ivf", "ivfflat", "half", 7),
    ]
    conn.close()
    downgrade(db_url, "0004_consolidate")
    upgrade(db_url)
    with connect(db_url) as again:
        assert again.execute(record).fetchall() == before
        assert store.index_exists(again, spaces.get_space(again, "ivf"))
    assert half.index_casts


def test_ivfflat_filtering_still_gives_k_eligible_rows(conn, db_url):
    """Opted-out images fill the queries' own list; relaxed-order iterative scans (and, failing that,
    the exact fallback) still give k eligible matches, in distance order."""
    rng = np.random.default_rng(5)
    centre = np.ones(8, dtype=np.float32)
    near = centre + 0.01 * rng.normal(size=(1500, 8)).astype(np.float32)
    far = -centre + 0.3 * rng.normal(size=(500, 8)).astype(np.float32)
    training = np.vstack([near, far])
    generated = centre + 0.01 * rng.normal(size=(6, 8)).astype(np.float32)
    world = seed(conn, training_vectors=training, generated_vectors=generated, owners=2)
    ids = world["training_ids"]
    space = builder.build(conn, world["space"], kind="ivfflat", lists=2).space
    conn.execute(
        "UPDATE gmv.training_image SET opted_out = true WHERE training_id = ANY(%s)",
        (list(map(int, ids[:1500])),),
    )
    result = matcher.match_space(partial(connect, db_url), space, k=10, probes=1, workers=1)
    assert (result.matched, result.rows, result.setting) == (6, 60, "IVFFlat, probes=1")
    assert result.exact_fallback == 0  # the iterative scan itself probed past the filtered list
    eligible = np.zeros(len(ids), bool)
    eligible[1500:] = True
    order, _ = numpy_knn(training, generated, 10, eligible=eligible)
    rows = conn.execute(
        "SELECT generated_id, array_agg(training_id ORDER BY rank), array_agg(distance ORDER BY rank) "
        "FROM gmv.match GROUP BY 1 ORDER BY 1"
    ).fetchall()
    for j, (_, got, distances) in enumerate(rows):
        assert set(got) <= set(map(int, ids[1500:])) and len(got) == 10 and distances == sorted(distances)
        assert len(set(got) & set(ids[order[j]])) >= 9
