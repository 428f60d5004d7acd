"""Late training vectors compete without re-matching everything, and the result equals a full rematch.

Random worlds (several seeds, every distance, vector and halfvec): match exactly, then in rounds add
training images with vectors, opt some in and out, exclude and include a licence, add generated
images; after each round an incremental `gmv match --exact` must leave gmv.match exactly as a full
`--rematch --exact` does (same ranks, training images and distances), while re-matching fewer images
than a full rematch would. Opt-outs are dated or not and outputs span three months, so the
per-output eligibility of dated opt-outs is part of what must agree.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from gmv_sql.db.connect import connect
from gmv_sql.embed import store
from gmv_sql.match import matcher
from tests.factories import add_generated_images, add_training_images, make_license, seed


def _snapshot(conn, space_id: int) -> list[tuple]:
    return conn.execute(
        "SELECT generated_id, rank, training_id, distance FROM gmv.match WHERE space_id = %s ORDER BY 1, 2",
        (space_id,),
    ).fetchall()


def _match(db_url, space, **options) -> matcher.MatchResult:
    return matcher.match_space(
        lambda: connect(db_url, autocommit=True), space, exact=True, workers=2, **options
    )


def _full_rematch_equals(conn, db_url, space, k: int) -> list[tuple]:
    """gmv.match after the incremental run must equal a full exact rematch (which then stays)."""
    incremental = _snapshot(conn, space.space_id)
    _match(db_url, space, rematch=True, k=k)
    assert _snapshot(conn, space.space_id) == incremental
    return incremental


@pytest.mark.parametrize(
    ("distance", "storage", "seed_value"),
    [
        ("cosine", "vector", 1),
        ("cosine", "halfvec", 2),
        ("l2", "vector", 3),
        ("l2", "halfvec", 4),
        ("inner_product", "vector", 5),
        ("inner_product", "vector", 6),
    ],
)
def test_incremental_matching_equals_a_full_rematch(conn, db_url, distance, storage, seed_value):
    rng = np.random.default_rng(seed_value)
    dim, k = 12, 5
    world = seed(
        conn,
        n_training=150,
        n_generated=120,
        dim=dim,
        k=None,
        distance=distance,
        storage=storage,
        seed=seed_value,
        months=3,  # January to March 2026: dated opt-outs cover some outputs and spare others
    )
    space = world["space"]
    first = _match(db_url, space, k=k)
    assert first.matched == 120
    _full_rematch_equals(conn, db_url, space, k)
    owner, paid = world["owner_ids"][0], world["license_ids"][0]
    other = make_license(conn, "other")  # only some late images: excluding it spares most matches
    centres = world["training_vectors"]
    late_total = 0
    for round_number in range(4):
        # Late training images, some near existing generated images (so they do enter top-ks).
        n_new = int(rng.integers(3, 12))
        with conn.transaction():
            new = add_training_images(
                conn,
                [owner] * n_new,
                [paid if i % 3 else other for i in range(n_new)],
                tag=f"late{round_number}",
            )
            parents = rng.integers(0, len(world["generated_vectors"]), size=n_new)
            vectors = world["generated_vectors"][parents] + 0.3 * rng.normal(size=(n_new, dim)).astype(
                np.float32
            )
            store.copy_vectors(conn, space, "training", new, vectors.astype(np.float32), source="test")
        # Rights changes: a few opt-outs and opt-ins, a licence excluded or included again.
        ids = [r[0] for r in conn.execute("SELECT training_id FROM gmv.training_image ORDER BY training_id")]
        for training_id in rng.choice(ids, size=4, replace=False).tolist():
            day = [None, "2026-02-01", "2026-03-01"][int(rng.integers(0, 3))]
            conn.execute(
                "UPDATE gmv.training_image SET opted_out = true, opted_out_from = %s WHERE training_id = %s",
                (day, training_id),
            )
        if round_number % 2:
            back = rng.choice(ids, size=4, replace=False).tolist()
            conn.execute(
                "UPDATE gmv.training_image SET opted_out = false, opted_out_from = NULL WHERE training_id = ANY(%s)",
                (back,),
            )
        conn.execute("UPDATE gmv.license SET excluded = %s WHERE license_id = %s", (round_number == 1, other))
        # And new generated images, matched for the first time in the same run.
        with conn.transaction():
            days = [dt.datetime(2026, 1 + int(m), 10, tzinfo=dt.timezone.utc) for m in rng.integers(0, 3, 10)]
            gen = add_generated_images(conn, 10, world["run_id"], tag=f"gen{round_number}", created_at=days)
            gvec = centres[rng.integers(0, len(centres), size=10)] + 0.25 * rng.normal(size=(10, dim))
            store.copy_vectors(conn, space, "generated", gen, gvec.astype(np.float32), source="test")
        total = conn.execute("SELECT count(*) FROM gmv.generated_image").fetchone()[0]

        result = _match(db_url, space)

        assert 0 < result.matched < total, (round_number, result)
        late_total += result.late_rematched
        _full_rematch_equals(conn, db_url, space, k)
    assert late_total > 0


def test_late_vectors_that_enter_no_top_k_rematch_nothing(conn, db_url):
    world = seed(conn, n_training=100, n_generated=40, dim=8, seed=11)
    space = world["space"]
    _match(db_url, space, k=4)
    before = _snapshot(conn, space.space_id)
    owner, paid = world["owner_ids"][0], world["license_ids"][0]
    with conn.transaction():
        far = add_training_images(conn, [owner] * 3, [paid] * 3, tag="far")
        # Pointing away from everything: never among the 4 nearest by cosine distance.
        vectors = -np.abs(np.ones((3, 8), np.float32)) * np.sign(world["generated_vectors"].sum(0))
        store.copy_vectors(conn, space, "training", far, vectors, source="test")
    result = _match(db_url, space)
    assert (result.late_rematched, result.matched) == (0, 0)
    assert _snapshot(conn, space.space_id) == before
    assert conn.execute(
        "SELECT count(*) FROM gmv.match_coverage WHERE training_id = ANY(%s)", (far.tolist(),)
    ).fetchone() == (3,)


def test_a_late_vector_fills_images_matched_with_fewer_than_k(conn, db_url):
    world = seed(conn, n_training=3, n_generated=5, dim=4, seed=12, distance="l2")
    space = world["space"]
    _match(db_url, space, k=5)
    assert conn.execute("SELECT count(*) FROM gmv.match").fetchone() == (15,)
    owner, paid = world["owner_ids"][0], world["license_ids"][0]
    with conn.transaction():
        new = add_training_images(conn, [owner] * 2, [paid] * 2, tag="more")
        # Far from everything (l2): farther than all 3 matches, they enter only as 4th and 5th.
        away = np.full((2, 4), 1000.0, np.float32) * np.array([[1], [2]], np.float32)
        store.copy_vectors(conn, space, "training", new, away, source="test")
    result = _match(db_url, space)
    assert result.late_rematched == 5
    assert conn.execute("SELECT count(*) FROM gmv.match").fetchone() == (25,)
    _full_rematch_equals(conn, db_url, space, 5)


def test_gmv_match_says_how_many_images_late_vectors_rematched(gmv, conn):
    world = seed(conn, n_training=60, n_generated=30, dim=8, seed=13)
    space = world["space"]
    gmv("match", "--space", space.name, "--k", "3", "--exact")
    owner, paid = world["owner_ids"][0], world["license_ids"][0]
    with conn.transaction():
        new = add_training_images(conn, [owner] * 2, [paid] * 2, tag="cli")
        store.copy_vectors(conn, space, "training", new, world["generated_vectors"][:2], source="test")
    out = gmv("match", "--space", space.name, "--exact").output
    stale = conn.execute(
        "SELECT count(DISTINCT generated_id) FROM gmv.match WHERE training_id = ANY(%s)", (new.tolist(),)
    ).fetchone()[0]
    assert stale >= 2
    assert f"re-matched {stale:,} generated images that training images embedded (or made eligible)" in out
    assert f"matched {stale:,} generated images" in out


def test_upgrading_counts_the_stored_vectors_of_matched_spaces_as_covered(db_url):
    from gmv_sql.db.migrate import downgrade, upgrade

    with connect(db_url, autocommit=True) as conn:
        world = seed(conn, n_training=20, n_generated=6, dim=4, k=3)
        seed(conn, n_training=5, n_generated=2, dim=4, space="unmatched", seed=1)
    # Back to before 0007 (its coverage table goes with it), then up again: the stored matches of the
    # matched space competed with every stored vector.
    downgrade(db_url, "0006_ledger")
    upgrade(db_url)
    with connect(db_url, autocommit=True) as conn:
        covered = conn.execute("SELECT space_id, count(*) FROM gmv.match_coverage GROUP BY 1").fetchall()
        assert covered == [(world["space"].space_id, 20)]
        before = _snapshot(conn, world["space"].space_id)
    assert _match(db_url, world["space"]).late_rematched == 0
    with connect(db_url, autocommit=True) as conn:
        assert _snapshot(conn, world["space"].space_id) == before
