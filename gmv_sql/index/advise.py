"""`gmv index advise`: build HNSW and IVFFlat on a sample of a space, measure each at a target recall.

In one transaction that is rolled back at the end (nothing is written, the space is untouched): a
scratch space gets a reproducible sample of the space's training vectors and generated vectors;
each index kind is built on it (the space's precision and HNSW parameters; IVFFlat lists by the
row rule), the cheapest setting reaching the target recall is calibrated (gmv_sql.match.tuning),
and the sample's generated images are searched at that setting on one connection. The kind with
the higher rate among those reaching the target is recommended.

Which kind wins depends on the data (issue 13: IVFFlat ~2x faster than HNSW on clustered vectors,
~2x slower on Fashion-MNIST pixels), and on size: a sample smaller than the space favours neither
kind reliably, so the rows measured are printed beside the space's.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace

import psycopg

from gmv_sql import spaces
from gmv_sql.embed import store
from gmv_sql.errors import InputError
from gmv_sql.index import builder
from gmv_sql.match import matcher, tuning
from gmv_sql.spaces import EmbeddingSpace

DEFAULT_ROWS = 50_000
DEFAULT_QUERIES = 500


@dataclass
class Candidate:
    kind: str
    describe: str  # the index built, in words
    setting: str
    value: int
    recall: float | None
    reached: bool
    rate: float  # generated images searched per second, one connection
    build_seconds: float
    size_mb: float


@dataclass
class Advice:
    space: str
    rows: int  # training vectors in the sample
    space_rows: int
    queries: int
    target: float
    candidates: list[Candidate]

    @property
    def best(self) -> Candidate | None:
        reaching = [c for c in self.candidates if c.reached]
        return max(reaching or self.candidates, key=lambda c: c.rate, default=None)


class _Rollback(Exception):
    pass


def advise(
    conn: psycopg.Connection,
    space: EmbeddingSpace,
    *,
    target: float = tuning.DEFAULT_TARGET_RECALL,
    rows: int = DEFAULT_ROWS,
    queries: int = DEFAULT_QUERIES,
    k: int | None = None,
    progress=None,
) -> Advice:
    """Measure both index kinds on a sample of the space (see module docstring); writes nothing."""
    tuning.check_target(target)
    if rows < 1 or queries < 1:
        raise InputError(f"--rows {rows} and --queries {queries} must be at least 1")
    k = k or space.match_k or matcher.DEFAULT_K
    space_rows = store.count_vectors(conn, space)
    if space_rows == 0 or store.count_vectors(conn, space, "generated") == 0:
        raise InputError(
            f"space {space.name!r} needs training and generated vectors to measure; run `gmv embed --space {space.name}` first"
        )
    result: Advice | None = None
    try:
        with conn.transaction():
            scratch = spaces.get_or_create_space(
                conn,
                f"advise.{space.space_id}",
                model=space.model,
                dim=space.dim,
                storage=space.storage,
                distance=space.distance,
                hnsw_m=space.hnsw_m,
                hnsw_ef_construction=space.hnsw_ef_construction,
                index_precision=space.index_precision,
            )
            fragments = {
                "scratch_training": scratch.table("training"),
                "scratch_generated": scratch.table("generated"),
            }
            store.drop_index(conn, scratch)
            conn.execute(spaces.render("indexes", "copy_training_sample", space, **fragments), {"n": rows})
            conn.execute(
                spaces.render("indexes", "copy_generated_sample", space, **fragments), {"n": queries}
            )
            ids = [r[0] for r in conn.execute(spaces.render("indexes", "scratch_generated_ids", scratch))]
            n_rows = store.count_vectors(conn, scratch)
            candidates = []
            for kind in spaces.INDEX_KINDS:
                if progress:
                    progress(f"building {kind} on {n_rows:,} sampled training vectors…")
                built = builder.build(conn, scratch, kind=kind)
                scratch = built.space
                plan = matcher.MatchPlan(scratch, k, None, expected=min(k, n_rows))
                tuned = tuning.calibrate(conn, plan, target, eligible=None)
                chosen = replace(plan, **{tuned.setting: tuned.value})
                started = time.monotonic()
                matcher.knn(conn, chosen, ids)
                seconds = time.monotonic() - started
                candidates.append(
                    Candidate(
                        kind=kind,
                        describe=scratch.describe_index(),
                        setting=tuned.setting,
                        value=tuned.value,
                        recall=tuned.recall,
                        reached=tuned.reached,
                        rate=len(ids) / seconds if seconds > 0 else 0.0,
                        build_seconds=built.seconds,
                        size_mb=built.size_mb,
                    )
                )
            result = Advice(space.name, n_rows, space_rows, len(ids), target, candidates)
            raise _Rollback
    except _Rollback:
        pass
    assert result is not None
    return result
