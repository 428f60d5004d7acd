"""The softmax_calibrated scheme: temperature per space from its own distances, against numpy."""

from __future__ import annotations

import json
from collections import defaultdict

import numpy as np
import pytest

from gmv_sql.value import calibration
from gmv_sql.value.refresh import refresh
from tests.factories import fingerprint, refused, seed

FACTOR = calibration.FACTOR
STATISTIC = calibration.STATISTIC


def numpy_statistics(matches) -> dict[str, float]:
    """The statistics of sql/queries/calibration.sql, independently: per generated image d1, d2, dk."""
    by_generated = defaultdict(list)
    for g, _rank, _t, d, _k in matches:
        by_generated[g].append(d)
    d = [sorted(v) for v in by_generated.values()]
    d1 = np.array([v[0] for v in d])
    gap2 = np.array([v[1] - v[0] for v in d if len(v) > 1])
    gapk = np.array([v[-1] - v[0] for v in d])
    return {
        "median_d1": float(np.median(d1)),
        "median_gap2": float(np.median(gap2)),
        "mean_gap2": float(gap2.mean()),
        "median_gapk": float(np.median(gapk)),
        "mean_gapk": float(gapk.mean()),
    }


def numpy_softmax_credit(matches, quality, temperature) -> dict[int, float]:
    by_generated = defaultdict(list)
    for g, _rank, t, d, _k in matches:
        by_generated[g].append((t, d))
    credit: dict[int, float] = defaultdict(float)
    for g, rows in by_generated.items():
        dists = np.array([d for _, d in rows])
        raw = np.exp(-(dists - dists.min()) / temperature)
        for (t, _), w in zip(rows, raw / raw.sum(), strict=True):
            credit[t] += quality[g] * w
    return credit


def _matches(conn, space_id):
    return conn.execute(
        "SELECT generated_id, rank, training_id, distance, k FROM gmv.match WHERE space_id = %s", (space_id,)
    ).fetchall()


def _credit(conn, space_id, scheme="softmax_calibrated") -> dict[int, float]:
    return dict(
        conn.execute(
            "SELECT c.training_id, c.value FROM gmv.training_credit c JOIN gmv.valuation_scheme s USING (scheme_id) "
            "WHERE c.space_id = %s AND s.name = %s AND c.n_matches > 0",
            (space_id, scheme),
        ).fetchall()
    )


def _weights(conn, space_id, scheme="softmax_calibrated") -> dict[tuple[int, int], float]:
    return {
        (g, r): w
        for g, r, w in conn.execute(
            "SELECT w.generated_id, w.rank, w.weight FROM gmv.match_weight w JOIN gmv.valuation_scheme s USING (scheme_id) "
            "WHERE w.space_id = %s AND s.name = %s",
            (space_id, scheme),
        )
    }


def _calibration(conn, space_id):
    return conn.execute(
        "SELECT c.temperature, c.rule, c.statistics, c.set_by FROM gmv.scheme_calibration c "
        "JOIN gmv.valuation_scheme s USING (scheme_id) WHERE c.space_id = %s AND s.name = 'softmax_calibrated'",
        (space_id,),
    ).fetchone()


def test_calibrated_temperature_and_credit_match_numpy(conn):
    world = seed(conn, n_training=150, n_generated=60, dim=8, quality="random", seed=5, k=9)
    space_id = world["space"].space_id
    refresh(conn)  # calibrates the space (it has matches, no temperature yet)
    matches = _matches(conn, space_id)
    expected_stats = numpy_statistics(matches)
    temperature, rule, statistics, set_by = _calibration(conn, space_id)
    assert set_by == "calibrated" and STATISTIC.replace("median_", "") in rule.replace("d2 - d1", "gap2")
    for name, value in expected_stats.items():
        assert statistics[name] == pytest.approx(value, rel=1e-12), name
    assert temperature == pytest.approx(FACTOR * expected_stats[STATISTIC], rel=1e-12)
    quality = dict(conn.execute("SELECT generated_id, quality FROM gmv.generated_image"))
    expected = numpy_softmax_credit(matches, quality, temperature)
    got = _credit(conn, space_id)
    assert got.keys() == expected.keys()
    for t, v in expected.items():
        assert got[t] == pytest.approx(v, abs=1e-9, rel=1e-12), t


@pytest.mark.parametrize("temperature", ["1e-4", "0.01", "0.3", "50"])
def test_credits_add_up_to_quality_for_every_scheme_and_temperature(conn, gmv, temperature):
    world = seed(conn, n_training=80, n_generated=30, dim=6, quality="random", seed=2, k=6)
    space_id = world["space"].space_id
    gmv("value", "set-temperature", temperature, "--space", "test")
    assert _calibration(conn, space_id)[0] == float(temperature)
    total_quality = float(world["quality"].sum())
    totals = dict(
        conn.execute(
            "SELECT s.name, sum(c.value) FROM gmv.training_credit c JOIN gmv.valuation_scheme s USING (scheme_id) "
            "WHERE c.space_id = %s GROUP BY s.name",
            (space_id,),
        ).fetchall()
    )
    assert set(totals) == {r[0] for r in conn.execute("SELECT name FROM gmv.valuation_scheme")}
    for name, total in totals.items():
        assert total == pytest.approx(total_quality, abs=1e-9), name
    expected = numpy_softmax_credit(
        _matches(conn, space_id),
        dict(conn.execute("SELECT generated_id, quality FROM gmv.generated_image")),
        float(temperature),
    )
    got = _credit(conn, space_id)
    for t, v in expected.items():
        assert got[t] == pytest.approx(v, abs=1e-9, rel=1e-12), t


def test_scaling_every_distance_leaves_the_calibrated_weights_unchanged(conn, gmv):
    world = seed(conn, n_training=120, n_generated=40, dim=8, seed=9, k=8)
    space_id = world["space"].space_id
    gmv("value", "calibrate", "--space", "test")
    before_t = _calibration(conn, space_id)[0]
    before = _weights(conn, space_id)
    fixed_before = _weights(conn, space_id, "softmax_distance")
    conn.execute("UPDATE gmv.match SET distance = distance * 37.25 WHERE space_id = %s", (space_id,))
    gmv("value", "calibrate", "--space", "test")
    assert _calibration(conn, space_id)[0] == pytest.approx(37.25 * before_t, rel=1e-12)
    after = _weights(conn, space_id)
    assert after.keys() == before.keys()
    for key, w in before.items():
        assert after[key] == pytest.approx(w, abs=1e-9), key
    # The fixed temperature is not scale-invariant: the same scaling changes its weights.
    fixed_after = _weights(conn, space_id, "softmax_distance")
    assert max(abs(fixed_after[k] - w) for k, w in fixed_before.items()) > 1e-3


def test_match_calibrates_a_new_space_and_keeps_an_explicit_temperature(conn, gmv):
    world = seed(conn, n_training=60, n_generated=20, dim=6, seed=3)
    space_id = world["space"].space_id
    assert _calibration(conn, space_id) is None
    result = gmv("match", "--space", "test", "--k", "5", "--exact")
    assert "calibrated scheme 'softmax_calibrated'" in result.output
    calibrated_t = _calibration(conn, space_id)[0]
    gmv("value", "set-temperature", "0.25", "--space", "test")
    gmv("match", "--space", "test", "--k", "5", "--exact", "--rematch")
    gmv("value", "refresh")
    assert _calibration(conn, space_id)[:2] == (0.25, "explicit")
    settings = json.loads(gmv("value", "default-scheme", "--space", "test", "--format", "json").output)
    row = next(r for r in settings if r["scheme"] == "softmax_calibrated")
    assert row["temperature"] == 0.25 and row["temperature_set_by"] == "explicit"
    gmv("value", "calibrate", "--space", "test")
    assert _calibration(conn, space_id)[0] == pytest.approx(calibrated_t, rel=1e-12)
    shown = conn.execute(
        "SELECT temperature, temperature_set_by, temperature_rule, temperature_statistics->>'n_generated' "
        "FROM report.scheme_setting WHERE space = 'test' AND scheme = 'softmax_calibrated'"
    ).fetchone()
    assert (
        shown[0] == pytest.approx(calibrated_t) and shown[1] == "calibrated" and shown[2].startswith("T = ")
    )
    assert shown[3] == "20"


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        (("set-temperature", "0"), "temperature '0' is not a finite number > 0"),
        (("set-temperature", "--", "-0.5"), "temperature '-0.5' is not a finite number > 0"),
        (("set-temperature", "nan"), "temperature 'nan'"),
        (("set-temperature", "inf"), "temperature 'inf'"),
        (("set-temperature", "warm"), "temperature 'warm'"),
        (("set-temperature", "0.1", "--scheme", "nope"), "no valuation scheme 'nope'"),
        (("set-temperature", "0.1", "--scheme", "rank_linear"), "not softmax_calibrated"),
        (("calibrate", "--scheme", "softmax_distance"), "not softmax_calibrated"),
        (("default-scheme", "nope"), "no valuation scheme 'nope'"),
        (("calibrate", "--space", "other"), "no embedding space"),
    ],
)
def test_bad_input_is_one_line_and_writes_nothing(conn, gmv, args, reason):
    seed(conn, n_training=30, n_generated=10, dim=4, k=4)
    gmv("value", "refresh")
    before = [fingerprint(conn, t) for t in ("scheme_calibration", "valuation_scheme", "embedding_space")]
    refused(gmv, "value", *args, reason=reason)
    assert [
        fingerprint(conn, t) for t in ("scheme_calibration", "valuation_scheme", "embedding_space")
    ] == before


def test_space_without_matches_cannot_be_calibrated(conn, gmv):
    seed(conn, n_training=30, n_generated=10, dim=4)
    refused(gmv, "value", "calibrate", "--space", "test", reason="has no matches to calibrate from")
    assert conn.execute("SELECT count(*) FROM gmv.scheme_calibration").fetchone()[0] == 0


def test_default_scheme_new_spaces_take_it_existing_spaces_keep_theirs(conn, gmv):
    seed(conn, n_training=30, n_generated=10, dim=4, k=4)
    gmv("value", "refresh")
    old = conn.execute("SELECT name FROM gmv.valuation_scheme WHERE is_default").fetchone()[0]
    other = "uniform" if old != "uniform" else "rank_linear"
    gmv("value", "default-scheme", other)
    seed(conn, n_training=0, n_generated=0, dim=4, space="newer", seed=1, with_matches=False)
    defaults = dict(
        conn.execute("SELECT space, scheme FROM report.scheme_setting WHERE is_space_default").fetchall()
    )
    assert defaults == {"test": old, "newer": other}
    gmv("value", "default-scheme", "reciprocal_rank", "--space", "test")
    audit = json.loads(gmv("report", "owners", "--space", "test", "--format", "json").stdout)
    assert audit  # the report runs on the space's default scheme
    assert conn.execute(
        "SELECT scheme FROM report.scheme_setting WHERE space = 'test' AND is_space_default"
    ).fetchone() == ("reciprocal_rank",)


def test_upgrade_keeps_existing_spaces_on_their_scheme_new_spaces_get_the_calibrated_one(db_url):
    import psycopg

    from gmv_sql.db.migrate import downgrade, upgrade
    from gmv_sql.spaces import get_or_create_space

    downgrade(db_url, "0004_consolidate")
    with psycopg.connect(db_url, autocommit=True) as conn:
        assert conn.execute("SELECT name FROM gmv.valuation_scheme WHERE is_default").fetchone() == (
            "rank_linear",
        )
        conn.execute("INSERT INTO gmv.embedding_space (name, model, dim) VALUES ('old', 'pixels', 4)")
    upgrade(db_url)
    with psycopg.connect(db_url, autocommit=True) as conn:
        get_or_create_space(conn, "new", model="pixels", dim=4)
        defaults = dict(
            conn.execute("SELECT space, scheme FROM report.scheme_setting WHERE is_space_default").fetchall()
        )
        assert defaults == {"old": "rank_linear", "new": "softmax_calibrated"}
    downgrade(db_url, "0004_consolidate")
    with psycopg.connect(db_url, autocommit=True) as conn:
        assert conn.execute("SELECT name FROM gmv.valuation_scheme WHERE is_default").fetchone() == (
            "rank_linear",
        )
    upgrade(db_url)
