"""Recall-targeted search settings: the cheapest ef_search (HNSW) or probes (IVFFlat) reaching a recall.

Before a matching run, `gmv match --target-recall R` measures recall@k of the space's index against
exact search on a reproducible sample of generated images (default 50) and keeps the cheapest
setting whose sample recall clears R. The exact answers are computed once; settings are tried from
the cheapest up, so the cost is the sample's exact searches plus a few indexed ones.

The sample estimate has noise (a binomial proportion over sample * k neighbours), so a setting must
clear R by one standard error, sqrt(R (1 - R) / (sample * k)), to be taken; if none does, the first
reaching R is taken, and if none reaches R either, the most thorough setting (with reached=False).

Tiny spaces (fewer than TINY_SPACE eligible training vectors) are not calibrated: there the planner
prefers a sequential scan (an exact search) anyway, and the default setting is used.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace

import psycopg

from gmv_sql import spaces
from gmv_sql.errors import InputError
from gmv_sql.match import matcher
from gmv_sql.match.matcher import MatchPlan

DEFAULT_TARGET_RECALL = 0.95
DEFAULT_SAMPLE = 50
TINY_SPACE = 1000  # eligible training vectors below which matching is (near) exact anyway
EF_SEARCH_STEPS = (10, 16, 24, 32, 40, 48, 64, 80, 100, 128, 160, 200, 256, 320, 400, 512, 640, 800, 1000)
PROBES_STEPS = (1, 2, 3, 4, 5, 6, 8, 10, 12, 16, 20, 24, 32, 40, 48, 64, 80, 100, 128, 160, 200, 256, 320)


@dataclass(frozen=True)
class Tuning:
    """The setting chosen for a matching run, and how it was chosen.

    setting is "ef_search" or "probes"; recall is the sample recall@k measured at value (None when
    calibration was skipped: see note).
    """

    setting: str
    value: int
    recall: float | None
    target: float
    sample: int
    reached: bool
    seconds: float = 0.0
    tried: tuple[tuple[int, float], ...] = ()  # (value, sample recall) in the order tried
    note: str = ""

    def describe(self) -> str:
        if self.recall is None:
            return f"{self.setting}={self.value} ({self.note})"
        verdict = "reaching" if self.reached else "below"
        return (
            f"{self.setting}={self.value}: recall@k {self.recall:.3f} on {self.sample} sampled images, "
            f"{verdict} the target {self.target:g} (calibrated in {self.seconds:.1f}s)"
        )


def check_target(target: float) -> float:
    if not 0 < target <= 1:
        raise InputError(f"--target-recall {target} must be in (0, 1], e.g. 0.95")
    return target


def candidates(plan: MatchPlan) -> tuple[str, list[int]]:
    """The setting to calibrate and its values, cheapest first."""
    if plan.ivfflat:
        lists = plan.space.ivfflat_lists or 1
        return "probes", sorted({p for p in PROBES_STEPS if p < lists} | {lists})
    values = sorted({plan.k} | {e for e in EF_SEARCH_STEPS if e >= plan.k})
    return "ef_search", [e for e in values if e <= matcher.MAX_EF_SEARCH]


def sample_recall(
    approx: dict[int, list[tuple[int, float]]], truth: dict[int, list[tuple[int, float]]]
) -> float:
    """Mean over images of |approx top-k ∩ exact top-k| / |exact top-k|."""
    per_image = []
    for g, want_rows in truth.items():
        want = {t for t, _ in want_rows}
        if want:
            per_image.append(len(want & {t for t, _ in approx.get(g, [])}) / len(want))
    return sum(per_image) / len(per_image) if per_image else 1.0


def sample_ids(conn: psycopg.Connection, space: spaces.EmbeddingSpace, n: int, salt: str) -> list[int]:
    return [
        r[0] for r in conn.execute(spaces.render("match", "sample_generated", space), {"salt": salt, "n": n})
    ]


def _with(plan: MatchPlan, setting: str, value: int) -> MatchPlan:
    return replace(plan, exact=False, **{setting: value})


def calibrate(
    conn: psycopg.Connection,
    plan: MatchPlan,
    target: float = DEFAULT_TARGET_RECALL,
    *,
    sample: int = DEFAULT_SAMPLE,
    eligible: int | None = None,
    salt: str = "gmv-tune",
) -> Tuning:
    """The cheapest setting of plan's index reaching target recall@k on a sample (see module docstring).

    plan carries the space, k and the ineligible training ids; eligible is the number of training
    vectors that may be matched (for the tiny-space rule; None: not applied).
    """
    check_target(target)
    setting, values = candidates(plan)
    default = plan.probes if plan.ivfflat else plan.ef_search
    default = default or (
        matcher.default_probes(plan.space) if plan.ivfflat else matcher.ef_search_for(plan.k, None)
    )
    if eligible is not None and eligible < TINY_SPACE:
        return Tuning(
            setting,
            default,
            None,
            target,
            0,
            True,
            note=f"not calibrated: only {eligible:,} training vectors",
        )
    started = time.monotonic()
    ids = sample_ids(conn, plan.space, sample, salt)
    if not ids:
        return Tuning(setting, default, None, target, 0, True, note="not calibrated: no generated vectors")
    truth = matcher.knn(conn, replace(plan, exact=True), ids)
    margin = math.sqrt(target * (1 - target) / (len(ids) * plan.k))
    tried: list[tuple[int, float]] = []
    first_reaching = None
    for value in values:
        measured = sample_recall(matcher.knn(conn, _with(plan, setting, value), ids), truth)
        tried.append((value, measured))
        if measured >= target and first_reaching is None:
            first_reaching = (value, measured)
        if measured >= min(1.0, target + margin):
            return Tuning(
                setting, value, measured, target, len(ids), True, time.monotonic() - started, tuple(tried)
            )
    value, measured = first_reaching or tried[-1]
    return Tuning(
        setting,
        value,
        measured,
        target,
        len(ids),
        first_reaching is not None,
        time.monotonic() - started,
        tuple(tried),
    )


def measure(
    conn: psycopg.Connection, plan: MatchPlan, ids: Sequence[int], truth: dict[int, list[tuple[int, float]]]
) -> float:
    """Sample recall of one plan against known exact answers (benchmarks, advise)."""
    return sample_recall(matcher.knn(conn, plan, ids), truth)
