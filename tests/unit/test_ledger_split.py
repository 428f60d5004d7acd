"""The ledger's cent split (largest remainder), without a database: exact sums, within a cent of pro
rata, ties by key order, nothing for a zero weight."""

from __future__ import annotations

import decimal
import random

import pytest

from gmv_sql.ledger.split import from_cents, largest_remainder, to_cents

D = decimal.Decimal


def test_thirds_and_ties():
    assert largest_remainder(10000, {"b": D(1), "a": D(1), "c": D(1)}) == {"a": 3334, "b": 3333, "c": 3333}
    order = {"a": "z", "b": "y", "c": "x"}  # tie-break by another key (e.g. owner name for owner ids)
    assert largest_remainder(10000, {"a": D(1), "b": D(1), "c": D(1)}, order) == {
        "a": 3333,
        "b": 3333,
        "c": 3334,
    }


def test_zero_weights_and_zero_total():
    assert largest_remainder(7, {"a": D(0), "b": D(2)}) == {"a": 0, "b": 7}
    assert largest_remainder(7, {"a": D(0)}) == {"a": 0}
    assert largest_remainder(0, {"a": D(1)}) == {"a": 0}
    with pytest.raises(ValueError):
        largest_remainder(-1, {"a": D(1)})


def test_random_splits_add_up_and_stay_within_a_cent():
    rng = random.Random(7)
    for _ in range(500):
        n = rng.randint(1, 30)
        weights = {i: D(str(round(rng.random() * 10 ** rng.randint(-6, 6), 9))) for i in range(n)}
        if rng.random() < 0.2:
            weights = {i: D("0.333333333") for i in range(n)}
        total = rng.choice([0, 1, 7, 100, 99999, 10**12 + 3])
        parts = largest_remainder(total, weights)
        whole = sum(weights.values())
        if whole == 0:
            assert set(parts.values()) == {0}
            continue
        assert sum(parts.values()) == total
        for key, weight in weights.items():
            assert abs(D(parts[key]) - D(total) * weight / whole) < 1


def test_cents_round_trip():
    assert to_cents(D("1250.01")) == 125001 and from_cents(125001) == D("1250.01")
    with pytest.raises(ValueError):
        to_cents(D("0.001"))
