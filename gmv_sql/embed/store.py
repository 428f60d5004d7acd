"""Embedding spaces and their vector tables: create, bulk-load with COPY BINARY, (re)build HNSW.

A space's vectors live in gmv.training_embedding_<space_id> / gmv.generated_embedding_<space_id>
(typed vector(dim) or halfvec(dim)); only the training table gets an HNSW index.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import psycopg
from psycopg import sql
from psycopg.copy import QueuedLibpqWriter

from gmv_sql.errors import ConflictError, InputError, NotFoundError
from gmv_sql.resources import query

Kind = Literal["training", "generated"]

HNSW_MAX_DIM = {"vector": 2000, "halfvec": 4000}
DISTANCE_OPERATORS = {"cosine": "<=>", "l2": "<->", "inner_product": "<#>"}
OPCLASS_SUFFIX = {"cosine": "cosine_ops", "l2": "l2_ops", "inner_product": "ip_ops"}


@dataclass(frozen=True)
class EmbeddingSpace:
    space_id: int
    name: str
    model: str
    weights_sha256: str | None
    preprocessing: dict[str, Any] = field(default_factory=dict)
    dim: int = 0
    storage: str = "vector"
    distance: str = "cosine"
    hnsw_m: int = 16
    hnsw_ef_construction: int = 64
    match_k: int | None = None

    def table(self, kind: Kind) -> sql.Composed:
        return sql.SQL("gmv.{}").format(sql.Identifier(f"{kind}_embedding_{self.space_id}"))

    @property
    def index_name(self) -> str:
        return f"training_embedding_{self.space_id}_hnsw"

    @property
    def opclass(self) -> str:
        return f"{self.storage}_{OPCLASS_SUFFIX[self.distance]}"

    @property
    def operator(self) -> str:
        return DISTANCE_OPERATORS[self.distance]

    def sql_params(self) -> dict[str, sql.Composable]:
        """Fill-ins for the templates of sql/queries/embedding.sql."""
        return {
            "training": self.table("training"),
            "generated": self.table("generated"),
            "storage": sql.SQL(self.storage),
            "dim": sql.Literal(int(self.dim)),
            "opclass": sql.SQL(self.opclass),
            "index": sql.Identifier(self.index_name),
            "m": sql.Literal(int(self.hnsw_m)),
            "ef_construction": sql.Literal(int(self.hnsw_ef_construction)),
        }


def render(name: str, space: EmbeddingSpace) -> sql.Composed:
    return sql.SQL(query("embedding", name)).format(**space.sql_params())


_COLUMNS = "space_id, name, model, weights_sha256, preprocessing, dim, storage, distance, hnsw_m, hnsw_ef_construction, match_k"


def _from_row(row) -> EmbeddingSpace:
    return EmbeddingSpace(*row)


def list_spaces(conn: psycopg.Connection) -> list[EmbeddingSpace]:
    rows = conn.execute(f"SELECT {_COLUMNS} FROM gmv.embedding_space ORDER BY space_id").fetchall()
    return [_from_row(r) for r in rows]


def get_space(conn: psycopg.Connection, name: str) -> EmbeddingSpace:
    row = conn.execute(f"SELECT {_COLUMNS} FROM gmv.embedding_space WHERE name = %s", (name,)).fetchone()
    if row is None:
        known = ", ".join(s.name for s in list_spaces(conn)) or "none yet"
        raise NotFoundError(f"no embedding space {name!r} (known: {known}); create one with `gmv embed --space NAME`")
    return _from_row(row)


def choose_storage(dim: int, storage: str | None = None) -> str:
    """vector up to 2000 dims (HNSW limit), halfvec up to 4000; beyond that the embedder must reduce."""
    if storage is None:
        storage = "vector" if dim <= HNSW_MAX_DIM["vector"] else "halfvec"
    if storage not in HNSW_MAX_DIM:
        raise InputError(f"unknown storage {storage!r}; use vector or halfvec")
    if dim > HNSW_MAX_DIM[storage]:
        raise InputError(
            f"{dim} dimensions do not fit an HNSW index on {storage} (max {HNSW_MAX_DIM[storage]}); "
            "reduce the embedding (pooled features or PCA) or use halfvec (up to 4000)"
        )
    return storage


def get_or_create_space(
    conn: psycopg.Connection,
    name: str,
    *,
    model: str,
    dim: int,
    weights_sha256: str | None = None,
    preprocessing: dict[str, Any] | None = None,
    storage: str | None = None,
    distance: str = "cosine",
    hnsw_m: int = 16,
    hnsw_ef_construction: int = 64,
) -> EmbeddingSpace:
    """Return the space, creating it and its tables; refuse if it exists with another model/dim/weights.

    Call inside a transaction: two processes creating the same space queue on a transaction lock,
    and the second then finds the first one's space instead of failing on the unique name.
    """
    preprocessing = preprocessing or {}
    conn.execute("SELECT pg_advisory_xact_lock(hashtext('gmv.embedding_space'))")
    row = conn.execute(f"SELECT {_COLUMNS} FROM gmv.embedding_space WHERE name = %s", (name,)).fetchone()
    if row is not None:
        space = _from_row(row)
        mismatches = [
            f"{label} {have!r} (asked {want!r})"
            for label, have, want in (
                ("model", space.model, model),
                ("dim", space.dim, dim),
                ("weights sha256", space.weights_sha256, weights_sha256),
                ("preprocessing", space.preprocessing, preprocessing),
            )
            if have != want
        ]
        if mismatches:
            raise ConflictError(
                f"embedding space {name!r} already holds {'; '.join(mismatches)}; never mix spaces: "
                "pick another --space name"
            )
        return space
    if distance not in DISTANCE_OPERATORS:
        raise InputError(f"unknown distance {distance!r}; use one of {', '.join(DISTANCE_OPERATORS)}")
    storage = choose_storage(dim, storage)
    try:
        row = conn.execute(
            f"INSERT INTO gmv.embedding_space (name, model, weights_sha256, preprocessing, dim, storage, distance,"
            f" hnsw_m, hnsw_ef_construction) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING {_COLUMNS}",
            (name, model, weights_sha256, json.dumps(preprocessing), dim, storage, distance, hnsw_m, hnsw_ef_construction),
        ).fetchone()
    except psycopg.errors.CheckViolation as exc:
        raise InputError(
            f"invalid embedding space {name!r}: names are lowercase letters, digits, '.', '_', '-' (max 63); "
            f"hnsw m 2..100, ef_construction 4..1000 ({exc.diag.constraint_name})"
        ) from exc
    space = _from_row(row)
    conn.execute(render("create_training_table", space))
    conn.execute(render("create_generated_table", space))
    conn.execute(render("create_hnsw_index", space))
    return space


def missing(conn: psycopg.Connection, space: EmbeddingSpace, kind: Kind) -> list[tuple[int, str, str]]:
    """(id, uri, sha256) of images of that kind that have no vector in the space yet."""
    return conn.execute(render(f"{kind}_missing", space)).fetchall()


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
    if space.storage == "halfvec" and np.abs(vectors).max(initial=0) > 65504:
        raise InputError(f"{source} has values beyond half precision (65504) for halfvec space {space.name!r}")
    return vectors.astype(np.float32, copy=False)


COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + (0).to_bytes(4, "big") + (0).to_bytes(4, "big")  # signature, flags, ext. length
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
    conn: psycopg.Connection, space: EmbeddingSpace, kind: Kind, ids, vectors: np.ndarray, *, source: str = "vectors"
) -> int:
    """Append vectors with one COPY … (FORMAT BINARY); ids must not have vectors yet in this space."""
    ids = np.asarray(ids, dtype=np.int64)
    vectors = validate_vectors(vectors, space, source)
    if len(ids) != len(vectors):
        raise InputError(f"{len(ids)} ids but {len(vectors)} vectors in {source}")
    if len(ids) == 0:
        return 0
    id_column = "training_id" if kind == "training" else "generated_id"
    statement = sql.SQL("COPY {} ({}, embedding) FROM STDIN WITH (FORMAT BINARY)").format(
        space.table(kind), sql.Identifier(id_column)
    )
    with conn.cursor() as cur, cur.copy(statement, writer=QueuedLibpqWriter(cur)) as copy:
        copy.write(COPY_HEADER)
        for start in range(0, len(ids), COPY_PIECE_ROWS):
            end = start + COPY_PIECE_ROWS
            copy.write(_binary_copy_rows(ids[start:end], vectors[start:end], space.storage))
        copy.write(COPY_TRAILER)
    return len(ids)


def maintenance_work_mem_for(space: EmbeddingSpace, n_rows: int) -> str:
    """Enough memory for the HNSW graph to build in RAM (pgvector is much faster then), capped at 4 GB."""
    bytes_per_row = space.dim * (4 if space.storage == "vector" else 2) + 8 * space.hnsw_m * 2 + 64
    mb = max(64, min(4096, math.ceil(n_rows * bytes_per_row * 1.3 / 2**20)))
    return f"{mb}MB"


def drop_index(conn: psycopg.Connection, space: EmbeddingSpace) -> None:
    conn.execute(render("drop_hnsw_index", space))


def build_index(conn: psycopg.Connection, space: EmbeddingSpace) -> None:
    """(Re)create the HNSW index; call after bulk loads (building once is far faster than inserting into it)."""
    n_rows = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(space.table("training"))).fetchone()[0]
    conn.execute(sql.SQL("SET LOCAL maintenance_work_mem = {}").format(sql.Literal(maintenance_work_mem_for(space, n_rows))))
    conn.execute(render("create_hnsw_index", space))
