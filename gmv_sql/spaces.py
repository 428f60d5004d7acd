"""Embedding spaces: the space record, its per-space tables and SQL, and finding a space by name.

A space is one model + weights + preprocessing. Its vectors live in two tables named by
table_name(): gmv.training_embedding_<space_id> and gmv.generated_embedding_<space_id> (typed
vector(dim) or halfvec(dim)); only the training table gets an index: HNSW or IVFFlat (index_kind),
on the stored column or, with index_precision 'half', on the expression (embedding::halfvec(dim)) so
the index is half the size while the table keeps full precision. Queries that must use the index
order by the same expression (index_key()). The same name rule is gmv.embedding_table(kind, space_id)
in SQL (sql/derived/05_cascades.sql).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal

import psycopg
from psycopg import sql
from psycopg.rows import class_row

from gmv_sql.db import locks
from gmv_sql.errors import ConflictError, InputError, NotFoundError
from gmv_sql.resources import query

Kind = Literal["training", "generated"]
KINDS: tuple[Kind, ...] = ("training", "generated")

HNSW_MAX_DIM = {"vector": 2000, "halfvec": 4000}  # IVFFlat has the same limits
INDEX_KINDS = ("hnsw", "ivfflat")
INDEX_PRECISIONS = ("full", "half")
DISTANCE_OPERATORS = {"cosine": "<=>", "l2": "<->", "inner_product": "<#>"}
OPCLASS_SUFFIX = {"cosine": "cosine_ops", "l2": "l2_ops", "inner_product": "ip_ops"}
# What the stored distance (pgvector's operator) is, in words: <#> gives the negative inner product.
DISTANCE_NAMES = {
    "cosine": "cosine distance",
    "l2": "Euclidean (L2) distance",
    "inner_product": "negative inner product",
}


def table_name(kind: Kind, space_id: int) -> str:
    """The vector table of a space in schema gmv (without the schema)."""
    if kind not in KINDS:
        raise ValueError(f"unknown embedding kind {kind!r}")
    return f"{kind}_embedding_{int(space_id)}"


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
    near_copy_distance: float | None = None  # report.near_copy threshold (gmv_sql.quality.near_copy)
    near_copy_source: str | None = None  # 'calibrated' or 'set'
    index_kind: str = "hnsw"
    index_precision: str = "full"
    ivfflat_lists: int | None = None
    index_rows: int | None = None  # training vectors the index was built on (None: with the space)
    index_built_at: Any = None

    def table(self, kind: Kind) -> sql.Composed:
        return sql.SQL("gmv.{}").format(sql.Identifier(table_name(kind, self.space_id)))

    @property
    def index_name(self) -> str:
        return index_name(self.space_id, self.index_kind)

    @property
    def index_casts(self) -> bool:
        """True when the index is on embedding::halfvec(dim) of a full-precision column."""
        return self.index_precision == "half" and self.storage == "vector"

    @property
    def index_storage(self) -> str:
        """The type the index holds: halfvec for a half-precision index, else the column's."""
        return "halfvec" if self.index_casts else self.storage

    @property
    def opclass(self) -> str:
        return f"{self.index_storage}_{OPCLASS_SUFFIX[self.distance]}"

    def index_key(self, alias: str | None = None) -> sql.Composable:
        """The indexed expression (of alias.embedding): what ORDER BY must use for the index to serve it."""
        column = sql.Identifier(alias, "embedding") if alias else sql.Identifier("embedding")
        if not self.index_casts:
            return column
        return sql.SQL("({}::halfvec({}))").format(column, sql.Literal(int(self.dim)))

    def order_keys(self, *, exact: bool = False) -> dict[str, sql.Composable]:
        """{e_key, g_key} of a top-k block: the indexed expression of training row e and generated row g
        (so the index serves the ORDER BY), or with exact the stored vectors."""
        if exact:
            return {"e_key": sql.SQL("e.embedding"), "g_key": sql.SQL("g.embedding")}
        return {"e_key": self.index_key("e"), "g_key": self.index_key("g")}

    def describe_index(self) -> str:
        """The index in words, e.g. 'ivfflat halfvec lists=200 (built on 200,000 rows)'."""
        if self.index_kind == "ivfflat":
            text = f"ivfflat {self.index_storage} lists={self.ivfflat_lists}"
        else:
            text = f"hnsw {self.index_storage} m={self.hnsw_m} ef_construction={self.hnsw_ef_construction}"
        if self.index_rows is not None:
            text += f" (built on {self.index_rows:,} rows)"
        return text

    @property
    def operator(self) -> str:
        return DISTANCE_OPERATORS[self.distance]

    def sql_params(self) -> dict[str, sql.Composable]:
        """Fill-ins of the per-space templates in sql/queries/ (fixed identifiers and validated integers)."""
        return {
            "training": self.table("training"),
            "generated": self.table("generated"),
            "op": sql.SQL(self.operator),
            "storage": sql.SQL(self.storage),
            "dim": sql.Literal(int(self.dim)),
            "opclass": sql.SQL(self.opclass),
            "index": sql.Identifier(self.index_name),
            "index_key": self.index_key(),
            "lists": sql.Literal(int(self.ivfflat_lists or 1)),
            "m": sql.Literal(int(self.hnsw_m)),
            "ef_construction": sql.Literal(int(self.hnsw_ef_construction)),
        }


def index_name(space_id: int, kind: str = "hnsw") -> str:
    """The name (in schema gmv) of a space's training index of that kind."""
    if kind not in INDEX_KINDS:
        raise ValueError(f"unknown index kind {kind!r}")
    return f"{table_name('training', space_id)}_{kind}"


def render(filename: str, name: str, space: EmbeddingSpace, **fragments: sql.Composable) -> sql.Composed:
    """The named block of sql/queries/<filename>.sql with the space's tables (and any fragments) filled in."""
    return sql.SQL(query(filename, name)).format(**space.sql_params(), **fragments)


def list_spaces(conn: psycopg.Connection) -> list[EmbeddingSpace]:
    with conn.cursor(row_factory=class_row(EmbeddingSpace)) as cur:
        return cur.execute(query("spaces", "list")).fetchall()


def _by_name(conn: psycopg.Connection, name: str) -> EmbeddingSpace | None:
    with conn.cursor(row_factory=class_row(EmbeddingSpace)) as cur:
        return cur.execute(query("spaces", "by_name"), {"name": name}).fetchone()


def get_space(conn: psycopg.Connection, name: str | None = None) -> EmbeddingSpace:
    """The space called name; without a name, the only space there is. Otherwise a one-line NotFoundError."""
    if name is not None:
        space = _by_name(conn, name)
        if space is not None:
            return space
    known = list_spaces(conn)
    if name is None:
        if len(known) == 1:
            return known[0]
        if not known:
            raise NotFoundError(
                "no embedding space yet; run `gmv embed --space NAME` and `gmv match --space NAME` first"
            )
        raise NotFoundError(
            f"several embedding spaces ({', '.join(s.name for s in known)}); pick one with --space"
        )
    raise NotFoundError(
        f"no embedding space {name!r} (known: {', '.join(s.name for s in known) or 'none yet'}); "
        "pick one with --space, or create one with `gmv embed --space NAME`"
    )


def find_space(conn: psycopg.Connection, name: str) -> EmbeddingSpace | None:
    """The space called name, or None."""
    return _by_name(conn, name)


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
    index_precision: str = "half",
) -> EmbeddingSpace:
    """Return the space, creating it and its tables; refuse if it exists with another model/dim/weights.

    A new space gets an HNSW index on halfvec (index_precision 'half'; the table keeps the storage's
    precision); `gmv index build` changes the kind, precision and parameters later.

    Call inside a transaction: two processes creating the same space queue on a transaction lock,
    and the second then finds the first one's space instead of failing on the unique name.
    """
    preprocessing = preprocessing or {}
    locks.wait_in_transaction(conn, locks.SPACES)
    space = _by_name(conn, name)
    if space is not None:
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
    if index_precision not in INDEX_PRECISIONS:
        raise InputError(f"unknown index precision {index_precision!r}; use full or half")
    storage = choose_storage(dim, storage)
    if storage == "halfvec":
        index_precision = "half"  # what a halfvec column's index holds anyway
    values = {
        "name": name,
        "model": model,
        "weights_sha256": weights_sha256,
        "preprocessing": json.dumps(preprocessing),
        "dim": dim,
        "storage": storage,
        "distance": distance,
        "hnsw_m": hnsw_m,
        "hnsw_ef_construction": hnsw_ef_construction,
        "index_precision": index_precision,
    }
    try:
        with conn.cursor(row_factory=class_row(EmbeddingSpace)) as cur:
            space = cur.execute(query("spaces", "create"), values).fetchone()
    except psycopg.errors.CheckViolation as exc:
        raise InputError(
            f"invalid embedding space {name!r}: names are lowercase letters, digits, '.', '_', '-' (max 63); "
            f"hnsw m 2..100, ef_construction 4..1000 ({exc.diag.constraint_name})"
        ) from exc
    for block in ("create_training_table", "create_generated_table", "create_hnsw_index"):
        conn.execute(render("embedding", block, space))
    return space


def set_match_k(conn: psycopg.Connection, space: EmbeddingSpace, k: int) -> None:
    conn.execute(query("spaces", "set_match_k"), {"space_id": space.space_id, "k": k})


def set_index(
    conn: psycopg.Connection,
    space: EmbeddingSpace,
    *,
    index_kind: str,
    index_precision: str,
    hnsw_m: int,
    hnsw_ef_construction: int,
    ivfflat_lists: int | None,
    index_rows: int,
) -> EmbeddingSpace:
    """Record the space's index as just built; returns the updated space."""
    with conn.cursor(row_factory=class_row(EmbeddingSpace)) as cur:
        return cur.execute(
            query("spaces", "set_index"),
            {
                "space_id": space.space_id,
                "index_kind": index_kind,
                "index_precision": index_precision,
                "hnsw_m": hnsw_m,
                "hnsw_ef_construction": hnsw_ef_construction,
                "ivfflat_lists": ivfflat_lists,
                "index_rows": index_rows,
            },
        ).fetchone()
