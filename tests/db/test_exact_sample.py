"""Exact top-k of a sample in one pass (gmv_sql.match.exact): the same answers as one exact search per
image, for every distance, with opted-out training images filtered, split over connections; images
the index under-serves fall back to the per-image search; the training vectors are scanned once per
chunk, not once per image."""

from __future__ import annotations

from functools import partial

import pytest

from gmv_sql.db.connect import connect
from gmv_sql.index import builder
from gmv_sql.match import exact, matcher
from gmv_sql.resources import query
from tests.factories import seed


def _per_image_exact(conn, plan, ids):
    return matcher.knn(
        conn, matcher.MatchPlan(plan.space, plan.k, None, exact=True, ineligible=plan.ineligible), ids
    )


@pytest.mark.parametrize("distance", ["cosine", "l2", "inner_product"])
def test_same_answers_as_one_exact_search_per_image(conn, db_url, distance):
    world = seed(
        conn, n_training=600, n_generated=60, dim=24, n_clusters=12, distance=distance, opted_out_fraction=0.2
    )
    # A small graph and ef_search: the approximate top-k (the bound) is often not the exact one.
    space = builder.build(conn, world["space"], m=4, ef_construction=8).space
    ineligible = tuple(matcher.ineligible_training(conn))
    assert ineligible
    plan = matcher.MatchPlan(space, 10, None, exact=True, ineligible=ineligible)
    ids = [int(g) for g in world["generated_ids"]]
    want = _per_image_exact(conn, plan, ids)
    got = exact.exact_knn(conn, plan, ids, connect=partial(connect, db_url), workers=2)
    assert set(got) == set(ids)
    for g in ids:
        assert [t for t, _ in got[g]] == [t for t, _ in want[g]], g
        assert [d for _, d in got[g]] == pytest.approx([d for _, d in want[g]])
        assert not set(t for t, _ in got[g]) & set(ineligible)
    # The bound did work: some image's approximate top-k differed from its exact one.
    approx = matcher.knn(conn, exact._bound_plan(plan), ids)
    assert any({t for t, _ in approx[g]} != {t for t, _ in want[g]} for g in ids)
    # Bounds from a caller's own (poorer) search: the same exact answers.
    poor = matcher.knn(conn, matcher.MatchPlan(space, 10, 10, ineligible=ineligible), ids)
    assert any({t for t, _ in poor[g]} != {t for t, _ in want[g]} for g in ids)
    again = exact.exact_knn(conn, plan, ids, approx=poor)
    assert {g: [t for t, _ in r] for g, r in again.items()} == {g: [t for t, _ in want[g]] for g in ids}


def test_fewer_eligible_than_k_falls_back_to_the_per_image_search(conn, db_url):
    world = seed(conn, n_training=12, n_generated=5, dim=8, opted_out=[i < 6 for i in range(12)])
    ineligible = tuple(matcher.ineligible_training(conn))
    plan = matcher.MatchPlan(world["space"], 10, None, exact=True, ineligible=ineligible)
    ids = [int(g) for g in world["generated_ids"]]
    got = exact.exact_knn(conn, plan, ids, connect=partial(connect, db_url), workers=2)
    want = _per_image_exact(conn, plan, ids)
    assert all(len(got[g]) == 6 for g in ids)
    assert {g: [t for t, _ in r] for g, r in got.items()} == {g: [t for t, _ in r] for g, r in want.items()}


def test_one_pass_over_the_training_vectors_per_chunk(conn):
    from gmv_sql import spaces

    world = seed(conn, n_training=300, n_generated=40, dim=16)
    space = world["space"]
    ids = [int(g) for g in world["generated_ids"]]
    bounds = [1.0] * len(ids)
    statement = spaces.render("match", "exact_bounded", space).as_string(conn)
    conn.execute(query("match", "set_local"), {"names": ["jit"], "values": ["off"]})
    lines = [
        r[0]
        for r in conn.execute(
            "EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF) " + statement,
            {"ids": ids, "bounds": bounds, "ineligible": []},
        )
    ]
    scans = [line for line in lines if f"Seq Scan on training_embedding_{space.space_id}" in line]
    assert len(scans) == 1 and "loops=1)" in scans[0], "\n".join(lines)
