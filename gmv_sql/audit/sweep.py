"""`gmv audit membership --sweep`: the membership test across schemes, temperatures and k, in SQL.

How robust is a valuation's membership signal to the weighting? For one embedding space, every
valuation scheme (softmax_calibrated at its space temperature times 0.25 .. 4, softmax_distance at its
own) and every k asked is valued in one SQL statement over the stored matches (a match of rank <= k
counts for k, weighted by gmv.raw_match_weight, normalised per generated image, times quality), then
members' vs non-members' values are compared (Welch p, AUC) and, when training and generated images
carry a class attribute, the credit-weighted class consistency: the share of credit that goes to a
training image of the generated image's class. Only a k above the space's stored k needs new
matches: they are searched as `gmv match` would (same index settings, same exclusions) into a
temporary table, and never stored.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import psycopg
from psycopg import sql

from gmv_sql.audit.membership import membership_test, read_image_list, resolve_training_ids
from gmv_sql.errors import ConflictError, InputError, NotFoundError
from gmv_sql.resources import query
from gmv_sql.spaces import EmbeddingSpace

SWEEP_KS = (1, 3, 5, 10, 20)
# softmax_calibrated is also tried at these multiples of its temperature in the space.
TEMPERATURE_FACTORS = (0.25, 0.5, 1.0, 2.0, 4.0)
CLASS_ATTRIBUTES = ("class", "label", "digit", "category")  # looked for when none is named
KNN_BATCH = 500


@dataclass(frozen=True)
class Setting:
    scheme: str
    formula: str
    temperature: float | None
    k: int
    temperature_factor: float | None = None  # of the calibrated temperature (softmax_calibrated)


@dataclass(frozen=True)
class SweepRow:
    scheme: str
    temperature: float | None
    temperature_factor: float | None
    k: int
    p_value: float
    auc: float
    class_consistency: float | None
    mean_members: float
    mean_nonmembers: float

    def label(self) -> str:
        t = "" if self.temperature is None else f" T={self.temperature:.3g}"
        return f"{self.scheme}{t} k={self.k}"


@dataclass
class SweepResult:
    space: str
    default_scheme: str
    stored_k: int
    searched_k: int | None  # k of the extra (unstored) search, when a larger k was asked
    class_attribute: str | None
    n_members: int
    n_nonmembers: int
    rows: list[SweepRow] = field(default_factory=list)

    def best(self) -> SweepRow:
        return min(self.rows, key=lambda r: (r.p_value, -r.auc))

    def default_row(self) -> SweepRow | None:
        """The space's default scheme, at its own temperature, at the stored k."""
        for r in self.rows:
            if (
                r.scheme == self.default_scheme
                and r.k == self.stored_k
                and r.temperature_factor in (None, 1.0)
            ):
                return r
        return None

    def summary(self) -> str:
        best = self.best()
        line = (
            f"sweep of {len(self.rows)} settings in space {self.space!r}: strongest {best.label()} "
            f"(p = {best.p_value:.3g}, AUC = {best.auc:.3f}"
        )
        if best.class_consistency is not None:
            line += f", class consistency {best.class_consistency:.2f}"
        line += ")"
        default = self.default_row()
        if default is not None:
            line += f"; default {default.label()}: p = {default.p_value:.3g}, AUC = {default.auc:.3f}"
        weak = [r for r in self.rows if r.p_value >= 0.01]
        line += f"; {len(weak)} of {len(self.rows)} settings have p >= 0.01"
        return line

    def columns(self) -> tuple[str, ...]:
        return (
            "scheme",
            "temperature",
            "temperature_factor",
            "k",
            "p_value",
            "auc",
            "class_consistency",
            "mean_members",
            "mean_nonmembers",
        )

    def table_rows(self) -> list[tuple]:
        return [tuple(getattr(r, c) for c in self.columns()) for r in self.rows]

    def as_dict(self) -> dict[str, object]:
        def plain(value):
            return value if not isinstance(value, float) or math.isfinite(value) else str(value)

        return {
            "space": self.space,
            "default_scheme": self.default_scheme,
            "stored_k": self.stored_k,
            "searched_k": self.searched_k,
            "class_attribute": self.class_attribute,
            "n_members": self.n_members,
            "n_nonmembers": self.n_nonmembers,
            "summary": self.summary(),
            "rows": [{k: plain(v) for k, v in asdict(r).items()} for r in self.rows],
        }


def parse_ks(text: str) -> tuple[int, ...]:
    """'1,3,5' -> (1, 3, 5); each 1..1000, else a one-line error."""
    try:
        ks = tuple(sorted({int(part) for part in text.split(",") if part.strip()}))
    except ValueError:
        ks = ()
    if not ks or not all(1 <= k <= 1000 for k in ks):
        raise InputError(
            f"--sweep-k {text!r} is not a comma-separated list of k in 1..1000; e.g. 1,3,5,10,20"
        )
    return ks


def settings(conn: psycopg.Connection, space: EmbeddingSpace, ks: tuple[int, ...]) -> list[Setting]:
    """Every scheme x k; softmax_calibrated at TEMPERATURE_FACTORS x its temperature in the space."""
    from gmv_sql.value.calibration import space_statistics, temperature_from

    out: list[Setting] = []
    calibrated_t = None
    for name, formula, temperature, space_t in conn.execute(
        query("audit", "sweep_schemes"), {"space_id": space.space_id}
    ):
        if formula == "softmax_calibrated":
            if space_t is None:  # not calibrated yet: the rule's value, not stored
                if calibrated_t is None:
                    calibrated_t = temperature_from(space_statistics(conn, space))[0]
                space_t = calibrated_t
            for factor in TEMPERATURE_FACTORS:
                out += [Setting(name, formula, space_t * factor, k, factor) for k in ks]
        else:
            out += [Setting(name, formula, temperature, k) for k in ks]
    return out


def class_attribute(conn: psycopg.Connection, space: EmbeddingSpace, wanted: str | None) -> str | None:
    """The attribute naming an image's class in both training and generated images (None: none)."""
    present = {r[0] for r in conn.execute(query("audit", "shared_attributes"), {"space_id": space.space_id})}
    if wanted is not None:
        if wanted not in present:
            shown = ", ".join(sorted(present)) or "none"
            raise NotFoundError(
                f"attribute {wanted!r} is not on both the matched training and generated images "
                f"(attributes on both: {shown}); pick one with --class-attribute"
            )
        return wanted
    return next((name for name in CLASS_ATTRIBUTES if name in present), None)


def _search_larger_k(conn: psycopg.Connection, space: EmbeddingSpace, k: int) -> sql.Composable:
    """Top-k of every matched generated image into a temporary table, as gmv match would; not stored."""
    from gmv_sql.match import matcher

    exact = bool(
        conn.execute(query("audit", "space_matched_exactly"), {"space_id": space.space_id}).fetchone()[0]
    )
    plan = matcher.MatchPlan(
        space,
        k,
        None if exact else matcher.ef_search_for(k, None),
        exact=exact,
        ineligible=tuple(matcher.ineligible_training(conn)),
    )
    ids = [r[0] for r in conn.execute(query("audit", "matched_generated"), {"space_id": space.space_id})]
    conn.execute(query("audit", "create_sweep_match"))
    for start in range(0, len(ids), KNN_BATCH):
        found = matcher.knn(conn, plan, ids[start : start + KNN_BATCH])
        rows = [
            (space.space_id, g, rank, t, d)
            for g, neighbours in found.items()
            for rank, (t, d) in enumerate(neighbours, start=1)
        ]
        with conn.cursor() as cur:
            cur.executemany(query("audit", "insert_sweep_match"), rows)
    return sql.SQL("pg_temp.sweep_match")


def sweep(
    conn: psycopg.Connection,
    space: EmbeddingSpace,
    members: Path,
    nonmembers: Path,
    *,
    ks: tuple[int, ...] = SWEEP_KS,
    class_attribute_name: str | None = None,
    on_search=None,
) -> SweepResult:
    """The membership test for every setting (scheme x temperature x k) of the space."""
    stored_k = conn.execute(query("audit", "stored_k"), {"space_id": space.space_id}).fetchone()[0]
    if stored_k is None:
        raise NotFoundError(
            f"space {space.name!r} has no matches to sweep; run `gmv match --space {space.name}` first"
        )
    member_ids = resolve_training_ids(conn, read_image_list(members))
    nonmember_ids = resolve_training_ids(conn, read_image_list(nonmembers))
    both = sorted(set(member_ids) & set(nonmember_ids))
    if both:
        raise ConflictError(
            f"training image {both[0]} is in both {str(members)!r} and {str(nonmembers)!r} "
            f"({len(both)} such); an image is a member or a non-member, not both"
        )
    attribute = class_attribute(conn, space, class_attribute_name)
    grid = settings(conn, space, ks)
    default_scheme = conn.execute(query("report", "default_scheme"), {"space_id": space.space_id}).fetchone()[
        1
    ]
    searched_k = None
    with conn.transaction():
        matches: sql.Composable = sql.SQL("gmv.match")
        if max(ks) > stored_k:
            searched_k = max(ks)
            if on_search:
                on_search(stored_k, searched_k)
            matches = _search_larger_k(conn, space, searched_k)
        statement = sql.SQL(query("audit", "sweep_credit")).format(matches=matches)
        rows = conn.execute(
            statement,
            {
                "space_id": space.space_id,
                "setting": list(range(len(grid))),
                "formula": [s.formula for s in grid],
                "temperature": [s.temperature for s in grid],
                "k": [s.k for s in grid],
                "attribute": attribute,
            },
        ).fetchall()
        conn.execute(query("audit", "drop_sweep_match"))
    values: list[dict[int, float]] = [{} for _ in grid]
    consistent = [0.0] * len(grid)
    classified = [0.0] * len(grid)
    for setting, training_id, value, same_class, with_class in rows:
        values[setting][training_id] = float(value)
        consistent[setting] += float(same_class or 0.0)
        classified[setting] += float(with_class or 0.0)
    result = SweepResult(
        space=space.name,
        default_scheme=default_scheme,
        stored_k=int(stored_k),
        searched_k=searched_k,
        class_attribute=attribute,
        n_members=len(member_ids),
        n_nonmembers=len(nonmember_ids),
    )
    for i, s in enumerate(grid):
        test = membership_test(
            [values[i].get(t, 0.0) for t in member_ids], [values[i].get(t, 0.0) for t in nonmember_ids]
        )
        result.rows.append(
            SweepRow(
                scheme=s.scheme,
                temperature=s.temperature,
                temperature_factor=s.temperature_factor,
                k=s.k,
                p_value=test.p_value,
                auc=test.auc,
                class_consistency=(consistent[i] / classified[i])
                if attribute and classified[i] > 0
                else None,
                mean_members=test.mean_members,
                mean_nonmembers=test.mean_nonmembers,
            )
        )
    return result
