"""Royalty statements: cents add up exactly to the pool, pro rata to royalty-bearing credit."""

from __future__ import annotations

import datetime as dt
import decimal

import numpy as np
import pytest

from gmv_sql.errors import InputError
from gmv_sql.report import royalties as royalty
from gmv_sql.report.common import resolve_target
from tests.factories import (
    add_generated_images,
    add_training_images,
    make_license,
    make_owner,
    make_run,
    seed,
)

D = decimal.Decimal


def _world(conn, n_owners: int, *, royalty_free_owner: bool = False) -> dict:
    """One training image per owner (plus one free-licence image for owner 0), an empty space."""
    world = seed(
        conn,
        n_training=0,
        n_generated=0,
        dim=2,
        owners=0,
        training_vectors=np.zeros((0, 2)),
        generated_vectors=np.zeros((0, 2)),
    )
    paid = make_license(conn, "paid")
    free = make_license(conn, "free", royalty_bearing=False)
    owners = [make_owner(conn, f"owner-{i:02d}") for i in range(n_owners)]
    images = add_training_images(conn, owners, [paid] * n_owners, tag="royalty")
    world["owner_images"] = images
    if royalty_free_owner:
        world["free_image"] = int(add_training_images(conn, [owners[0]], [free], tag="free")[0])
    world["run_id"] = make_run(conn)
    conn.execute("UPDATE gmv.embedding_space SET match_k = 1")
    return world


def _credit(conn, world, month: dt.date, credits: dict[int, float], tag: str) -> None:
    """Give training image t credit c in that month: one generated image of quality c matched to it (k = 1)."""
    items = list(credits.items())
    created = dt.datetime(month.year, month.month, 10, tzinfo=dt.timezone.utc)
    gen = add_generated_images(
        conn, len(items), world["run_id"], tag=tag, quality=[c for _, c in items], created_at=created
    )
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO gmv.match (space_id, generated_id, rank, training_id, distance, k) VALUES (%s, %s, 1, %s, 0.1, 1)",
            [(world["space"].space_id, int(g), int(t)) for g, (t, _) in zip(gen, items, strict=True)],
        )


def _split(conn, month: dt.date, pool: str) -> royalty.Statement:
    return royalty.record_and_split(conn, resolve_target(conn), month, royalty.parse_pool(pool), "EUR")


def test_hundred_over_three_equal_owners(conn):
    world = _world(conn, 3)
    month = dt.date(2026, 1, 1)
    _credit(conn, world, month, {int(t): 1.0 for t in world["owner_images"]}, "jan")
    statement = _split(conn, month, "100.00")
    amounts = {r[1]: r[5] for r in statement.rows}
    assert amounts == {"owner-00": D("33.34"), "owner-01": D("33.33"), "owner-02": D("33.33")}
    assert statement.paid == D("100.00")
    assert conn.execute("SELECT amount, currency FROM gmv.revenue_pool").fetchall() == [(D("100.00"), "EUR")]
    # Same month again replaces the pool, it does not add a second one.
    assert _split(conn, month, "0.02").paid == D("0.02")
    assert conn.execute("SELECT count(*) FROM gmv.revenue_pool").fetchone() == (1,)


def test_random_credits_always_add_up_to_the_pool(conn):
    """Property test: many months, awkward pools and credits; every statement sums to its pool exactly."""
    rng = np.random.default_rng(42)
    world = _world(conn, 12)
    pools = [
        "0.01",
        "0.07",
        "1.00",
        "100.00",
        "99999.99",
        "123456789.01",
        "0.00",
        "7.77",
        "1000000000.00",
        "3.33",
    ]
    for case in range(24):
        month = dt.date(2020 + case // 12, case % 12 + 1, 1)
        n = int(rng.integers(1, 13))
        chosen = rng.choice(world["owner_images"], size=n, replace=False)
        scale = 10.0 ** rng.integers(-6, 6)
        credits = {int(t): float(rng.uniform(0.001, 1.0) * scale) for t in chosen}
        if case % 5 == 0:  # exact ties
            credits = {t: 1.0 / 3.0 for t in credits}
        _credit(conn, world, month, credits, f"case{case}")
        pool = pools[case % len(pools)]
        statement = _split(conn, month, pool)
        assert statement.paid == D(pool), (case, statement.rows)
        assert all(r[5] >= 0 for r in statement.rows)
        # Pro rata within a cent: |amount - pool * credit / total| < 0.01.
        total = sum(credits.values())
        for r in statement.rows:
            exact = D(pool) * D(r[2]) / D(total)
            assert abs(r[5] - exact) < D("0.01"), (case, r)


def test_non_royalty_credit_is_shown_not_paid(conn):
    world = _world(conn, 2, royalty_free_owner=True)
    month = dt.date(2026, 3, 1)
    t0, t1 = (int(t) for t in world["owner_images"])
    _credit(conn, world, month, {t0: 1.0, t1: 3.0, world["free_image"]: 4.0}, "mar")
    statement = _split(conn, month, "10.00")
    by_owner = {r[1]: r for r in statement.rows}
    assert by_owner["owner-00"][2] == pytest.approx(1.0) and by_owner["owner-00"][3] == pytest.approx(4.0)
    assert by_owner["owner-00"][5] == D("2.50") and by_owner["owner-01"][5] == D("7.50")
    assert statement.paid == D("10.00")


def test_other_months_do_not_count(conn):
    world = _world(conn, 2)
    t0, t1 = (int(t) for t in world["owner_images"])
    _credit(conn, world, dt.date(2026, 1, 1), {t0: 5.0}, "jan")
    _credit(conn, world, dt.date(2026, 2, 1), {t1: 1.0}, "feb")
    statement = _split(conn, dt.date(2026, 2, 1), "9.99")
    assert [(r[1], r[5]) for r in statement.rows] == [("owner-01", D("9.99"))]


@pytest.mark.parametrize(
    ("parse", "text", "message"),
    [
        (royalty.parse_period, "2026-13", "not a month"),
        (royalty.parse_period, "2026-1", "not a month"),
        (royalty.parse_period, "jan", "not a month"),
        (royalty.parse_pool, "-1", "negative"),
        (royalty.parse_pool, "1.005", "fractions of a cent"),
        (royalty.parse_pool, "abc", "not a number"),
        (royalty.parse_pool, "NaN", "not a finite number"),
        (royalty.parse_pool, "1e30", "too large"),
        (royalty.parse_currency, "EURO", "three-letter"),
        (royalty.parse_currency, "€", "three-letter"),
    ],
)
def test_bad_input_is_refused(parse, text, message):
    with pytest.raises(InputError, match=message):
        parse(text)


def test_good_input_is_normalised():
    assert royalty.parse_period("2026-01") == dt.date(2026, 1, 1)
    assert royalty.parse_pool("100") == D("100.00")
    assert royalty.parse_pool("1_000.5") == D("1000.50")
    assert royalty.parse_currency("usd") == "USD"
