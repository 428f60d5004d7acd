"""report.near_copy and the near-copy calibration, on seeded vectors (no images, no torch)."""

from __future__ import annotations

import numpy as np
import pytest

from gmv_sql import spaces
from gmv_sql.quality import near_copy
from tests.factories import refused, seed


def _world(conn, **kwargs):
    rng = np.random.default_rng(3)
    training = rng.normal(size=(120, 8)).astype(np.float32)
    generated = (rng.normal(size=(20, 8)) + 4.0).astype(np.float32)  # far from every training vector
    # Generated 0..4 copy training 10..14 with a tiny perturbation: near-copies.
    generated[:5] = training[10:15] + 1e-4 * rng.normal(size=(5, 8))
    return seed(conn, training_vectors=training, generated_vectors=generated, k=3, **kwargs)


def test_calibration_is_the_percentile_of_nearest_other_training_distances(conn):
    world = _world(conn)
    space = world["space"]
    result = near_copy.calibrate(conn, space)
    unit = world["training_vectors"] / np.linalg.norm(world["training_vectors"], axis=1, keepdims=True)
    expected = near_copy.threshold_from(near_copy.nearest_other_distances(unit))
    assert result.changed and result.source == "calibrated" and result.sampled == 120
    assert result.threshold == pytest.approx(expected, rel=1e-4)
    stored = spaces.get_space(conn, space.name)
    assert stored.near_copy_source == "calibrated"
    assert stored.near_copy_distance == pytest.approx(expected, rel=1e-4)


def test_view_lists_planted_copies_with_owner_licence_and_both_uris(conn):
    world = _world(conn, owners=["alice", "bob"], licenses=["cc-by"])
    near_copy.calibrate(conn, world["space"])
    rows = conn.execute(
        "SELECT generated_id, rank, training_id, owner, license, generated_uri, training_uri, distance, threshold"
        " FROM report.near_copy WHERE space = 'test' ORDER BY generated_id"
    ).fetchall()
    planted = {
        int(g): int(t) for g, t in zip(world["generated_ids"][:5], world["training_ids"][10:15], strict=True)
    }
    assert {(r[0], r[2]) for r in rows} == set(planted.items())
    assert all(r[1] == 1 and r[7] <= r[8] and r[6].startswith("synthetic://training") for r in rows)
    assert all(
        r[5].startswith("synthetic://generated") and r[3] in ("alice", "bob") and r[4] == "cc-by"
        for r in rows
    )


def test_hand_set_distance_is_kept_by_automatic_calibration_and_zero_flags_only_exact(conn):
    world = _world(conn)
    space = world["space"]
    near_copy.set_distance(conn, space, 0.0)
    assert near_copy.calibrate_if_needed(conn, space) is None
    assert near_copy.calibrate(conn, space).changed is False
    assert conn.execute("SELECT count(*) FROM report.near_copy").fetchone()[0] == 0
    near_copy.set_distance(conn, space, 2.5)  # everything within 2.5 cosine distance
    n = conn.execute("SELECT count(DISTINCT generated_id) FROM report.near_copy").fetchone()[0]
    assert n == 20


def test_duplicates_inside_the_training_set_do_not_collapse_the_threshold(conn):
    rng = np.random.default_rng(5)
    training = rng.normal(size=(100, 8)).astype(np.float32)
    training[50:60] = training[:10]  # ten exact duplicates
    world = seed(conn, training_vectors=training, generated_vectors=training[:3], k=2)
    result = near_copy.calibrate(conn, world["space"])
    assert result.duplicates == 20 and result.threshold > 1e-3


def test_calibration_needs_a_few_distinct_training_images(conn):
    world = seed(conn, n_training=5, n_generated=2, dim=4, k=2)
    result = near_copy.calibrate(conn, world["space"])
    assert not result.changed and result.threshold is None


def test_calibration_follows_new_training_vectors(conn):
    world = _world(conn)
    space = world["space"]
    first = near_copy.calibrate_if_needed(conn, space)
    assert first is not None and first.changed
    assert near_copy.calibrate_if_needed(conn, space) is None  # nothing changed
    from gmv_sql.embed import store
    from tests.factories import add_training_images

    ids = add_training_images(conn, [world["owner_ids"][0]] * 3, [world["license_ids"][0]] * 3, tag="more")
    store.copy_vectors(conn, space, "training", ids, np.random.default_rng(9).normal(size=(3, 8)), source="t")
    again = near_copy.calibrate_if_needed(conn, space)
    assert again is not None and again.sampled == 123


def test_space_commands(gmv, conn):
    world = _world(conn)
    out = gmv("space", "calibrate", "test").output
    assert "near-copy distance" in out and "percentile 1" in out
    shown = gmv("space", "show", "test", "--format", "json").output
    assert '"near_copy_source": "calibrated"' in shown
    gmv("space", "set", "test", "--near-copy-distance", "0.5")
    assert spaces.get_space(conn, "test").near_copy_distance == 0.5
    report = gmv("report", "near-copies", "--space", "test", "--format", "csv")
    assert "set by hand" in report.output
    assert report.output.splitlines()[0].startswith("space,generated_id,generated_uri,rank,training_id")
    del world


def test_space_commands_refuse_bad_input_and_write_nothing(gmv, conn):
    _world(conn)
    before = conn.execute("SELECT near_copy_distance, near_copy_source FROM gmv.embedding_space").fetchall()
    refused(gmv, "space", "show", "nope", reason="no embedding space 'nope'")
    refused(gmv, "space", "set", "nope", "--near-copy-distance", "0.1", reason="no embedding space 'nope'")
    refused(gmv, "report", "near-copies", "--space", "nope", reason="no embedding space 'nope'")
    for bad in ("-1", "nan", "inf", "abc"):
        result = gmv("space", "set", "test", "--near-copy-distance", bad, ok=False)
        assert result.exit_code == 2 and "--near-copy-distance" in result.output, result.output
    result = gmv("space", "set", "test", ok=False)
    assert result.exit_code == 2 and "--near-copy-distance" in result.output
    after = conn.execute("SELECT near_copy_distance, near_copy_source FROM gmv.embedding_space").fetchall()
    assert before == after


def test_inner_product_spaces_are_not_calibrated(conn):
    from gmv_sql.errors import InputError

    world = seed(conn, n_training=50, n_generated=5, dim=4, k=2, distance="inner_product")
    assert near_copy.calibrate_if_needed(conn, world["space"]) is None
    with pytest.raises(InputError, match="needs cosine or l2"):
        near_copy.calibrate(conn, world["space"])
