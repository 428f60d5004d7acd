"""Recall-targeted search settings: the cheapest ef_search (HNSW) or probes (IVFFlat) reaching a recall.

Before a matching run, `gmv match --target-recall R` measures recall@k of the space's index against
exact search on a reproducible sample of generated images (default_sample(R): 50 at R = 0.95,
scaled as 2.5 / (1 - R) for stricter targets, up to 1,000) and keeps the cheapest
setting whose sample recall clears R. The exact answers are computed once; settings are tried from
the cheapest up, so the cost is the sample's exact searches plus a few indexed ones.

The sample estimate has noise, so a setting is taken when the lower end of a one-sided ~97.5%
confidence interval of its mean per-image recall clears R: mean - 2 * sd / sqrt(sample), sd the
standard deviation of the per-image recalls (the neighbours of one image are correlated, so the
images, not their k neighbours, are the independent draws; a binomial error over sample * k
neighbours was too small: a setting measured at 0.968 on 50 images gave 0.943 over the whole run).
If no setting clears R that way, the first whose mean reaches R is taken, and if none reaches R
either, the most thorough one (reached=False).

Tiny spaces (fewer than TINY_SPACE eligible training vectors) are not calibrated: there the planner
prefers a sequential scan (an exact search) anyway, and the default setting is used. When no more
images are to be matched than the sample holds, calibrating would cost as many exact searches as
matching them all exactly: they are matched exactly (setting "exact", recall 1).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import psycopg

from gmv_sql import spaces
from gmv_sql.errors import InputError
from gmv_sql.match import exact, matcher
from gmv_sql.match.matcher import MatchPlan

DEFAULT_TARGET_RECALL = 0.95
DEFAULT_SAMPLE = 50  # the least sample; default_sample() scales it up for stricter targets
MAX_DEFAULT_SAMPLE = 1000
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
    tried: tuple[tuple[int, float, float], ...] = ()  # (value, sample recall, its lower bound) as tried
    note: str = ""

    def describe(self) -> str:
        if self.setting == "exact":
            return self.note
        if self.recall is None:
            return f"{self.setting}={self.value} ({self.note})"
        verdict = "reaching" if self.reached else "below"
        return (
            f"{self.setting}={self.value}: recall@k {self.recall:.3f} on {self.sample} sampled images, "
            f"{verdict} the target {self.target:g} (calibrated in {self.seconds:.1f}s)"
        )


def default_sample(target: float) -> int:
    """Images to sample for a target: misses are rare near 1 and concentrate in a few images, so the
    sample grows as 1 / (1 - R) to expect as many of those images at every target (2.5 / (1 - R),
    between DEFAULT_SAMPLE and MAX_DEFAULT_SAMPLE). At R = 0.99, 50 images measured 0.998 for a
    setting that gave 0.983 over the whole run."""
    if target >= 1:
        return MAX_DEFAULT_SAMPLE
    return max(DEFAULT_SAMPLE, min(MAX_DEFAULT_SAMPLE, math.ceil(2.5 / (1 - target) - 1e-9)))


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


def per_image_recall(
    approx: dict[int, list[tuple[int, float]]], truth: dict[int, list[tuple[int, float]]]
) -> list[float]:
    """|approx top-k ∩ exact top-k| / |exact top-k| for each image with an exact answer."""
    out = []
    for g, want_rows in truth.items():
        want = {t for t, _ in want_rows}
        if want:
            out.append(len(want & {t for t, _ in approx.get(g, [])}) / len(want))
    return out


def sample_recall(
    approx: dict[int, list[tuple[int, float]]], truth: dict[int, list[tuple[int, float]]]
) -> float:
    """Mean over images of their recall@k."""
    per_image = per_image_recall(approx, truth)
    return sum(per_image) / len(per_image) if per_image else 1.0


def lower_bound(per_image: Sequence[float]) -> float:
    """mean - 2 standard errors of the per-image recalls (one-sided ~97.5% confidence)."""
    n = len(per_image)
    if n == 0:
        return 1.0
    mean = sum(per_image) / n
    if n == 1:
        return mean
    sd = math.sqrt(sum((r - mean) ** 2 for r in per_image) / (n - 1))
    return mean - 2 * sd / math.sqrt(n)


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
    sample: int | None = None,
    eligible: int | None = None,
    pending: int | None = None,
    salt: str = "gmv-tune",
    connect: Callable[[], psycopg.Connection] | None = None,
    workers: int = 1,
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
    sample = sample or default_sample(target)
    if pending is not None and pending <= sample:
        note = f"exact search: {pending:,} images to match cost no more than calibrating on {sample:,}"
        return Tuning("exact", 0, 1.0, target, 0, True, note=note)
    started = time.monotonic()
    ids = sample_ids(conn, plan.space, sample, salt)
    if not ids:
        return Tuning(setting, default, None, target, 0, True, note="not calibrated: no generated vectors")
    truth = exact.exact_knn(conn, replace(plan, exact=True), ids, connect=connect, workers=workers)
    tried: list[tuple[int, float, float]] = []
    first_reaching = None
    for value in values:
        per_image = per_image_recall(matcher.knn(conn, _with(plan, setting, value), ids), truth)
        measured = sum(per_image) / len(per_image) if per_image else 1.0
        tried.append((value, measured, lower_bound(per_image)))
        if measured >= target and first_reaching is None:
            first_reaching = (value, measured)
        if tried[-1][2] >= target:
            return Tuning(
                setting, value, measured, target, len(ids), True, time.monotonic() - started, tuple(tried)
            )
    value, measured = first_reaching or tried[-1][:2]
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
