"""Vector I/O of an embedding space: what is missing, validation, COPY BINARY loads, (re)building its index.

The space record, its table names and its per-space SQL live in gmv_sql.spaces.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import psycopg
from psycopg import sql
from psycopg.copy import QueuedLibpqWriter

from gmv_sql import spaces
from gmv_sql.errors import InputError
from gmv_sql.resources import query
from gmv_sql.spaces import EmbeddingSpace, Kind, render


def missing(conn: psycopg.Connection, space: EmbeddingSpace, kind: Kind) -> list[tuple[int, str, str]]:
    """(id, uri, sha256) of images of that kind that have no vector in the space yet."""
    return conn.execute(render("embedding", f"{kind}_missing", space)).fetchall()


def validate_vectors(vectors: np.ndarray, space: EmbeddingSpace, source: str) -> np.ndarray:
    vectors = np.asarray(vectors)
    if vectors.ndim != 2 or vectors.shape[1] != space.dim:
        got = vectors.shape[1] if vectors.ndim == 2 else f"shape {vectors.shape}"
        raise InputError(
            f"expected {space.dim} dimensions for space {space.name!r}, got {got} ({source}); "
            "use --space to pick another space"
        )
    if not np.isfinite(vectors).all():
        bad = int(np.argwhere(~np.isfinite(vectors))[0][0])
        raise InputError(f"vector {bad} of {source} has NaN or infinite values; fix the embeddings and retry")
    if space.index_storage == "halfvec" and np.abs(vectors).max(initial=0) > 65504:
        if space.storage == "halfvec":
            raise InputError(
                f"{source} has values beyond half precision (65504) for halfvec space {space.name!r}"
            )
        raise InputError(
            f"{source} has values beyond half precision (65504), which the halfvec index of space "
            f"{space.name!r} cannot hold; scale the vectors, or index full precision first: "
            f"gmv index build --space {space.name} --precision full"
        )
    return vectors.astype(np.float32, copy=False)


COPY_HEADER = (
    b"PGCOPY\n\xff\r\n\x00" + (0).to_bytes(4, "big") + (0).to_bytes(4, "big")
)  # signature, flags, ext. length
COPY_TRAILER = (-1).to_bytes(2, "big", signed=True)
# Rows per piece of the COPY stream (~4 MB at 512-d): numpy builds the next piece while a writer
# thread sends this one and the server stores it (the rates with and without it: docs/BENCHMARKS.md).
COPY_PIECE_ROWS = 2048


def _binary_copy_rows(ids: np.ndarray, vectors: np.ndarray, storage: str) -> bytes:
    """COPY BINARY tuples for (ids, vectors) built with numpy (no per-row Python), no header or trailer.

    Tuple layout: int16 field count, then int32 length + int8 id, then int32 length + pgvector's
    binary form (int16 dim, int16 unused, dim big-endian floats: float32 for vector, float16 for halfvec).
    """
    n, dim = vectors.shape
    elem = np.dtype(">f4") if storage == "vector" else np.dtype(">f2")
    row = np.dtype(
        [
            ("nfields", ">i2"),
            ("id_len", ">i4"),
            ("id", ">i8"),
            ("vec_len", ">i4"),
            ("dim", ">i2"),
            ("unused", ">i2"),
            ("values", elem, (dim,)),
        ]
    )
    rows = np.empty(n, dtype=row)
    rows["nfields"] = 2
    rows["id_len"] = 8
    rows["id"] = ids
    rows["vec_len"] = 4 + dim * elem.itemsize
    rows["dim"] = dim
    rows["unused"] = 0
    rows["values"] = vectors
    return rows.tobytes()


def copy_vectors(
    conn: psycopg.Connection,
    space: EmbeddingSpace,
    kind: Kind,
    ids,
    vectors: np.ndarray,
    *,
    source: str = "vectors",
) -> int:
    """Append vectors with one COPY … (FORMAT BINARY); ids must not have vectors yet in this space."""
    ids = np.asarray(ids, dtype=np.int64)
    vectors = validate_vectors(vectors, space, source)
    if len(ids) != len(vectors):
        raise InputError(f"{len(ids)} ids but {len(vectors)} vectors in {source}")
    if len(ids) == 0:
        return 0
    with (
        conn.cursor() as cur,
        cur.copy(render("embedding", f"copy_{kind}", space), writer=QueuedLibpqWriter(cur)) as copy,
    ):
        copy.write(COPY_HEADER)
        for start in range(0, len(ids), COPY_PIECE_ROWS):
            end = start + COPY_PIECE_ROWS
            copy.write(_binary_copy_rows(ids[start:end], vectors[start:end], space.storage))
        copy.write(COPY_TRAILER)
    return len(ids)


def maintenance_work_mem_for(space: EmbeddingSpace, n_rows: int) -> str:
    """Enough memory for the index to build in RAM (pgvector is much faster then), capped at 4 GB."""
    bytes_per_row = space.dim * (4 if space.index_storage == "vector" else 2) + 8 * space.hnsw_m * 2 + 64
    mb = max(64, min(4096, math.ceil(n_rows * bytes_per_row * 1.3 / 2**20)))
    return f"{mb}MB"


def count_vectors(conn: psycopg.Connection, space: EmbeddingSpace, kind: Kind = "training") -> int:
    """Vectors of that kind stored in the space."""
    return conn.execute(render("embedding", "count_vectors", space, table=space.table(kind))).fetchone()[0]


def has_training_vectors(conn: psycopg.Connection, space: EmbeddingSpace) -> bool:
    return conn.execute(render("embedding", "training_has_vectors", space)).fetchone()[0]


def present(conn: psycopg.Connection, space: EmbeddingSpace, kind: Kind, ids: np.ndarray) -> np.ndarray:
    """Those of ids that already have a vector of that kind in the space."""
    rows = conn.execute(render("embedding", f"{kind}_present", space), {"ids": np.asarray(ids).tolist()})
    return np.asarray([r[0] for r in rows], dtype=np.int64)


def index_exists(conn: psycopg.Connection, space: EmbeddingSpace) -> bool:
    return conn.execute(query("embedding", "index_exists"), {"index": space.index_name}).fetchone()[0]


def drop_index(conn: psycopg.Connection, space: EmbeddingSpace) -> None:
    """Drop the space's training index, whatever its kind."""
    for kind in spaces.INDEX_KINDS:
        name = sql.Identifier(spaces.index_name(space.space_id, kind))
        conn.execute(render("embedding", "drop_index_named", space, index_to_drop=name))


IVFFLAT_MAX_LISTS = 32768  # pgvector's limit


def default_lists(n_rows: int) -> int:
    """IVFFlat lists for n_rows, as pgvector's README advises: rows / 1000 up to 1M rows, sqrt(rows) above."""
    lists = n_rows // 1000 if n_rows <= 1_000_000 else math.isqrt(n_rows)
    return max(1, min(IVFFLAT_MAX_LISTS, lists))


def build_index(
    conn: psycopg.Connection, space: EmbeddingSpace, *, lists: int | None = None
) -> EmbeddingSpace:
    """(Re)create the space's index (its kind and precision) and record the rows it was built on.

    Call after bulk loads: building once is far faster than inserting into an HNSW graph, and IVFFlat
    takes its centroids from the rows present. IVFFlat lists: the given ones, else default_lists().
    Returns the space as recorded.
    """
    n_rows = count_vectors(conn, space)
    conn.execute(
        query("embedding", "set_maintenance_work_mem"), {"mem": maintenance_work_mem_for(space, n_rows)}
    )
    ivfflat_lists = None
    if space.index_kind == "ivfflat":
        ivfflat_lists = lists or default_lists(n_rows)
        space = replace(space, ivfflat_lists=ivfflat_lists)
    conn.execute(render("embedding", f"create_{space.index_kind}_index", space))
    return spaces.set_index(
        conn,
        space,
        index_kind=space.index_kind,
        index_precision=space.index_precision,
        hnsw_m=space.hnsw_m,
        hnsw_ef_construction=space.hnsw_ef_construction,
        ivfflat_lists=ivfflat_lists,
        index_rows=n_rows,
    )


def reembed_space(conn: psycopg.Connection, space: EmbeddingSpace, preprocessing: dict) -> EmbeddingSpace:
    """Empty the space's vectors and matches and record its new preprocessing (runtime, precision), in
    the caller's transaction; refused while a gmv embed or gmv match of the space is running."""
    import json

    from psycopg.rows import class_row

    from gmv_sql.db import locks

    with locks.space_lock(conn, locks.EMBED, space, transaction=True):
        with locks.space_lock(conn, locks.MATCH, space, transaction=True):
            conn.execute(query("embedding", "delete_space_matches"), {"space_id": space.space_id})
            conn.execute(render("embedding", "empty_training", space))
            conn.execute(render("embedding", "empty_generated", space))
            with conn.cursor(row_factory=class_row(EmbeddingSpace)) as cur:
                return cur.execute(
                    query("spaces", "set_preprocessing"),
                    {"space_id": space.space_id, "preprocessing": json.dumps(preprocessing)},
                ).fetchone()
