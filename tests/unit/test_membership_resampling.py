"""The membership audit's permutation p-value and bootstrap AUC interval (no database)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from gmv_sql.audit.membership import auc_interval, auc_of, membership_test, permutation_p_value


def exact_permutation_p(members, nonmembers) -> float:
    """Every relabelling of the pooled values: share with |mean difference| >= the observed one."""
    pooled = np.concatenate([members, nonmembers])
    n1 = len(members)
    observed = abs(np.mean(members) - np.mean(nonmembers))
    hits = total = 0
    for chosen in itertools.combinations(range(len(pooled)), n1):
        mask = np.zeros(len(pooled), bool)
        mask[list(chosen)] = True
        hits += abs(pooled[mask].mean() - pooled[~mask].mean()) >= observed - 1e-12
        total += 1
    return hits / total


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_permutation_p_agrees_with_every_relabelling(seed):
    rng = np.random.default_rng(seed)
    members = np.round(rng.gamma(2.0, 1.0, size=6) + 0.8 * seed, 1)  # ties and skew
    nonmembers = np.round(rng.gamma(2.0, 1.0, size=7), 1)
    exact = exact_permutation_p(members, nonmembers)
    estimate = permutation_p_value(members, nonmembers)
    # 9,999 random relabellings: standard error <= 0.005.
    assert estimate == pytest.approx(exact, abs=0.02)


def test_permutation_p_floor_and_reproducibility():
    members, nonmembers = np.arange(10.0, 20.0), np.arange(0.0, 10.0)
    p = permutation_p_value(members, nonmembers)
    assert p == pytest.approx(1 / 10_000)  # no relabelling is as extreme: the floor 1 / (B + 1)
    rng = np.random.default_rng(5)
    a, b = rng.normal(size=30), rng.normal(size=30)
    assert permutation_p_value(a, b) == permutation_p_value(a, b)


def test_auc_of_rows_is_the_pairwise_auc():
    rng = np.random.default_rng(3)
    members = np.round(rng.normal(size=(4, 9)), 1)
    nonmembers = np.round(rng.normal(size=(4, 11)), 1)
    for m, n in zip(members, nonmembers, strict=True):
        pairwise = np.mean([(x > y) + 0.5 * (x == y) for x in m for y in n])
        assert auc_of(m, n) == pytest.approx(pairwise)
    assert auc_of(members, nonmembers).shape == (4,)


def test_auc_interval_contains_the_auc_and_narrows_with_more_data():
    rng = np.random.default_rng(8)
    small = membership_test(rng.normal(0.5, 1, size=20), rng.normal(0, 1, size=20))
    large = membership_test(rng.normal(0.5, 1, size=500), rng.normal(0, 1, size=500))
    for result in (small, large):
        assert result.auc_ci_low <= result.auc <= result.auc_ci_high
    assert large.auc_ci_high - large.auc_ci_low < (small.auc_ci_high - small.auc_ci_low) / 3
    # The true AUC of N(0.5, 1) vs N(0, 1) is Phi(0.5 / sqrt 2) = 0.638.
    assert large.auc_ci_low < 0.638 < large.auc_ci_high
    assert auc_interval(np.array([5.0, 6.0]), np.array([1.0, 2.0])) == (1.0, 1.0)


def test_result_carries_them():
    result = membership_test([3.0, 4.0, 5.0, 6.0], [0.0, 1.0, 1.0, 2.0])
    d = result.as_dict()
    assert d["permutations"] == 9999 and d["bootstrap_resamples"] == 2000
    assert 0 < d["permutation_p_value"] < 0.05 and d["auc_ci_high"] == 1.0
    assert "permutation p" in result.summary() and "95% CI" in result.summary()
