"""Incremental credit (sql/derived/12_credit.sql): after any change and a refresh of the changed slices
only, every credit table equals a recomputation from scratch, and the numpy reference for every scheme."""

from __future__ import annotations

import datetime as dt
from functools import partial

import pytest

from gmv_sql import spaces
from gmv_sql.db.catalog import CREDIT_TABLES
from gmv_sql.db.connect import connect
from gmv_sql.match import matcher
from gmv_sql.value import calibration
from gmv_sql.value.refresh import refresh
from tests.db.test_valuation import _check_against_numpy
from tests.factories import seed

# Every credit table, with its key columns (the rest are compared as numbers).
KEYS = {
    "training_credit_monthly": "space_id, period, scheme_id, training_id",
    "training_credit": "space_id, scheme_id, training_id",
    "owner_credit_monthly": "space_id, scheme_id, owner_id, license_id, period",
    "owner_credit": "space_id, scheme_id, owner_id, license_id",
    "training_image_count": "owner_id, license_id",
}


def _snapshot(conn) -> dict[str, list[tuple]]:
    return {
        table: conn.execute(f"SELECT * FROM gmv.{table} ORDER BY {keys}").fetchall()
        for table, keys in KEYS.items()
    }


def _assert_same(got: dict, want: dict) -> None:
    for table in KEYS:
        assert len(got[table]) == len(want[table]), table
        for a, b in zip(got[table], want[table], strict=True):
            exact = [x for x in a if not isinstance(x, float)], [x for x in b if not isinstance(x, float)]
            assert exact[0] == exact[1], (table, a, b)
            floats = [x for x in a if isinstance(x, float)], [x for x in b if isinstance(x, float)]
            assert floats[0] == pytest.approx(floats[1], rel=1e-12, abs=1e-12), (table, a, b)


def _refresh_and_compare(conn, *, slices_at_most: int | None) -> None:
    """Refresh what is marked, then check against a full recomputation and numpy (every space)."""
    result = refresh(conn)
    assert result.slices is not None, "a full recompute was not expected"
    if slices_at_most is not None:
        assert 0 < result.slices <= slices_at_most, result
    assert conn.execute("SELECT count(*) FROM gmv.credit_dirty").fetchone()[0] == 0
    incremental = _snapshot(conn)
    conn.execute("INSERT INTO gmv.credit_dirty (kind) VALUES ('credit'), ('images')")
    assert refresh(conn).slices is None
    _assert_same(incremental, _snapshot(conn))
    for (space_id,) in conn.execute(
        "SELECT space_id FROM gmv.embedding_space WHERE match_k IS NOT NULL"
    ).fetchall():
        _check_against_numpy(conn, space_id)


@pytest.fixture
def world(conn, db_url):
    world = seed(
        conn,
        n_training=90,
        n_generated=36,
        dim=8,
        owners=3,
        quality="random",
        months=3,
        seed=5,
        licenses=(("paid", True, False), ("free", False, False)),
    )
    matcher.match_space(partial(connect, db_url), world["space"], k=4, exact=True, workers=1)
    refresh(conn)
    assert refresh(conn).slices == 0  # nothing changed since
    return world


def test_new_matches_in_one_month_recompute_that_month_only(conn, world):
    space_id = world["space"].space_id
    feb, feb2 = [
        r[0]
        for r in conn.execute(
            "SELECT generated_id FROM gmv.generated_image WHERE gmv.credit_period(created_at) = '2026-02-01' "
            "ORDER BY generated_id LIMIT 2"
        )
    ]
    other = conn.execute("SELECT max(training_id) FROM gmv.training_image").fetchone()[0]
    conn.execute(
        "UPDATE gmv.match SET training_id = %s, distance = distance + 0.01 "
        "WHERE space_id = %s AND generated_id = %s AND rank = 4 AND training_id <> %s",
        (other, space_id, feb, other),
    )
    conn.execute("DELETE FROM gmv.match WHERE space_id = %s AND generated_id = %s", (space_id, feb2))
    assert conn.execute("SELECT DISTINCT space_id, period FROM gmv.credit_dirty").fetchall() == [
        (space_id, dt.date(2026, 2, 1))
    ]
    _refresh_and_compare(conn, slices_at_most=1)


def test_a_second_space_is_recomputed_alone(conn, world):
    other = spaces.get_or_create_space(conn, "other", model="other", dim=8)
    conn.execute(
        "INSERT INTO gmv.match (space_id, generated_id, rank, training_id, distance, k) "
        "SELECT %s, generated_id, rank, training_id, distance * 2, k FROM gmv.match WHERE space_id = %s",
        (other.space_id, world["space"].space_id),
    )
    spaces.set_match_k(conn, other, 4)
    marked = {r[0] for r in conn.execute("SELECT space_id FROM gmv.credit_dirty WHERE kind = 'credit'")}
    assert marked == {other.space_id}
    _refresh_and_compare(conn, slices_at_most=4)  # 3 months, and the space (its new temperature)
    values = conn.execute(
        "SELECT count(DISTINCT space), count(*) FROM report.training_value WHERE scheme = 'uniform'"
    ).fetchone()
    assert values == (2, 2 * 90)
    conn.execute("DELETE FROM gmv.embedding_space WHERE space_id = %s", (other.space_id,))
    _refresh_and_compare(conn, slices_at_most=4)
    assert conn.execute(
        "SELECT count(*) FROM gmv.training_credit WHERE space_id = %s", (other.space_id,)
    ).fetchone() == (0,)


def test_a_new_temperature_recomputes_its_space(conn, world):
    calibration.set_temperature(conn, world["space"], 0.01, None)
    assert conn.execute("SELECT DISTINCT space_id, period FROM gmv.credit_dirty").fetchall() == [
        (world["space"].space_id, None)
    ]
    _refresh_and_compare(conn, slices_at_most=1)


def test_quality_and_dates_of_generated_images(conn, world):
    conn.execute(
        "UPDATE gmv.generated_image SET quality = quality * 3 "
        "WHERE generated_id IN (SELECT generated_id FROM gmv.generated_image ORDER BY generated_id LIMIT 2)"
    )
    _refresh_and_compare(conn, slices_at_most=2)
    # Moved from its month to April: both months change.
    conn.execute(
        "UPDATE gmv.generated_image SET created_at = '2026-04-10T00:00:00Z' "
        "WHERE generated_id = (SELECT min(generated_id) FROM gmv.generated_image)"
    )
    periods = {r[0] for r in conn.execute("SELECT period FROM gmv.credit_dirty")}
    assert dt.date(2026, 4, 1) in periods and len(periods) == 2
    _refresh_and_compare(conn, slices_at_most=2)
    conn.execute("UPDATE gmv.generated_image SET prompt = 'x'")  # no credit changes: nothing marked
    assert conn.execute("SELECT count(*) FROM gmv.credit_dirty").fetchone()[0] == 0


def test_deleted_images_take_their_credit(conn, world):
    top = conn.execute(
        "SELECT training_id FROM gmv.training_credit ORDER BY value DESC, training_id LIMIT 1"
    ).fetchone()[0]
    conn.execute("DELETE FROM gmv.training_image WHERE training_id = %s", (top,))
    conn.execute(
        "DELETE FROM gmv.generated_image WHERE generated_id = (SELECT max(generated_id) FROM gmv.generated_image)"
    )
    _refresh_and_compare(conn, slices_at_most=6)
    assert (
        conn.execute("SELECT count(*) FROM gmv.training_credit WHERE training_id = %s", (top,)).fetchone()[0]
        == 0
    )


def test_opt_out_then_rematch(conn, db_url, world):
    popular = [
        r[0]
        for r in conn.execute(
            "SELECT training_id FROM gmv.match GROUP BY 1 ORDER BY count(*) DESC, 1 LIMIT 3"
        )
    ]
    conn.execute(
        "UPDATE gmv.training_image SET opted_out = true, opted_out_from = '2026-02-01' WHERE training_id = ANY(%s)",
        (popular,),
    )
    assert conn.execute("SELECT count(*) FROM gmv.credit_dirty").fetchone()[0] == 0  # not until re-matched
    matcher.match_space(partial(connect, db_url), world["space"], exact=True, workers=1)
    _refresh_and_compare(conn, slices_at_most=3)


def test_owner_change_and_new_images_are_counted(conn, world):
    owner = conn.execute("SELECT min(owner_id) FROM gmv.owner").fetchone()[0]
    conn.execute(
        "UPDATE gmv.training_image SET owner_id = %s WHERE training_id IN "
        "(SELECT training_id FROM gmv.training_credit ORDER BY value DESC LIMIT 5)",
        (owner,),
    )
    assert refresh(conn).slices is None  # credit moved between owners: everything is recomputed
    _check_against_numpy(conn, world["space"].space_id)
    conn.execute(
        "INSERT INTO gmv.training_image (sha256, uri, owner_id, license_id) "
        "SELECT repeat('e', 63) || i, 'new' || i, %s, min(license_id) FROM gmv.license, generate_series(1, 4) AS i "
        "GROUP BY i",
        (owner,),
    )
    result = refresh(conn)
    assert result.slices == 0 and result.image_counts
    n = dict(conn.execute("SELECT owner, n_training_images FROM report.owner_value WHERE scheme = 'uniform'"))
    assert sum(n.values()) == 94
    owners = conn.execute(
        "SELECT owner, value, n_images FROM report.owner_value WHERE scheme = 'uniform' ORDER BY owner"
    ).fetchall()
    expected = conn.execute(
        "SELECT o.name, coalesce(sum(c.value), 0), count(c.training_id) FILTER (WHERE c.n_matches > 0) FROM gmv.owner o "
        "JOIN gmv.training_image t USING (owner_id) LEFT JOIN gmv.training_credit c ON c.training_id = t.training_id "
        "AND c.scheme_id = (SELECT scheme_id FROM gmv.valuation_scheme WHERE name = 'uniform') GROUP BY o.name ORDER BY 1"
    ).fetchall()
    assert [(o, pytest.approx(v), n) for o, v, n in owners] == expected


def test_every_credit_table_is_listed(conn):
    assert set(KEYS) | {"credit_dirty"} == set(CREDIT_TABLES)


def test_a_renamed_space_or_scheme_shows_its_new_name(conn, world):
    conn.execute(
        "UPDATE gmv.embedding_space SET name = 'renamed' WHERE space_id = %s", (world["space"].space_id,)
    )
    conn.execute("UPDATE gmv.valuation_scheme SET name = 'linear' WHERE name = 'rank_linear'")
    refresh(conn)
    names = conn.execute("SELECT DISTINCT space, scheme FROM report.training_value ORDER BY 2").fetchall()
    assert ("renamed", "linear") in names and all(space == "renamed" for space, _ in names)
    assert not [s for _, s in names if s == "rank_linear"]
