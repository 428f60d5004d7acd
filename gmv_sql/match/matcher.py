"""SQL k-NN matching into gmv.match, and recall of the space's index against exact search.

GMValuator (arXiv 2304.10701) credits the k training images nearest to each generated image.
Here that search is one SQL statement per batch of generated images: a LATERAL subquery with
`ORDER BY embedding <op> generated.embedding LIMIT k`, which PostgreSQL serves from the space's
HNSW or IVFFlat index (ordering by the indexed expression, halfvec for a half-precision index),
or, with exact=True, by a sequential scan over the full-precision vectors for audits. Batches commit as they go and
only generated images without match rows are taken, so an interrupted run finishes on re-run.
Parallel connections take disjoint id ranges, one batch at a time.
"""

from __future__ import annotations

import math
import queue
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import psycopg
from psycopg import sql

from gmv_sql import spaces
from gmv_sql.config import default_workers
from gmv_sql.db import locks
from gmv_sql.embed import store
from gmv_sql.errors import ConflictError, DatabaseError, InputError
from gmv_sql.match import late
from gmv_sql.resources import query
from gmv_sql.spaces import EmbeddingSpace

DEFAULT_K = 10
# pgvector's own default is 40. Measured on 200k x 512-d clustered vectors (docs/BENCHMARKS.md):
# recall@10 0.89 at 40, 0.94 at 64, 0.98 at 100, 0.99 at 128; 100 keeps recall above 0.95.
DEFAULT_EF_SEARCH = 100
MAX_EF_SEARCH = 1000  # pgvector's upper bound for hnsw.ef_search
DEFAULT_BATCH = 200
MAX_PROBES = 32768  # pgvector's upper bound for ivfflat.probes (= the most lists an index can have)


def ef_search_for(k: int, ef_search: int | None) -> int:
    """The ef_search to use: the user's (must be >= k), else max(DEFAULT_EF_SEARCH, 2k) capped at 1000."""
    if ef_search is None:
        return min(MAX_EF_SEARCH, max(DEFAULT_EF_SEARCH, 2 * k))
    if ef_search < k:
        raise InputError(
            f"--ef-search {ef_search} is smaller than --k {k}; the index would return fewer than k rows; use --ef-search >= {k}"
        )
    if ef_search > MAX_EF_SEARCH:
        raise InputError(
            f"--ef-search {ef_search} is above pgvector's maximum {MAX_EF_SEARCH}; use a value up to {MAX_EF_SEARCH}"
        )
    return ef_search


def default_probes(space: EmbeddingSpace) -> int:
    """IVFFlat probes when neither given nor calibrated: sqrt(lists), pgvector's advised start."""
    return max(1, math.isqrt(space.ivfflat_lists or 1))


def probes_for(space: EmbeddingSpace, probes: int | None) -> int:
    """The probes to use: the user's (1..lists), else default_probes()."""
    if probes is None:
        return default_probes(space)
    if not 1 <= probes <= MAX_PROBES:
        raise InputError(f"--probes {probes} is out of range; use 1..{space.ivfflat_lists or MAX_PROBES}")
    return min(probes, space.ivfflat_lists or probes)


def knn_sql(name: str, space: EmbeddingSpace, *, exact: bool = False) -> sql.Composed:
    """knn_insert or knn_select of sql/queries/match.sql for the space, with the shared LATERAL top-k.

    Ordered by the indexed expression (so the index can serve it), or with exact by the stored vectors.
    """
    top_k = spaces.render("match", "top_k", space, **space.order_keys(exact=exact))
    return spaces.render("match", name, space, top_k=top_k)


@dataclass(frozen=True)
class MatchPlan:
    """What every query of one matching run shares: the space, k, the search settings and the filter."""

    space: EmbeddingSpace
    k: int
    ef_search: int | None  # None with exact, or for an IVFFlat space
    exact: bool = False
    ineligible: tuple[int, ...] = ()  # training ids never matched (opted out, excluded licences)
    expected: int = 0  # rows each generated image must get: min(k, eligible training vectors)
    batch: int = DEFAULT_BATCH  # generated images per transaction
    run_id: int | None = None  # the gmv.match_run the inserted rows name
    rerank: EmbeddingSpace | None = None  # re-rank the candidates by this space (gmv_sql.match.rerank)
    candidates: int | None = None  # with rerank: candidates taken from the space's index
    probes: int | None = None  # IVFFlat lists searched (None: default_probes)

    @property
    def ivfflat(self) -> bool:
        return self.space.index_kind == "ivfflat"

    def params(self, **extra) -> dict:
        """Query parameters of knn_insert / knn_select."""
        return {
            "space_id": self.space.space_id,
            "k": self.k,
            "exact": self.exact,
            "ineligible": list(self.ineligible),
            "run_id": self.run_id,
            "rerank_space_id": self.rerank.space_id if self.rerank else None,
            "candidates": self.candidates,
            **extra,
        }

    def sql(self, name: str, *, exact: bool | None = None) -> sql.Composed:
        """knn_insert / knn_select / pending_generated of this plan (plain or re-ranked; ordered by the
        index's expression, or with exact by the stored vectors). exact: override the plan's."""
        exact = self.exact if exact is None else exact
        if self.rerank is not None:
            from gmv_sql.match import rerank

            return rerank.render(name, self.space, self.rerank, exact=exact)
        if name == "pending_generated":
            return spaces.render("match", name, self.space)
        return knn_sql(name, self.space, exact=exact)

    def search_settings(self) -> dict[str, str]:
        """The planner and pgvector settings of this plan's top-k queries."""
        settings = {
            "jit": "off",  # JIT compiles per statement and only costs time on these short plans
            "max_parallel_workers_per_gather": "0",  # parallelism comes from our connections
        }
        if self.exact:
            return settings | _EXACT_SETTINGS
        if self.ivfflat:
            settings["ivfflat.probes"] = str(int(self.probes or default_probes(self.space)))
            # IVFFlat has no strict-order iterative scan: relaxed order (the top_k re-ranks the k rows
            # by distance) up to every list; the exact fallback still guarantees k rows.
            settings["ivfflat.iterative_scan"] = "relaxed_order" if self.ineligible else "off"
            if self.ineligible:
                settings["ivfflat.max_probes"] = str(int(self.space.ivfflat_lists or MAX_PROBES))
            return settings
        ef_search = max(self.ef_search or self.k, self.candidates or 0)
        settings["hnsw.ef_search"] = str(int(min(MAX_EF_SEARCH, ef_search)))
        if self.ineligible:
            # strict_order: keep walking the graph past filtered-out rows, results still in exact order.
            # max_scan_tuples must let the walk pass every ineligible row if they all happen to be nearest.
            # Only when something is filtered: the iterative scan keeps every discarded candidate and
            # costs ~15% of the matching rate for nothing otherwise (docs/BENCHMARKS.md).
            settings["hnsw.iterative_scan"] = "strict_order"
            settings["hnsw.max_scan_tuples"] = str(
                max(20_000, 2 * (len(self.ineligible) + ef_search + self.k))
            )
        else:
            settings["hnsw.iterative_scan"] = "off"
        return settings


# Without index scans the planner must compute every distance: an exact top-k.
_EXACT_SETTINGS = {"enable_indexscan": "off", "enable_bitmapscan": "off"}


def _set_local(conn: psycopg.Connection, settings: dict[str, str]) -> None:
    """SET LOCAL (this transaction only) several settings in one round trip."""
    conn.execute(query("match", "set_local"), {"names": list(settings), "values": list(settings.values())})


def apply_search_settings(conn: psycopg.Connection, plan: MatchPlan) -> None:
    """Settings of the plan's top-k queries for the current transaction."""
    _set_local(conn, plan.search_settings())


@dataclass
class MatchResult:
    space: str
    k: int
    ef_search: int | None
    exact: bool
    matched: int  # generated images matched by this run
    rows: int  # rows inserted into gmv.match
    seconds: float
    without_vector: int  # generated images with no vector in the space (skipped)
    exact_fallback: int  # images the index returned too few eligible rows for, redone exactly
    unmatched_ineligible: int  # generated images re-matched because a training image became ineligible
    workers: int
    eligible_training: int = 0  # training vectors that may be matched (not opted out, licence not excluded)
    pending: int = 0  # generated images that needed matching at the start
    run_id: int | None = None  # the gmv.match_run row of this run
    recall: float | None = None  # recall@k measured on a sample of the images matched (None: not measured)
    recall_sample: int = 0
    recall_status: str = ""  # measured, skipped, exact, nothing_matched
    # generated images re-matched because late training vectors could enter their top-k
    late_rematched: int = 0
    rerank_space: str | None = None  # candidates re-ranked by this space
    candidates: int | None = None
    index_kind: str = "hnsw"
    probes: int | None = None  # IVFFlat lists searched
    tuning: Any = None  # gmv_sql.match.tuning.Tuning when --target-recall calibrated (or skipped)
    stale_index: str | None = None  # why the space's index should be rebuilt, with the command
    recall_seconds: float = 0.0  # of seconds: the recall check on recall_sample images after matching

    @property
    def setting(self) -> str:
        """The search in words: exact search, or the index kind and its setting."""
        if self.exact:
            return "exact search"
        if self.index_kind == "ivfflat":
            return f"IVFFlat, probes={self.probes}"
        return f"HNSW, ef_search={self.ef_search}"

    @property
    def rate(self) -> float:
        return self.matched / self.seconds if self.seconds > 0 else 0.0


def resolve_k(conn: psycopg.Connection, space: EmbeddingSpace, k: int | None, *, rematch: bool) -> int:
    """One k per space: the first run fixes it; a different k later needs --rematch."""
    if k is not None and not 1 <= k <= 1000:
        raise InputError(f"--k {k} is out of range; use 1..1000")
    if rematch:
        return k or space.match_k or DEFAULT_K
    if space.match_k is not None and k is not None and k != space.match_k:
        raise ConflictError(
            f"space {space.name!r} was matched with k={space.match_k}, not {k}; "
            f"add --rematch to delete its matches and match again with k={k}"
        )
    if space.match_k is not None:
        return space.match_k
    # A space matched before match_k existed (or by hand) still has one k in its rows.
    stored = conn.execute(query("match", "stored_k"), {"space_id": space.space_id}).fetchall()
    if stored and k is not None and stored[0][0] != k:
        raise ConflictError(
            f"space {space.name!r} holds matches with k={stored[0][0]}, not {k}; add --rematch to match again with k={k}"
        )
    return k or (stored[0][0] if stored else DEFAULT_K)


def _batches(ids: Sequence[int], size: int) -> list[tuple[int, int, list[int]]]:
    """Consecutive slices of the sorted pending ids as (lo, hi, ids): disjoint ranges."""
    out = []
    for start in range(0, len(ids), size):
        chunk = list(ids[start : start + size])
        out.append((chunk[0], chunk[-1], chunk))
    return out


def match_space(
    connect: Callable[[], psycopg.Connection],
    space: EmbeddingSpace,
    *,
    k: int | None = None,
    ef_search: int | None = None,
    exact: bool = False,
    batch: int = DEFAULT_BATCH,
    workers: int | None = None,
    rematch: bool = False,
    on_progress: Callable[[int], None] | None = None,
    on_total: Callable[[int], None] | None = None,
    recall_sample: int = 100,
    rerank_space: EmbeddingSpace | None = None,
    candidates: int | None = None,
    probes: int | None = None,
    target_recall: float | None = None,
    calibration_sample: int | None = None,
) -> MatchResult:
    """Match every generated image of the space that has no match rows yet (see module docstring).

    connect opens an autocommit connection (App.connect): one holds the space's match lock, and each
    worker opens its own. The index setting is ef_search (HNSW) or probes (IVFFlat) when given; else,
    with target_recall, the cheapest one reaching it on a sample (gmv_sql.match.tuning); else the
    defaults (ef_search_for, default_probes). The run is recorded in gmv.match_run with its setting and
    the recall@k of its search against exact search on recall_sample of the images it matched (0: not
    measured, recorded so).
    """
    from gmv_sql.index.builder import stale_reason
    from gmv_sql.match import recall as recall_check
    from gmv_sql.match import runs
    from gmv_sql.match import tuning as tuning_module

    if recall_sample < 0:
        raise InputError(f"--recall-sample {recall_sample} must be 0 (skip) or more")
    if batch < 1:
        raise InputError(f"--batch-size {batch} must be at least 1")
    workers = default_workers(8) if workers is None else workers
    if workers < 1:
        raise InputError(f"--workers {workers} must be at least 1")
    started = time.monotonic()
    with connect() as conn, locks.space_lock(conn, locks.MATCH, space):
        # The index as it is now that no `gmv index build` can run: the queries must follow its kind.
        space = spaces.find_space(conn, space.name) or space
        with conn.transaction():
            k = resolve_k(conn, space, k, rematch=rematch)
            from gmv_sql.match import rerank

            rerank_space, candidates = rerank.check(conn, space, rerank_space, candidates, k, rematch=rematch)
            ivfflat = space.index_kind == "ivfflat"
            ef = None if exact or ivfflat else ef_search_for(k, ef_search)
            n_probes = probes_for(space, probes) if ivfflat and not exact else None
            if target_recall is not None:
                tuning_module.check_target(target_recall)
            if rematch:
                conn.execute(query("match", "delete_space_matches"), {"space_id": space.space_id})
            spaces.set_match_k(conn, space, k)
            run_id = runs.start(
                conn,
                space,
                k=k,
                exact=exact,
                ef_search=ef,
                rematch=rematch,
                rerank=rerank_space,
                candidates=candidates,
            )
            unmatched = conn.execute(query("match", "unmatch_ineligible"), {"space_id": space.space_id})
            unmatched_images = len({r[0] for r in unmatched})
            late_images = late.unmatch_late(conn, space)  # late training vectors compete
        ineligible = ineligible_training(conn)
        n_vectors = store.count_vectors(conn, space)
        eligible = n_vectors - (len(store.present(conn, space, "training", ineligible)) if ineligible else 0)
        plan = MatchPlan(
            space,
            k,
            ef,
            exact,
            tuple(ineligible),
            expected=min(k, eligible),
            batch=batch,
            rerank=rerank_space,
            candidates=candidates,
            run_id=run_id,
            probes=n_probes,
        )
        pending = [r[0] for r in conn.execute(plan.sql("pending_generated"), plan.params())]
        given = probes if ivfflat else ef_search
        tuning = None
        if (
            target_recall is not None
            and not exact
            and given is None
            and pending
            and plan.expected
            and not rerank_space
        ):
            tuning = tuning_module.calibrate(
                conn,
                plan,
                target_recall,
                sample=calibration_sample,
                eligible=eligible,
                pending=len(pending),
                connect=connect,
                workers=workers,
            )
            if tuning.setting == "exact":
                exact = True
                plan = replace(plan, exact=True, ef_search=None, probes=None)
            else:
                plan = replace(plan, **{tuning.setting: tuning.value})
        without_vector = conn.execute(spaces.render("match", "count_without_vector", space)).fetchone()[0]
        if rerank_space is not None:
            without_vector += conn.execute(
                rerank.render("count_generated_without_rerank_vector", space, rerank_space)
            ).fetchone()[0]
        if on_total:
            on_total(len(pending))
        totals = Counter()
        n_workers = 1
        for group_plan, ids in late.split_by_opt_out(conn, plan, pending):  # dated opt-outs: by creation day
            work = _batches(ids, batch) if group_plan.expected > 0 else []
            n_workers = max(n_workers, min(workers, len(work)))
            totals.update(
                _run_workers(
                    connect, group_plan, work, max(1, min(workers, len(work))), on_progress=on_progress
                )
            )
        recall_seconds = 0.0
        if exact:
            measured = runs.RunRecall("exact", 1.0)
        elif not totals["matched"]:
            measured = runs.RunRecall("nothing_matched")
        elif recall_sample == 0:
            measured = runs.RunRecall("skipped")
        else:
            found = recall_check.measure(
                conn,
                plan,
                recall_check.sample_ids(pending, recall_sample),
                connect=connect,
                workers=workers,
            )
            measured = runs.RunRecall("measured", found.recall, found.sample)
            recall_seconds = found.index_seconds + found.exact_seconds
        runs.finish(
            conn,
            run_id,
            matched=totals["matched"],
            rows=totals["rows"],
            recall=measured,
            exact=exact,
            ef_search=plan.ef_search,
            probes=plan.probes,
            tuning=tuning,
        )
    return MatchResult(
        space=space.name,
        k=k,
        ef_search=plan.ef_search,
        exact=exact,
        matched=totals["matched"],
        rows=totals["rows"],
        seconds=time.monotonic() - started,
        without_vector=without_vector,
        exact_fallback=totals["fallback"],
        unmatched_ineligible=unmatched_images,
        late_rematched=late_images,
        workers=n_workers,
        eligible_training=eligible,
        pending=len(pending),
        run_id=run_id,
        recall=measured.recall,
        recall_sample=measured.sample,
        recall_status=measured.status,
        rerank_space=rerank_space.name if rerank_space else None,
        candidates=candidates,
        index_kind=space.index_kind,
        probes=plan.probes,
        tuning=tuning,
        stale_index=stale_reason(space, n_vectors),
        recall_seconds=recall_seconds,
    )


def ineligible_training(conn: psycopg.Connection) -> list[int]:
    """Training ids that must never be matched: opted out, or under an excluded licence."""
    return [r[0] for r in conn.execute(query("match", "ineligible_training"))]


def _match_batch(
    conn: psycopg.Connection, plan: MatchPlan, lo: int, hi: int, ids: list[int]
) -> tuple[int, int, int]:
    """One transaction: insert the batch's top-k; redo exactly any image the index under-served."""
    insert = plan.sql("knn_insert")
    with conn.transaction():
        apply_search_settings(conn, plan)
        counts = Counter(r[0] for r in conn.execute(insert, plan.params(lo=lo, hi=hi, ids=ids)))
        short = [g for g in ids if counts.get(g, 0) < plan.expected]
        if short:
            # Iterative index scans gave up before k eligible rows (e.g. hnsw.max_scan_tuples):
            # an exact search for those few keeps the promise of k matches per image.
            conn.execute(
                query("match", "delete_generated_matches"), {"space_id": plan.space.space_id, "ids": short}
            )
            _set_local(conn, _EXACT_SETTINGS)
            for g in short:
                counts.pop(g, None)  # their first rows were just deleted
            redone = conn.execute(
                plan.sql("knn_insert", exact=True), {**plan.params(lo=lo, hi=hi, ids=ids), "exact": True}
            ).fetchall()
            counts.update(Counter(r[0] for r in redone))
    return len(counts), sum(counts.values()), len(short)


def _run_workers(
    connect: Callable[[], psycopg.Connection],
    plan: MatchPlan,
    work: list[tuple[int, int, list[int]]],
    n_workers: int,
    *,
    on_progress: Callable[[int], None] | None,
) -> dict[str, int]:
    """Run the batches on n_workers connections; returns the totals matched, rows and fallback."""
    totals = {"matched": 0, "rows": 0, "fallback": 0}
    if not work:
        return totals
    todo: queue.Queue = queue.Queue()
    for item in work:
        todo.put(item)
    lock = threading.Lock()
    stop = threading.Event()
    errors: list[BaseException] = []
    connections: list[psycopg.Connection] = []

    def worker() -> None:
        try:
            with connect() as wconn:
                with lock:
                    connections.append(wconn)
                while not stop.is_set():
                    try:
                        lo, hi, ids = todo.get_nowait()
                    except queue.Empty:
                        return
                    matched, rows, fallback = _match_batch(wconn, plan, lo, hi, ids)
                    with lock:
                        totals["matched"] += matched
                        totals["rows"] += rows
                        totals["fallback"] += fallback
                        if on_progress:
                            on_progress(len(ids))
        except BaseException as exc:  # reported by the main thread
            stop.set()
            with lock:
                errors.append(exc)

    threads = [threading.Thread(target=worker, name=f"gmv-match-{i}", daemon=True) for i in range(n_workers)]
    for t in threads:
        t.start()
    try:
        for t in threads:
            while t.is_alive():
                t.join(0.2)
    except KeyboardInterrupt:
        # Committed batches stay; the ones in flight are cancelled and roll back.
        stop.set()
        with lock:
            for c in connections:
                try:
                    c.cancel_safe()
                except Exception:  # noqa: BLE001 - best effort while interrupted
                    pass
        for t in threads:
            t.join(10)
        raise
    if errors:
        exc = errors[0]
        if isinstance(exc, psycopg.Error):
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise DatabaseError(
                f"matching space {plan.space.name!r} failed: {first}; batches done so far are kept, fix and re-run"
            ) from exc
        raise exc
    return totals


@dataclass
class RecallResult:
    space: str
    k: int
    ef_search: int
    sample: int
    recall: float
    worst: float  # lowest per-image recall in the sample
    index_seconds: float
    exact_seconds: float
    probes: int | None = None  # IVFFlat spaces (ef_search is then None)


def knn(conn: psycopg.Connection, plan: MatchPlan, ids: Sequence[int]) -> dict[int, list[tuple[int, float]]]:
    """Top-k (training_id, distance) per generated id, without writing anything."""
    out: dict[int, list[tuple[int, float]]] = {int(g): [] for g in ids}
    with conn.transaction():
        apply_search_settings(conn, plan)
        rows = conn.execute(plan.sql("knn_select"), plan.params(ids=list(map(int, ids)))).fetchall()
    for g, _rank, t, d in rows:
        out[g].append((t, d))
    return out


def recall(
    conn: psycopg.Connection,
    space: EmbeddingSpace,
    *,
    k: int | None = None,
    ef_search: int | None = None,
    sample: int = 100,
    salt: str = "gmv",
    probes: int | None = None,
) -> RecallResult:
    """recall@k of the space's index against exact search on a reproducible sample of generated images."""
    if sample < 1:
        raise InputError(f"--sample {sample} must be at least 1")
    k = k or space.match_k or DEFAULT_K
    ivfflat = space.index_kind == "ivfflat"
    ef = None if ivfflat else ef_search_for(k, ef_search)
    n_probes = probes_for(space, probes) if ivfflat else None
    ids = [
        r[0]
        for r in conn.execute(spaces.render("match", "sample_generated", space), {"salt": salt, "n": sample})
    ]
    if not ids:
        raise InputError(
            f"space {space.name!r} has no generated vectors to sample; run `gmv embed --space {space.name}` first"
        )
    ineligible = tuple(ineligible_training(conn))
    t0 = time.monotonic()
    approx = knn(conn, MatchPlan(space, k, ef, exact=False, ineligible=ineligible, probes=n_probes), ids)
    t1 = time.monotonic()
    from gmv_sql.match.exact import exact_knn

    truth = exact_knn(conn, MatchPlan(space, k, None, exact=True, ineligible=ineligible), ids)
    t2 = time.monotonic()
    per_image = []
    for g in ids:
        want = {t for t, _ in truth[g]}
        if not want:
            continue
        got = {t for t, _ in approx[g]}
        per_image.append(len(want & got) / len(want))
    mean = sum(per_image) / len(per_image) if per_image else 1.0
    return RecallResult(
        space=space.name,
        k=k,
        ef_search=ef,
        sample=len(ids),
        recall=mean,
        worst=min(per_image, default=1.0),
        index_seconds=t1 - t0,
        exact_seconds=t2 - t1,
        probes=n_probes,
    )
