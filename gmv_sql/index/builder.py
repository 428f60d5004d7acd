"""`gmv index build`: (re)build a space's training index as HNSW or IVFFlat, and tell when it is stale.

HNSW suits data that grows (the graph takes inserts as they come). IVFFlat takes its centroids from
the rows present when it is built, so it is built after loading and rebuilt as the data grows: an
IVFFlat index built on fewer than 1 / STALE_GROWTH of the rows the table now holds is reported by
`gmv db status` and `gmv match`. The rule follows pgvector's lists advice (rows / 1000): past 2x
growth the lists hold twice the rows they were sized for, so each probe reads twice as many; a
growth test measured half the matching rate at 4x (issue 13).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace

import psycopg

from gmv_sql import spaces
from gmv_sql.db import locks
from gmv_sql.embed import store
from gmv_sql.errors import InputError
from gmv_sql.resources import query
from gmv_sql.spaces import EmbeddingSpace

STALE_GROWTH = 2.0


def stale_reason(space: EmbeddingSpace, n_rows: int) -> str | None:
    """Why the space's index should be rebuilt (with the command), or None."""
    if space.index_kind != "ivfflat" or space.index_rows is None:
        return None
    if n_rows <= STALE_GROWTH * max(space.index_rows, 1):
        return None
    return (
        f"the IVFFlat index of space {space.name!r} was built on {space.index_rows:,} training vectors and "
        f"the space now holds {n_rows:,}: its lists are stale (slower, lower recall); rebuild it with "
        f"`gmv index build --space {space.name} --kind ivfflat`"
    )


@dataclass
class BuildResult:
    space: EmbeddingSpace
    rows: int
    seconds: float
    size_mb: float

    def summary(self) -> str:
        return (
            f"space {self.space.name!r}: built {self.space.describe_index()} in {self.seconds:.1f}s "
            f"({self.size_mb:,.1f} MB)"
        )


def index_size_mb(conn: psycopg.Connection, space: EmbeddingSpace) -> float:
    size = conn.execute(query("indexes", "index_size_mb"), {"index": space.index_name}).fetchone()[0]
    return float(size or 0.0)


def build(
    conn: psycopg.Connection,
    space: EmbeddingSpace,
    *,
    kind: str | None = None,
    precision: str | None = None,
    m: int | None = None,
    ef_construction: int | None = None,
    lists: int | None = None,
) -> BuildResult:
    """Replace the space's index (one transaction: on failure the old index stays).

    Unset options keep the space's current values; an IVFFlat index without lists gets
    store.default_lists(rows). conn must be autocommit.
    """
    kind = kind or space.index_kind
    if kind not in spaces.INDEX_KINDS:
        raise InputError(f"unknown index kind {kind!r}; use hnsw or ivfflat")
    precision = precision or space.index_precision
    if precision not in spaces.INDEX_PRECISIONS:
        raise InputError(f"unknown index precision {precision!r}; use full or half")
    if space.storage == "halfvec":
        precision = "half"  # a halfvec column is indexed as it is stored
    if kind == "ivfflat" and (m is not None or ef_construction is not None):
        raise InputError("--m and --ef-construction are HNSW settings; for --kind ivfflat use --lists")
    if kind == "hnsw" and lists is not None:
        raise InputError("--lists is an IVFFlat setting; for --kind hnsw use --m and --ef-construction")
    started = time.monotonic()
    # Neither vectors being written nor a matching run (whose queries follow the old index) meanwhile.
    with (
        conn.transaction(),
        locks.space_lock(conn, locks.EMBED, space, transaction=True),
        locks.space_lock(conn, locks.MATCH, space, transaction=True),
    ):
        n_rows = store.count_vectors(conn, space)
        if kind == "ivfflat":
            if n_rows == 0:
                raise InputError(
                    f"space {space.name!r} has no training vectors: IVFFlat takes its lists from the data; "
                    f"run `gmv embed --space {space.name}` first, or use --kind hnsw"
                )
            if lists is not None and not 1 <= lists <= min(n_rows, store.IVFFLAT_MAX_LISTS):
                raise InputError(
                    f"--lists {lists} must be 1..{min(n_rows, store.IVFFLAT_MAX_LISTS):,} for {n_rows:,} training "
                    f"vectors; leave it out for {store.default_lists(n_rows):,} (rows / 1000)"
                )
        wanted = replace(
            space,
            index_kind=kind,
            index_precision=precision,
            hnsw_m=m or space.hnsw_m,
            hnsw_ef_construction=ef_construction or space.hnsw_ef_construction,
        )
        store.drop_index(conn, space)
        built = store.build_index(conn, wanted, lists=lists)
        size = index_size_mb(conn, built)
    return BuildResult(built, n_rows, time.monotonic() - started, size)
