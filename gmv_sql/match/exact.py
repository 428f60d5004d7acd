"""Exact top-k of a sample of generated images in one pass over the training vectors.

The recall checks (every `gmv match` measures recall@k on a sample of the images it matched, the
`--target-recall` calibration, `gmv match recall`) compare the index's answers with exact search.
Searched one image at a time, exact search reads every training vector once per image: on
Fashion-MNIST (60,000 x 784) that was ~50 ms an image, and the 100 images of a run's recall check
cost 5 s, six times the matching of 2,000 images itself (docs/BENCHMARKS.md, issue 13).

Here a statement compares each training vector with every image of a chunk of the sample while the
vector is in cache, and returns only the rows within each image's bound: the k-th distance of an
approximate top-k of eligible training vectors (the space's index, cheap). No exact k-th neighbour
can be farther than the k-th of any k eligible vectors, so the k nearest rows returned (ordered by
distance, then training_id) are the exact top-k; the bound only keeps the result small. The distances
are computed by the same operator on the same stored vectors as the matcher's, so they compare
exactly. Images whose approximate search returned fewer than k rows (filtered out, or fewer eligible
vectors than k) are searched exactly one by one, as before. Chunks run on several connections when
a connect factory is given.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import psycopg

from gmv_sql import spaces
from gmv_sql.match import matcher
from gmv_sql.match.matcher import MatchPlan

CHUNK = 100  # images compared per pass over the training vectors
BOUND_EF_SEARCH = 40  # pgvector's default ef_search: a bound close to the exact k-th distance

Answers = dict[int, list[tuple[int, float]]]


def _bound_plan(plan: MatchPlan) -> MatchPlan:
    """A plain index search of plan's space with plan's filter: its k-th distances are the bounds."""
    if plan.ivfflat:
        return replace(plan, exact=False, rerank=None, candidates=None, ef_search=None, probes=None)
    ef = min(matcher.MAX_EF_SEARCH, max(plan.k, BOUND_EF_SEARCH))
    return replace(plan, exact=False, rerank=None, candidates=None, ef_search=ef, probes=None)


def _sort_key(row: tuple[int, float]) -> tuple[bool, float, int]:
    training_id, distance = row
    nan = math.isnan(distance)  # PostgreSQL orders NaN after every number
    return (nan, 0.0 if nan else distance, training_id)


def _bounded(conn: psycopg.Connection, plan: MatchPlan, ids: list[int], bounds: list[float]) -> Answers:
    out: Answers = {g: [] for g in ids}
    with conn.transaction():
        # jit and parallel workers off (the plan's non-exact settings): index scans stay allowed for
        # the sample's own rows; the training vectors are read by one sequential scan.
        matcher.apply_search_settings(conn, replace(plan, exact=False))
        rows = conn.execute(
            spaces.render("match", "exact_bounded", plan.space),
            {"ids": ids, "bounds": bounds, "ineligible": list(plan.ineligible)},
        ).fetchall()
    for g, t, d in rows:
        out[g].append((t, d))
    return {g: sorted(found, key=_sort_key)[: plan.k] for g, found in out.items()}


def exact_knn(
    conn: psycopg.Connection,
    plan: MatchPlan,
    ids: Sequence[int],
    *,
    connect: Callable[[], psycopg.Connection] | None = None,
    workers: int = 1,
    approx: Answers | None = None,
) -> Answers:
    """Exact top-k (training_id, distance), nearest first, of each generated id under plan's filter
    (see module docstring); split over `workers` connections opened by connect when given.

    approx: top-k answers already found for these ids in plan's space with plan's filter (distances
    by the space's operator, not re-ranked), whose k-th distances then serve as the bounds."""
    ids = [int(i) for i in ids]
    if not ids:
        return {}
    if approx is None or any(g not in approx for g in ids):
        approx = matcher.knn(conn, _bound_plan(plan), ids)
    bounded = [g for g in ids if len(approx[g]) >= plan.k]
    unbounded = [g for g in ids if len(approx[g]) < plan.k]
    size = min(CHUNK, max(1, math.ceil(len(bounded) / max(1, workers if connect else 1))))
    jobs: list[tuple[list[int], list[float] | None]] = [
        (chunk, [max(d for _, d in approx[g]) for g in chunk])
        for chunk in (bounded[i : i + size] for i in range(0, len(bounded), size))
    ]
    if unbounded:
        jobs.append((unbounded, None))
    exact_plan = replace(plan, exact=True, rerank=None, candidates=None, ef_search=None, probes=None)

    def run(own: psycopg.Connection, job: tuple[list[int], list[float] | None]) -> Answers:
        chunk, bounds = job
        if bounds is None:
            return matcher.knn(own, exact_plan, chunk)
        return _bounded(own, exact_plan, chunk, bounds)

    if connect is None or workers <= 1 or len(jobs) < 2:
        parts = [run(conn, job) for job in jobs]
    else:
        # Interleaved so each connection gets a share of every kind of job.
        shares = [jobs[i :: min(workers, len(jobs))] for i in range(min(workers, len(jobs)))]

        def run_share(share: list) -> list[Answers]:
            with connect() as own:
                return [run(own, job) for job in share]

        with ThreadPoolExecutor(max_workers=len(shares)) as pool:
            parts = [part for done in pool.map(run_share, shares) for part in done]
    out: Answers = {}
    for part in parts:
        out.update(part)
    return out
