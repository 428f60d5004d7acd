"""The class-consistency audit of GMValuator (arXiv 2304.10701): do matches share the generated image's class?

When generated and training images carry the same attribute (e.g. the class a class-conditional
generator was asked for, and the training image's label), a valuation that points at the images a
generation really came from should match images of the same class far more often than chance. Per
rank and overall: the share of top-k matches whose training image has the generated image's value,
the chance level (the frequency of that value among the training images that can be matched,
averaged over the generated images), and a one-sided binomial test of the count against chance.

The binomial test treats matches as independent draws; the k matches of one generated image are
not (they are neighbours of each other), so read the overall p-value as a measure of how far the
share is from chance, and the rank-1 row (one match per image) as the cleanest test.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import psycopg

from gmv_sql import spaces
from gmv_sql.errors import InputError, NotFoundError
from gmv_sql.resources import query
from gmv_sql.spaces import EmbeddingSpace


@dataclass(frozen=True)
class ConsistencyRow:
    rank: str  # "1".."k" or "all"
    n: int  # matches of generated images that carry the attribute
    same: int  # of those, training image with the same value
    share: float
    chance: float
    lift: float  # share / chance
    p_value: float  # one-sided binomial test: share > chance


@dataclass(frozen=True)
class ConsistencyResult:
    space: str
    attribute: str
    n_generated: int  # matched generated images that carry the attribute
    chance: float
    rows: list[ConsistencyRow]

    @property
    def overall(self) -> ConsistencyRow:
        return self.rows[-1]

    def as_dict(self) -> dict[str, object]:
        return {
            "space": self.space,
            "attribute": self.attribute,
            "n_generated": self.n_generated,
            "chance": self.chance,
            "rows": [asdict(r) for r in self.rows],
        }

    def summary(self) -> str:
        o = self.overall
        first = self.rows[0]
        return (
            f"{o.share:.1%} of top-{len(self.rows) - 1} matches share the generated image's {self.attribute!r} "
            f"(rank 1: {first.share:.1%}) vs {self.chance:.1%} by chance; binomial p = {_p(o.p_value)} "
            f"(rank 1: {_p(first.p_value)}), {self.n_generated} generated images"
        )


def _p(p: float) -> str:
    """A p-value for people: below double precision's smallest normal number it is shown as a bound."""
    return "< 1e-300" if p < 1e-300 else f"{p:.3g}"


def _row(rank: str, n: int, same: int, chance: float) -> ConsistencyRow:
    from scipy import stats

    share = same / n if n else 0.0
    if n == 0:
        p_value = 1.0
    elif chance <= 0:
        p_value = 0.0 if same > 0 else 1.0
    elif chance >= 1:
        p_value = 1.0
    else:
        p_value = float(stats.binomtest(same, n, chance, alternative="greater").pvalue)
    return ConsistencyRow(
        rank, n, same, share, chance, share / chance if chance > 0 else float("inf"), p_value
    )


def consistency(conn: psycopg.Connection, space: EmbeddingSpace, attribute: str) -> ConsistencyResult:
    """The audit for one space and attribute; a one-line error when the attribute or the matches are missing."""
    if not attribute or not attribute.strip():
        raise InputError(
            "--attribute is empty; name a manifest column present on training and generated images"
        )
    training, generated = conn.execute(
        query("quality", "attribute_presence"), {"attribute": attribute}
    ).fetchone()
    if not training or not generated:
        known = [r[0] for r in conn.execute(query("quality", "attribute_names"))]
        raise NotFoundError(
            f"attribute {attribute!r} is on {training} training and {generated} generated images; it must be on "
            f"both (a manifest column at ingest); known attributes: {', '.join(known) or 'none'}"
        )
    params = {"attribute": attribute, "space_id": space.space_id}
    by_rank = conn.execute(query("quality", "consistency_by_rank"), params).fetchall()
    if not by_rank:
        raise NotFoundError(
            f"no generated image with attribute {attribute!r} is matched in space {space.name!r}; "
            f"run `gmv match --space {space.name}` first"
        )
    chance, n_generated = conn.execute(
        spaces.render("quality", "consistency_chance", space), params
    ).fetchone()
    chance = float(chance)
    rows = [_row(str(rank), int(n), int(same), chance) for rank, n, same in by_rank]
    rows.append(_row("all", sum(r.n for r in rows), sum(r.same for r in rows), chance))
    return ConsistencyResult(space.name, attribute, int(n_generated), chance, rows)
