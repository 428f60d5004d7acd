"""Valuation views against an independent numpy implementation of GMValuator's credit."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from functools import partial

import numpy as np
import psycopg
import pytest

from gmv_sql.db.connect import connect
from gmv_sql.match import matcher
from gmv_sql.value.refresh import refresh
from tests.factories import seed


def numpy_credit(matches, quality, schemes) -> dict[tuple[str, int], float]:
    """credit[(scheme, training_id)] = sum_j q_j * w_rj, w normalised per generated image (DESIGN.md)."""
    by_generated = defaultdict(list)
    for g, rank, t, d, k in matches:
        by_generated[g].append((rank, t, d, k))
    credit: dict[tuple[str, int], float] = defaultdict(float)
    for name, formula, temperature in schemes:
        for g, rows in by_generated.items():
            ranks = np.array([r for r, _, _, _ in rows], dtype=float)
            dists = np.array([d for _, _, d, _ in rows], dtype=float)
            k = rows[0][3]
            if formula == "rank_linear":
                raw = k - ranks + 1
            elif formula == "reciprocal_rank":
                raw = 1 / ranks
            elif formula in ("softmax_distance", "softmax_calibrated"):
                raw = np.exp(-(dists - dists.min()) / temperature)  # underflows to 0.0 quietly in numpy
            else:
                raw = np.ones_like(ranks)
            weights = raw / raw.sum()
            for (_, t, _, _), w in zip(rows, weights, strict=True):
                credit[(name, t)] += quality[g] * w
    return credit


def _schemes(conn, space_id: int | None = None):
    """(name, formula, temperature) with the space's calibrated temperature (tests/db/test_calibration.py
    checks that temperature against numpy)."""
    return conn.execute(
        "SELECT s.name, s.formula, coalesce(c.temperature, s.temperature) FROM gmv.valuation_scheme s "
        "LEFT JOIN gmv.scheme_calibration c ON c.scheme_id = s.scheme_id AND c.space_id = %s ORDER BY s.scheme_id",
        (space_id,),
    ).fetchall()


def _check_against_numpy(conn, space_id: int) -> None:
    matches = conn.execute(
        "SELECT generated_id, rank, training_id, distance, k FROM gmv.match WHERE space_id = %s", (space_id,)
    ).fetchall()
    quality = dict(conn.execute("SELECT generated_id, quality FROM gmv.generated_image"))
    expected = numpy_credit(matches, quality, _schemes(conn, space_id))
    got = {
        (scheme, t): v
        for scheme, t, v in conn.execute(
            "SELECT vs.name, c.training_id, c.value FROM gmv.training_credit c "
            "JOIN gmv.valuation_scheme vs USING (scheme_id) WHERE c.space_id = %s AND c.n_matches > 0",
            (space_id,),
        )
    }
    assert got.keys() == expected.keys()
    for key, value in expected.items():
        assert got[key] == pytest.approx(value, abs=1e-9, rel=1e-12), key
    matched_quality = sum(quality[g] for g in {m[0] for m in matches})
    for name, _, _ in _schemes(conn, space_id):
        total = sum(v for (s, _), v in got.items() if s == name)
        assert total == pytest.approx(matched_quality, abs=1e-9), name


def test_every_scheme_matches_numpy_with_random_quality(conn, db_url):
    world = seed(conn, n_training=120, n_generated=40, dim=8, quality="random", seed=11)
    # A second softmax temperature, so the stored temperature is what the view uses.
    conn.execute(
        "INSERT INTO gmv.valuation_scheme (name, formula, temperature) VALUES ('softmax_hot', 'softmax_distance', 2.5)"
    )
    matcher.match_space(partial(connect, db_url), world["space"], k=7, exact=True, workers=1)
    refresh(conn)
    _check_against_numpy(conn, world["space"].space_id)
    assert not np.allclose(world["quality"], 1.0)


def test_softmax_never_underflows_and_ties_split_evenly(conn):
    """Distances hundreds of temperatures apart must give weight ~0, not an error; equal ones share equally."""
    world = seed(conn, n_training=10, n_generated=3, dim=4, quality=[1.0, 2.0, 0.5])
    space_id = world["space"].space_id
    t = [int(x) for x in world["training_ids"]]
    g = [int(x) for x in world["generated_ids"]]
    conn.execute("UPDATE gmv.embedding_space SET match_k = 4")
    rows = [
        (g[0], 1, t[0], 0.0),
        (g[0], 2, t[1], 50.0),
        (g[0], 3, t[2], 1e6),
        (g[0], 4, t[3], 1e300),
        (g[1], 1, t[4], 0.3),
        (g[1], 2, t[5], 0.3),
        (g[1], 3, t[6], 0.3),
        (g[1], 4, t[7], 0.3),
        (g[2], 1, t[8], -5.0),
        (g[2], 2, t[9], -4.9),  # inner-product style negative distances, fewer than k
    ]
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO gmv.match (space_id, generated_id, rank, training_id, distance, k) VALUES (%s, %s, %s, %s, %s, 4)",
            [(space_id, *r) for r in rows],
        )
    refresh(conn)
    _check_against_numpy(conn, space_id)
    soft = dict(
        conn.execute(
            "SELECT training_id, value FROM gmv.training_credit c JOIN gmv.valuation_scheme s USING (scheme_id) "
            "WHERE s.name = 'softmax_distance'"
        ).fetchall()
    )
    assert soft[t[0]] == pytest.approx(1.0) and soft[t[3]] < 1e-300
    assert [soft[x] for x in t[4:8]] == pytest.approx([0.5] * 4)


def test_monthly_credit_uses_utc_months_whatever_the_session_timezone(conn, db_url):
    utc = dt.timezone.utc
    created = [
        dt.datetime(2026, 1, 31, 23, 30, tzinfo=utc),  # February already east of UTC
        dt.datetime(2026, 2, 1, 0, 30, tzinfo=utc),  # still January west of UTC
        dt.datetime(2026, 3, 15, tzinfo=utc),
        dt.datetime(2026, 3, 16, tzinfo=utc),
    ]
    world = seed(conn, n_training=30, n_generated=4, dim=4, created_at=created, quality=[1, 2, 3, 4])
    matcher.match_space(partial(connect, db_url), world["space"], k=3, exact=True, workers=1)
    for zone in ("Pacific/Kiritimati", "America/Anchorage"):
        conn.execute(f"SET TimeZone = '{zone}'")
        refresh(conn)
        totals = dict(
            conn.execute(
                "SELECT to_char(period, 'YYYY-MM'), sum(value) FROM gmv.training_credit_monthly c "
                "JOIN gmv.valuation_scheme s USING (scheme_id) WHERE s.is_default GROUP BY 1"
            ).fetchall()
        )
        assert totals == pytest.approx({"2026-01": 1.0, "2026-02": 2.0, "2026-03": 7.0}), zone


def test_refresh_never_blocks_readers_and_they_see_old_rows_until_it_commits(conn, db_url):
    world = seed(conn, n_training=30, n_generated=5, dim=4)
    matcher.match_space(partial(connect, db_url), world["space"], k=3, exact=True, workers=1)
    refresh(conn)
    before = conn.execute("SELECT count(*), sum(value) FROM gmv.training_credit").fetchone()
    conn.execute("UPDATE gmv.generated_image SET quality = 2")
    with psycopg.connect(db_url) as reader:
        # An open read transaction holds an ACCESS SHARE lock on the tables for its whole duration.
        reader.execute("SELECT count(*) FROM gmv.training_credit").fetchone()
        conn.execute("SET lock_timeout = '1s'")
        with conn.transaction():
            refresh(conn)  # DELETE + INSERT of the changed slices: no lock a reader holds conflicts
            conn.execute("INSERT INTO gmv.credit_dirty (kind) VALUES ('credit'), ('images')")
            refresh(conn)  # so does recomputing everything
            assert reader.execute("SELECT count(*), sum(value) FROM gmv.training_credit").fetchone() == before
        # Still inside its transaction, the reader sees the committed rows (READ COMMITTED), unblocked.
        after = reader.execute("SELECT count(*), sum(value) FROM gmv.training_credit").fetchone()
        assert after[0] == before[0] and after[1] == pytest.approx(2 * before[1])
        reader.rollback()


def test_report_views_agree_with_credit(conn, db_url):
    world = seed(
        conn,
        n_training=60,
        n_generated=20,
        dim=8,
        owners=3,
        quality="random",
        licenses=(("paid", True, False), ("free", False, False)),
    )
    matcher.match_space(partial(connect, db_url), world["space"], k=5, exact=True, workers=1)
    refresh(conn)
    tv = conn.execute(
        "SELECT count(*), sum(value), sum(share) FROM report.training_value WHERE scheme = 'rank_linear'"
    ).fetchone()
    assert tv[0] == 60  # every training image, matched or not
    assert tv[1] == pytest.approx(world["quality"].sum()) and tv[2] == pytest.approx(1.0)
    owners = conn.execute(
        "SELECT owner, value, n_images FROM report.owner_value WHERE scheme = 'rank_linear' ORDER BY owner"
    ).fetchall()
    assert [o for o, _, _ in owners] == world["owner_names"]
    assert sum(v for _, v, _ in owners) == pytest.approx(world["quality"].sum())
    attribution = conn.execute(
        "SELECT generated_id, sum(weight) FROM report.attribution WHERE scheme = 'uniform' GROUP BY 1"
    ).fetchall()
    assert len(attribution) == 20 and all(w == pytest.approx(1.0) for _, w in attribution)


def test_credit_tables_are_never_truncated_by_vacuum(conn):
    """Vacuum truncation takes ACCESS EXCLUSIVE for a moment: report readers must never wait on it."""
    from gmv_sql.db.catalog import CREDIT_TABLES

    rows = conn.execute(
        "SELECT relname, reloptions FROM pg_class WHERE relname = ANY(%s) AND relkind = 'r' "
        "AND relnamespace = 'gmv'::regnamespace ORDER BY 1",
        (list(CREDIT_TABLES),),
    ).fetchall()
    assert rows == [(name, ["vacuum_truncate=false"]) for name in sorted(CREDIT_TABLES)]
