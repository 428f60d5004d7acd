"""The opt-out date rule: an opt-out from day D covers generated images created on or after D (UTC).

Earlier outputs keep their matches with the image, hence its credit in their period; later outputs
are re-matched without it by the next `gmv match`, exactly as if the image had never been there
for them. Both sides are checked against an exact numpy reference.
"""

from __future__ import annotations

import datetime as dt

import numpy as np

from gmv_sql.db.connect import connect
from gmv_sql.embed import store
from gmv_sql.match import matcher
from gmv_sql.value.refresh import refresh
from tests.factories import add_generated_images, numpy_knn, seed

JAN = dt.datetime(2026, 1, 15, 12, tzinfo=dt.timezone.utc)
FEB_START = dt.datetime(2026, 2, 1, tzinfo=dt.timezone.utc)


def _matches(conn, space_id: int) -> dict[int, list[int]]:
    out: dict[int, list[int]] = {}
    for g, t in conn.execute(
        "SELECT generated_id, training_id FROM gmv.match WHERE space_id = %s ORDER BY generated_id, rank",
        (space_id,),
    ):
        out.setdefault(g, []).append(t)
    return out


def _expected(world, generated_ids, vectors, eligible) -> dict[int, list[int]]:
    order, _ = numpy_knn(world["training_vectors"], vectors, world["k"], eligible=eligible)
    return {
        int(g): [int(world["training_ids"][i]) for i in row]
        for g, row in zip(generated_ids, order, strict=True)
    }


def _match(db_url, space) -> matcher.MatchResult:
    return matcher.match_space(lambda: connect(db_url, autocommit=True), space, exact=True, workers=2)


def test_outputs_before_the_day_keep_the_image_later_ones_are_rematched_without_it(conn, db_url):
    # Generated images alternate between January 15 and February 15 (months=2).
    world = seed(conn, n_training=120, n_generated=60, dim=8, k=4, months=2, seed=3)
    space, ids = world["space"], world["training_ids"]
    created = np.array(
        [r[0] for r in conn.execute("SELECT created_at FROM gmv.generated_image ORDER BY generated_id")]
    )
    assert created[0] < FEB_START <= created[1]
    before = _matches(conn, space.space_id)
    # The training images matched most often, in both months: opted out from February 1.
    popular = [
        r[0]
        for r in conn.execute(
            "SELECT m.training_id FROM gmv.match m JOIN gmv.generated_image g USING (generated_id)"
            " GROUP BY 1 HAVING count(*) FILTER (WHERE g.created_at < %s) > 0"
            " AND count(*) FILTER (WHERE g.created_at >= %s) > 0 ORDER BY count(*) DESC, 1 LIMIT 3",
            (FEB_START, FEB_START),
        )
    ]
    assert len(popular) == 3
    conn.execute(
        "UPDATE gmv.training_image SET opted_out = true, opted_out_from = '2026-02-01' WHERE training_id = ANY(%s)",
        (popular,),
    )
    refresh(conn)
    jan_credit = conn.execute(
        "SELECT training_id, round(value::numeric, 12) FROM gmv.training_credit_monthly WHERE period = '2026-01-01'"
        " AND training_id = ANY(%s) ORDER BY 1",
        (popular,),
    ).fetchall()

    result = _match(db_url, space)

    after = _matches(conn, space.space_id)
    gids = world["generated_ids"]
    january = created < FEB_START
    eligible = ~np.isin(ids, popular)
    # January: untouched, opted-out images included.
    assert {int(g): after[int(g)] for g in gids[january]} == {int(g): before[int(g)] for g in gids[january]}
    assert any(t in popular for g in gids[january] for t in after[int(g)])
    # February: exactly the top-k without them.
    feb = ~january
    assert {int(g): after[int(g)] for g in gids[feb]} == _expected(
        world, gids[feb], world["generated_vectors"][feb], eligible
    )
    rematched = {int(g) for g in gids[feb] if set(before[int(g)]) & set(popular)}
    assert result.unmatched_ineligible == len(rematched) > 0
    # January's credit of the opted-out images is unchanged; February has none.
    refresh(conn)
    assert (
        conn.execute(
            "SELECT training_id, round(value::numeric, 12) FROM gmv.training_credit_monthly WHERE period = '2026-01-01'"
            " AND training_id = ANY(%s) ORDER BY 1",
            (popular,),
        ).fetchall()
        == jan_credit
    )
    assert (
        conn.execute(
            "SELECT count(*) FROM gmv.training_credit_monthly WHERE period = '2026-02-01' AND training_id = ANY(%s)",
            (popular,),
        ).fetchone()[0]
        == 0
    )


def test_new_outputs_are_matched_by_their_own_creation_day(conn, db_url):
    world = seed(conn, n_training=80, n_generated=10, dim=8, k=3, seed=5)
    space = world["space"]
    rng = np.random.default_rng(7)
    # New outputs close to training image 0, created on either side of its opt-out day.
    near = world["training_vectors"][0] + 0.01 * rng.normal(size=(6, 8)).astype(np.float32)
    days = [JAN, JAN, JAN, FEB_START, FEB_START + dt.timedelta(days=3), FEB_START - dt.timedelta(seconds=1)]
    with conn.transaction():
        new = add_generated_images(conn, 6, world["run_id"], tag="late", created_at=days)
        store.copy_vectors(conn, space, "generated", new, near, source="test")
    first = int(world["training_ids"][0])
    conn.execute(
        "UPDATE gmv.training_image SET opted_out = true, opted_out_from = '2026-02-01' WHERE training_id = %s",
        (first,),
    )
    _match(db_url, space)
    after = _matches(conn, space.space_id)
    eligible = world["training_ids"] != first
    before_day = np.array([d < FEB_START for d in days])
    assert {int(g): after[int(g)] for g in new[before_day]} == _expected(
        world, new[before_day], near[before_day], None
    )
    assert all(after[int(g)][0] == first for g in new[before_day])
    assert {int(g): after[int(g)] for g in new[~before_day]} == _expected(
        world, new[~before_day], near[~before_day], eligible
    )
    assert all(first not in after[int(g)] for g in new[~before_day])


def test_moving_the_day_or_opting_in_lets_the_image_compete_again(conn, db_url):
    world = seed(conn, n_training=80, n_generated=40, dim=8, k=3, months=2, seed=9)
    space = world["space"]
    _match(db_url, space)  # records what the seeded matches competed with
    top = [
        r[0]
        for r in conn.execute(
            "SELECT training_id FROM gmv.match GROUP BY 1 ORDER BY count(*) DESC, 1 LIMIT 2"
        )
    ]
    conn.execute("UPDATE gmv.training_image SET opted_out = true WHERE training_id = ANY(%s)", (top,))
    _match(db_url, space)
    assert not set(top) & {t for ts in _matches(conn, space.space_id).values() for t in ts}
    # Narrowed to February on: January outputs get the images back, February ones stay without.
    conn.execute(
        "UPDATE gmv.training_image SET opted_out_from = '2026-02-01' WHERE training_id = ANY(%s)", (top,)
    )
    result = _match(db_url, space)
    assert result.late_rematched > 0
    gids, created = (
        world["generated_ids"],
        np.array(
            [r[0] for r in conn.execute("SELECT created_at FROM gmv.generated_image ORDER BY generated_id")]
        ),
    )
    january = created < FEB_START
    after = _matches(conn, space.space_id)
    vectors = world["generated_vectors"]
    assert {int(g): after[int(g)] for g in gids[january]} == _expected(
        world, gids[january], vectors[january], None
    )
    eligible = ~np.isin(world["training_ids"], top)
    assert {int(g): after[int(g)] for g in gids[~january]} == _expected(
        world, gids[~january], vectors[~january], eligible
    )
    # Opted in: everything as if never opted out.
    conn.execute("UPDATE gmv.training_image SET opted_out = false, opted_out_from = NULL")
    _match(db_url, space)
    assert _matches(conn, space.space_id) == _expected(world, gids, vectors, None)
