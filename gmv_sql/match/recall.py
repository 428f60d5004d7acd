"""Recall@k of a matching plan's search against exact search, on a reproducible sample of generated images.

Every `gmv match` measures it on the images it just matched (gmv.match_run.recall_at_k), and
`gmv match recall` on any sample; target-recall tuning can call measure() with candidate plans.
The sample is chosen by hashing ids with a salt, so the same ids give the same sample every time.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import psycopg

from gmv_sql.match import exact, matcher

DEFAULT_SAMPLE = 100


@dataclass(frozen=True)
class Recall:
    """Mean and worst per-image recall@k of plan's search vs exact search on `sample` generated images."""

    recall: float
    worst: float
    sample: int
    index_seconds: float
    exact_seconds: float


def sample_ids(ids: Sequence[int], n: int, salt: str = "gmv") -> list[int]:
    """n of ids, reproducibly (ordered by md5 of id and salt), sorted."""
    if n <= 0:
        return []
    keyed = sorted(ids, key=lambda i: hashlib.md5(f"{int(i)}{salt}".encode()).hexdigest())
    return sorted(int(i) for i in keyed[:n])


def measure(
    conn: psycopg.Connection,
    plan: matcher.MatchPlan,
    ids: Sequence[int],
    *,
    connect: Callable[[], psycopg.Connection] | None = None,
    workers: int = 1,
) -> Recall:
    """recall@k of plan (its index settings and filter) against exact search with the same filter
    (gmv_sql.match.exact: one pass per chunk of images, on `workers` connections when connect is given)."""
    ids = [int(i) for i in ids]
    t0 = time.monotonic()
    approx = matcher.knn(conn, plan, ids)
    t1 = time.monotonic()
    exact_plan = matcher.MatchPlan(plan.space, plan.k, None, exact=True, ineligible=plan.ineligible)
    # Without re-ranking, the index's answers are a top-k of the same space and filter: their k-th
    # distances bound the exact search.
    bounds = approx if plan.rerank is None else None
    truth = exact.exact_knn(conn, exact_plan, ids, connect=connect, workers=workers, approx=bounds)
    t2 = time.monotonic()
    per_image = []
    for g in ids:
        want = {t for t, _ in truth[g]}
        if want:
            per_image.append(len(want & {t for t, _ in approx[g]}) / len(want))
    return Recall(
        recall=sum(per_image) / len(per_image) if per_image else 1.0,
        worst=min(per_image, default=1.0),
        sample=len(per_image),
        index_seconds=t1 - t0,
        exact_seconds=t2 - t1,
    )
