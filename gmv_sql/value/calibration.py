"""Temperatures of the softmax_calibrated scheme, one per embedding space, from the space's own distances.

softmax weights exp(-(d - d1) / T) depend on the distance scale: cosine distances of efficientnet
features and of raw pixels differ by an order of magnitude, so one fixed T (softmax_distance's 0.1)
is sharp in one space and flat in another. The calibrated temperature is T = FACTOR * a statistic of
the space's stored matches (RULE), so multiplying every distance by a constant multiplies T by the same
constant and leaves the weights unchanged. The rule and factor were chosen by measurement on two
datasets (benchmarks/valuation_sweep.py, docs/VALUATION.md), not fitted to one.

A temperature is stored in gmv.scheme_calibration with the rule and the statistics it used; it changes
only when recalibrated (`gmv value calibrate`) or set explicitly (`gmv value set-temperature`), so a
statement's numbers do not move because new matches arrived.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import psycopg
from psycopg.types.json import Jsonb

from gmv_sql.errors import InputError, NotFoundError
from gmv_sql.resources import query
from gmv_sql.spaces import EmbeddingSpace

# Statistics of a space's matches (sql/queries/calibration.sql, block `statistics`), by name:
# d1 / d2 / dk = distance of the nearest / second nearest / farthest of the k matches of a generated image.
STATISTICS = {
    "median_gap2": "median(d2 - d1)",
    "median_gapk": "median(dk - d1)",
    "median_d1": "median(d1)",
}
# The rule: T = FACTOR * STATISTIC (chosen by benchmarks/valuation_sweep.py; docs/VALUATION.md).
STATISTIC = "median_gap2"
FACTOR = 0.5
# When the statistic is 0 or missing (k = 1, or most images tie at ranks 1 and 2), the next that is
# positive; the stored rule names the one used.
FALLBACKS = (("mean_gap2", "mean(d2 - d1)"), ("mean_gapk", "mean(dk - d1)"))


@dataclass(frozen=True)
class Calibration:
    """A scheme's temperature in one space and where it came from."""

    space: str
    scheme: str
    temperature: float
    rule: str
    statistics: dict[str, float | int | None]
    set_by: str


def rule_text(statistic: str = STATISTIC, factor: float = FACTOR) -> str:
    return f"T = {factor:g} * {STATISTICS.get(statistic) or dict(FALLBACKS)[statistic]}"


def space_statistics(conn: psycopg.Connection, space: EmbeddingSpace) -> dict[str, float | int | None]:
    """n_generated, k and the distance statistics of the space's stored matches; one-line error if none."""
    cur = conn.execute(query("calibration", "statistics"), {"space_id": space.space_id})
    names = [c.name for c in cur.description]
    row = dict(zip(names, cur.fetchone(), strict=True))
    if not row["n_generated"]:
        raise NotFoundError(
            f"space {space.name!r} has no matches to calibrate from; run `gmv match --space {space.name}` first"
        )
    return {k: (float(v) if isinstance(v, float) else v) for k, v in row.items()}


def temperature_from(statistics: dict[str, float | int | None]) -> tuple[float, str]:
    """(T, rule) by the rule, falling back as FALLBACKS says when the statistic is not positive."""
    for name in (STATISTIC, *(n for n, _ in FALLBACKS)):
        value = statistics.get(name)
        if value is not None and math.isfinite(value) and value > 0:
            return FACTOR * float(value), rule_text(name)
    # Every gap is 0 (or k = 1): all matches of an image are equally near, any T gives the same weights.
    return 1.0, "T = 1 (every image's matches are equally near, or k = 1: the weights do not depend on T)"


def _calibrated_schemes(conn: psycopg.Connection, scheme: str | None) -> list[tuple[int, str]]:
    rows = conn.execute(query("calibration", "calibrated_schemes"), {"name": scheme}).fetchall()
    if scheme is not None and not rows:
        known = conn.execute(query("calibration", "scheme"), {"name": scheme}).fetchone()
        if known is None:
            raise NotFoundError(
                f"no valuation scheme {scheme!r} (known: {_scheme_names(conn)}); pick one with --scheme"
            )
        raise InputError(
            f"scheme {scheme!r} has formula {known[2]!r}, not softmax_calibrated: its temperature is not per space; "
            "use --scheme softmax_calibrated"
        )
    return [(int(r[0]), r[1]) for r in rows]


def _scheme_names(conn: psycopg.Connection) -> str:
    return ", ".join(r[0] for r in conn.execute(query("calibration", "scheme_names")))


def calibrate(
    conn: psycopg.Connection, space: EmbeddingSpace, scheme: str | None = None
) -> list[Calibration]:
    """Recompute the temperature of every softmax_calibrated scheme (or the named one) in the space.

    Replaces explicit temperatures too: calibrating is asking for the rule's value. One transaction.
    """
    schemes = _calibrated_schemes(conn, scheme)
    statistics = space_statistics(conn, space)
    temperature, rule = temperature_from(statistics)
    return _store(conn, space, schemes, temperature, rule, statistics, "calibrated")


def _store(
    conn: psycopg.Connection,
    space: EmbeddingSpace,
    schemes: list[tuple[int, str]],
    temperature: float,
    rule: str,
    statistics: dict,
    set_by: str,
) -> list[Calibration]:
    """Write the space's temperature of each scheme (one transaction)."""
    results = []
    with conn.transaction():
        for scheme_id, name in schemes:
            conn.execute(
                query("calibration", "upsert"),
                {
                    "space_id": space.space_id,
                    "scheme_id": scheme_id,
                    "temperature": temperature,
                    "rule": rule,
                    "statistics": Jsonb(statistics),
                    "set_by": set_by,
                },
            )
            results.append(Calibration(space.name, name, temperature, rule, statistics, set_by))
    return results


def parse_temperature(text: str) -> float:
    """A temperature from the command line: a finite number > 0, else a one-line error."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value <= 0:
        raise InputError(
            f"temperature {text!r} is not a finite number > 0; give e.g. 0.05, or run `gmv value calibrate` "
            "to compute one from the space's distances"
        )
    return value


def set_temperature(
    conn: psycopg.Connection, space: EmbeddingSpace, temperature: float, scheme: str | None = None
) -> list[Calibration]:
    """Fix the temperature of the softmax_calibrated scheme(s) in the space (set_by 'explicit')."""
    if not math.isfinite(temperature) or temperature <= 0:
        parse_temperature(str(temperature))
    schemes = _calibrated_schemes(conn, scheme)
    return _store(conn, space, schemes, temperature, "explicit", {}, "explicit")


def calibrate_missing(conn: psycopg.Connection, space_id: int | None = None) -> list[Calibration]:
    """Calibrate every (space with matches, softmax_calibrated scheme) pair that has no temperature yet.

    Runs in the caller's transaction when there is one (gmv value refresh) so the credit views never
    see a calibrated scheme without its temperature; an existing temperature is never replaced.
    """
    from gmv_sql.spaces import get_space

    results = []
    pending = conn.execute(query("calibration", "uncalibrated"), {"space_id": space_id}).fetchall()
    for sid, space_name, scheme_id, scheme_name in pending:
        space = get_space(conn, space_name)
        statistics = space_statistics(conn, space)
        temperature, rule = temperature_from(statistics)
        conn.execute(
            query("calibration", "insert_missing"),
            {
                "space_id": sid,
                "scheme_id": scheme_id,
                "temperature": temperature,
                "rule": rule,
                "statistics": Jsonb(statistics),
            },
        )
        results.append(Calibration(space_name, scheme_name, temperature, rule, statistics, "calibrated"))
    return results
