"""`gmv embed import`: vectors computed elsewhere (CLIP, DINOv2, SSCD, …) into an embedding space.

Accepted files:
- .npz with arrays `vectors` (n x dim) and `sha256` (n strings) — or `paths` instead of `sha256`;
- .npy (n x dim) with --ids FILE: a text file, one sha256 or image path per line, in row order;
- .parquet with columns `sha256` (or `path`) and `vector` (list<float>, all of length dim).
A path names the image whose bytes it holds (it is hashed); relative paths resolve against the
folder of the file that lists them. The whole import is one transaction: a wrong dimension,
NaN/inf, an all-zero vector in a cosine space, a duplicate or an image that was never ingested
is a one-line error and nothing is stored. Images that already have a vector in the space keep it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import psycopg

from gmv_sql import spaces
from gmv_sql.db import locks
from gmv_sql.embed import store
from gmv_sql.embed.models import l2_normalise
from gmv_sql.embed.pipeline import BULK_REBUILD_MIN_ROWS
from gmv_sql.errors import ConflictError, InputError, NotFoundError
from gmv_sql.ingest.files import open_regular_file, sha256_of_handle
from gmv_sql.resources import query
from gmv_sql.spaces import EmbeddingSpace

_SHA = re.compile(r"^[0-9a-fA-F]{64}$")
IMPORTED_PREFIX = "imported:"


@dataclass
class ImportResult:
    space: EmbeddingSpace
    training: int = 0
    generated: int = 0
    already_present: int = 0
    index_rebuilt: bool = False

    def summary(self) -> str:
        text = (
            f"space {self.space.name!r} ({self.space.model}, {self.space.dim}-d): imported {self.training:,} training "
            f"+ {self.generated:,} generated vectors, {self.already_present:,} already present (kept)"
        )
        kind = "IVFFlat" if self.space.index_kind == "ivfflat" else "HNSW"
        return text + (f"; {kind} index rebuilt" if self.index_rebuilt else "")


def _read_lines(path: Path) -> list[str]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise InputError(f"cannot read --ids file {str(path)!r}: {exc.strerror}") from None
    return [line.strip() for line in lines if line.strip()]


def read_vectors(file: Path, ids_file: Path | None = None) -> tuple[np.ndarray, list[str], Path]:
    """(vectors, identifiers, folder that relative paths resolve against)."""
    if not file.is_file():
        raise InputError(f"vector file {str(file)!r} does not exist")
    suffix = file.suffix.lower()
    try:
        if suffix == ".npy":
            if ids_file is None:
                raise InputError(
                    f"{file.name} holds vectors only: name their images with --ids FILE (one sha256 or path per line)"
                )
            vectors = np.load(file, allow_pickle=False)
            return vectors, _read_lines(ids_file), ids_file.parent
        if suffix == ".npz":
            with np.load(file, allow_pickle=False) as archive:
                if "vectors" not in archive:
                    raise InputError(f"{file.name} has no array 'vectors' (has: {', '.join(archive.files)})")
                key = "sha256" if "sha256" in archive else "paths" if "paths" in archive else None
                if key is None:
                    raise InputError(
                        f"{file.name} has no array 'sha256' or 'paths' naming the images of its vectors"
                    )
                return archive["vectors"], [str(x).strip() for x in archive[key].tolist()], file.parent
        if suffix == ".parquet":
            return (*_read_parquet(file), file.parent)
    except InputError:
        raise
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot read {str(file)!r}: {str(exc).splitlines()[0][:200]}") from None
    raise InputError(
        f"{str(file)!r}: use a .npz (vectors + sha256), .npy with --ids, or .parquet (sha256 + vector)"
    )


def _read_parquet(file: Path) -> tuple[np.ndarray, list[str]]:
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    table = pq.read_table(file)
    names = table.column_names
    id_column = "sha256" if "sha256" in names else "path" if "path" in names else None
    vector_column = "vector" if "vector" in names else "embedding" if "embedding" in names else None
    if id_column is None or vector_column is None:
        raise InputError(f"{file.name} needs columns sha256 (or path) and vector; it has {', '.join(names)}")
    column = table.column(vector_column).combine_chunks()
    if not (
        pa.types.is_list(column.type)
        or pa.types.is_large_list(column.type)
        or pa.types.is_fixed_size_list(column.type)
    ):
        raise InputError(f"column {vector_column!r} of {file.name} is {column.type}, not a list of floats")
    if column.null_count:
        raise InputError(
            f"column {vector_column!r} of {file.name} has {column.null_count} empty (null) vectors"
        )
    lengths = np.asarray(pc.list_value_length(column))
    if len(lengths) and (lengths != lengths[0]).any():
        row = int(np.argmax(lengths != lengths[0]))
        raise InputError(
            f"vector {row} of {file.name} has {lengths[row]} dimensions, vector 0 has {lengths[0]}"
        )
    dim = int(lengths[0]) if len(lengths) else 0
    flat = np.asarray(pc.list_flatten(column).to_numpy(zero_copy_only=False), dtype=np.float64)
    vectors = flat.reshape(len(lengths), dim)
    ids = [str(x).strip() if x is not None else "" for x in table.column(id_column).to_pylist()]
    return vectors, ids


def _sha256_of(identifier: str, base: Path) -> str | None:
    if _SHA.match(identifier):
        return identifier.lower()
    path = Path(identifier).expanduser()
    if not path.is_absolute():
        path = base / path
    handle, _ = open_regular_file(str(path))  # never reads a pipe or a device
    if handle is None:
        return None
    with handle:
        try:
            return sha256_of_handle(handle)
        except OSError:
            return None


def _lookup(conn: psycopg.Connection, kind: str, shas: list[str]) -> dict[str, int]:
    return dict(conn.execute(query("embedding", f"{kind}_ids_by_sha256"), {"sha256": shas}).fetchall())


def import_vectors(
    conn: psycopg.Connection,
    file: Path,
    space_name: str,
    *,
    ids_file: Path | None = None,
    model: str | None = None,
    storage: str | None = None,
    distance: str = "cosine",
    hnsw_m: int = 16,
    hnsw_ef_construction: int = 64,
) -> ImportResult:
    """Import all vectors of file into the space in one transaction; conn must be autocommit."""
    vectors, identifiers, base = read_vectors(file, ids_file)
    vectors = np.asarray(vectors)
    if vectors.ndim != 2 or not np.issubdtype(vectors.dtype, np.number):
        raise InputError(
            f"{file.name} must hold a 2-d array of numbers (rows = images), got {vectors.dtype} {vectors.shape}"
        )
    if len(identifiers) != len(vectors):
        raise InputError(
            f"{len(vectors)} vectors but {len(identifiers)} image ids in {file.name}; they must pair up row by row"
        )
    shas: list[str] = []
    for row, identifier in enumerate(identifiers):
        sha = _sha256_of(identifier, base) if identifier else None
        if sha is None:
            raise InputError(
                f"row {row} of {file.name}: {identifier!r} is neither a sha256 nor a readable image file"
            )
        shas.append(sha)
    seen: dict[str, int] = {}
    for row, sha in enumerate(shas):
        if sha in seen:
            raise InputError(
                f"rows {seen[sha]} and {row} of {file.name} are the same image (sha256 {sha[:12]}…); keep one"
            )
        seen[sha] = row
    with conn.transaction():
        space = _space_for_import(
            conn, space_name, model, vectors.shape[1], storage, distance, hnsw_m, hnsw_ef_construction
        )
        # gmv embed's lock, for this transaction: one writer of the space's vectors at a time, and an
        # image deleted meanwhile waits for this import and then takes its vectors along (the cascades).
        with locks.space_lock(conn, locks.EMBED, space, transaction=True):
            result = _store(conn, space, file, vectors, shas, identifiers)
        if result.index_rebuilt:
            store.build_index(conn, space)
    return result


def _store(
    conn: psycopg.Connection,
    space: EmbeddingSpace,
    file: Path,
    vectors: np.ndarray,
    shas: list[str],
    identifiers: list[str],
) -> ImportResult:
    """Validate and COPY the vectors of ingested images not yet embedded (inside the import's transaction)."""
    vectors = store.validate_vectors(vectors, space, file.name)
    if space.distance == "cosine" and len(vectors):
        zero = np.flatnonzero(~np.any(vectors, axis=1))
        if len(zero):
            raise InputError(
                f"vector {int(zero[0])} of {file.name} is all zeros: cosine distance is undefined for it"
            )
        vectors = l2_normalise(vectors)
    training = _lookup(conn, "training", shas)
    generated = _lookup(conn, "generated", shas)
    unknown = [row for row, sha in enumerate(shas) if sha not in training and sha not in generated]
    if unknown:
        raise InputError(
            f"{len(unknown)} of {len(shas)} vectors in {file.name} belong to images never ingested "
            f"(first: row {unknown[0]}, {identifiers[unknown[0]]!r}); ingest them first or drop those rows"
        )
    result = ImportResult(space)
    for kind, found in (("training", training), ("generated", generated)):
        rows = [row for row, sha in enumerate(shas) if sha in found]
        if not rows:
            continue
        ids = np.asarray([found[shas[row]] for row in rows], dtype=np.int64)
        present = store.present(conn, space, kind, ids)
        keep = ~np.isin(ids, present)
        result.already_present += int((~keep).sum())
        bulk = kind == "training" and keep.sum() >= BULK_REBUILD_MIN_ROWS and not present.size
        if bulk and not store.has_training_vectors(conn, space):
            store.drop_index(conn, space)
            result.index_rebuilt = True
        stored = store.copy_vectors(
            conn, space, kind, ids[keep], vectors[np.asarray(rows)][keep], source=file.name
        )
        setattr(result, kind, stored)
    return result


def _space_for_import(
    conn, name, model, dim, storage, distance, hnsw_m, hnsw_ef_construction
) -> EmbeddingSpace:
    space = spaces.find_space(conn, name)
    if space is None:
        if not model:
            raise NotFoundError(
                f"no embedding space {name!r}; create it with --model NAME (the model that made the vectors)"
            ) from None
        return spaces.get_or_create_space(
            conn,
            name,
            model=IMPORTED_PREFIX + model,
            dim=dim,
            storage=storage,
            distance=distance,
            hnsw_m=hnsw_m,
            hnsw_ef_construction=hnsw_ef_construction,
        )
    if model and space.model not in (model, IMPORTED_PREFIX + model):
        raise ConflictError(
            f"embedding space {name!r} holds vectors of {space.model!r}, not {model!r}; never mix spaces: "
            "pick another --space name"
        )
    return space
