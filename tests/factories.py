"""Synthetic data written straight into a test database: owners, licences, images, vectors.

Tests of match / value / report / audit need rows and vectors without running ingest or a model.
`seed()` builds a whole small world in one call; the smaller helpers add to it.

    from tests.factories import seed
    world = seed(conn, n_training=200, n_generated=50, dim=16, space="test", owners=3, seed=0)
    world["space"]            # gmv_sql.spaces.EmbeddingSpace
    world["training_ids"]     # np.ndarray of training_id, row i <-> world["training_vectors"][i]

Vectors are clustered (so nearest neighbours are meaningful and ties are rare). Identities
(sha256) are derived from (space, seed, kind, index), so two seeds or two spaces in one
database never collide.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Sequence
from typing import Any

import numpy as np
import psycopg

from gmv_sql import spaces
from gmv_sql.embed import store

# A fixed month so royalty tests can ask for period 2026-01 without computing it.
DEFAULT_CREATED_AT = dt.datetime(2026, 1, 15, 12, 0, tzinfo=dt.timezone.utc)
DEFAULT_PERIOD = "2026-01"


def _sha(*parts: object) -> str:
    return hashlib.sha256(":".join(map(str, parts)).encode()).hexdigest()


def make_owner(conn: psycopg.Connection, name: str) -> int:
    """The owner's id, created if missing."""
    row = conn.execute(
        "INSERT INTO gmv.owner (name) VALUES (%s) ON CONFLICT (name) DO UPDATE SET name = EXCLUDED.name "
        "RETURNING owner_id",
        (name,),
    ).fetchone()
    return int(row[0])


def make_license(conn: psycopg.Connection, name: str, *, royalty_bearing: bool = True, excluded: bool = False) -> int:
    """The licence's id, created (or updated to these flags) as needed."""
    row = conn.execute(
        "INSERT INTO gmv.license (name, royalty_bearing, excluded) VALUES (%s, %s, %s) "
        "ON CONFLICT (name) DO UPDATE SET royalty_bearing = EXCLUDED.royalty_bearing, excluded = EXCLUDED.excluded "
        "RETURNING license_id",
        (name, royalty_bearing, excluded),
    ).fetchone()
    return int(row[0])


def make_run(conn: psycopg.Connection, generator: str = "test-generator", run: str = "run-1") -> int:
    gen_id = conn.execute(
        "INSERT INTO gmv.generator (name) VALUES (%s) ON CONFLICT (name) DO UPDATE SET name = EXCLUDED.name "
        "RETURNING generator_id",
        (generator,),
    ).fetchone()[0]
    row = conn.execute(
        "INSERT INTO gmv.generation_run (generator_id, name) VALUES (%s, %s) "
        "ON CONFLICT (generator_id, name) DO UPDATE SET name = EXCLUDED.name RETURNING run_id",
        (gen_id, run),
    ).fetchone()
    return int(row[0])


def add_training_images(
    conn: psycopg.Connection,
    owner_ids: Sequence[int],
    license_ids: Sequence[int],
    *,
    tag: str = "t",
    opted_out: Sequence[bool] | None = None,
) -> np.ndarray:
    """Insert len(owner_ids) training images (owner_ids[i], license_ids[i]); their ids in the same order."""
    n = len(owner_ids)
    if len(license_ids) != n:
        raise ValueError("owner_ids and license_ids must have the same length")
    shas = [_sha("training", tag, i) for i in range(n)]
    uris = [f"synthetic://training/{tag}/{i}.png" for i in range(n)]
    flags = list(opted_out) if opted_out is not None else [False] * n
    rows = conn.execute(
        "INSERT INTO gmv.training_image (sha256, uri, owner_id, license_id, opted_out) "
        "SELECT * FROM unnest(%s::text[], %s::text[], %s::bigint[], %s::bigint[], %s::boolean[]) "
        "RETURNING sha256, training_id",
        (shas, uris, [int(x) for x in owner_ids], [int(x) for x in license_ids], flags),
    ).fetchall()
    by_sha = dict(rows)
    return np.array([by_sha[s] for s in shas], dtype=np.int64)


def add_generated_images(
    conn: psycopg.Connection,
    n: int,
    run_id: int,
    *,
    tag: str = "g",
    quality: Sequence[float] | None = None,
    created_at: Sequence[dt.datetime] | dt.datetime | None = None,
) -> np.ndarray:
    """Insert n generated images of one run; their ids in order."""
    shas = [_sha("generated", tag, i) for i in range(n)]
    uris = [f"synthetic://generated/{tag}/{i}.png" for i in range(n)]
    qualities = [float(q) for q in quality] if quality is not None else [1.0] * n
    if created_at is None or isinstance(created_at, dt.datetime):
        created = [created_at or DEFAULT_CREATED_AT] * n
    else:
        created = list(created_at)
    rows = conn.execute(
        "INSERT INTO gmv.generated_image (sha256, uri, run_id, quality, created_at) "
        "SELECT s, u, %s, q, c FROM unnest(%s::text[], %s::text[], %s::float8[], %s::timestamptz[]) AS x(s, u, q, c) "
        "RETURNING sha256, generated_id",
        (run_id, shas, uris, qualities, created),
    ).fetchall()
    by_sha = dict(rows)
    return np.array([by_sha[s] for s in shas], dtype=np.int64)


def clustered_vectors(
    rng: np.random.Generator, n_training: int, n_generated: int, dim: int, *, n_clusters: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Training vectors around cluster centres; generated vectors near randomly chosen training vectors."""
    n_clusters = n_clusters or max(2, min(50, n_training // 10 or 1))
    centres = rng.normal(size=(n_clusters, dim))
    labels = rng.integers(0, n_clusters, size=n_training)
    training = centres[labels] + 0.35 * rng.normal(size=(n_training, dim))
    if n_training:
        parents = rng.integers(0, n_training, size=n_generated)
        generated = training[parents] + 0.25 * rng.normal(size=(n_generated, dim))
    else:
        generated = rng.normal(size=(n_generated, dim))
    return training.astype(np.float32), generated.astype(np.float32)


def seed(
    conn: psycopg.Connection,
    n_training: int = 200,
    n_generated: int = 50,
    dim: int = 16,
    space: str = "test",
    owners: int = 3,
    seed: int = 0,
    *,
    licenses: Sequence[tuple[str, bool, bool]] = (("paid", True, False),),
    quality: str | Sequence[float] | None = None,
    created_at: Sequence[dt.datetime] | dt.datetime | None = None,
    opted_out_fraction: float = 0.0,
    distance: str = "cosine",
    storage: str | None = None,
    n_clusters: int | None = None,
    training_vectors: np.ndarray | None = None,
    generated_vectors: np.ndarray | None = None,
    generator: str = "test-generator",
    run: str = "run-1",
) -> dict[str, Any]:
    """Seed owners, licences, training/generated images and their vectors in one embedding space.

    licenses: (name, royalty_bearing, excluded) tuples; training image i gets owner i % owners and
    licence i % len(licenses). quality: None (all 1), "random" (uniform 0.2..3) or explicit values.
    created_at: one timestamp or one per generated image (default DEFAULT_CREATED_AT, period 2026-01).
    Works on autocommit and transactional connections (the caller commits the latter).

    Returns a dict: space (EmbeddingSpace), owner_ids, owner_names, license_ids, license_names,
    run_id, training_ids, generated_ids, training_vectors, generated_vectors, quality (np arrays),
    training_owner, training_license (per-training-image owner/licence ids), opted_out (bool array).
    """
    rng = np.random.default_rng(seed)
    tag = f"{space}:{seed}"
    owner_names = [f"owner-{i}" for i in range(owners)]
    owner_ids = [make_owner(conn, name) for name in owner_names]
    license_names = [name for name, _, _ in licenses]
    license_ids = [make_license(conn, name, royalty_bearing=rb, excluded=ex) for name, rb, ex in licenses]
    run_id = make_run(conn, generator, run)

    if training_vectors is None or generated_vectors is None:
        tv, gv = clustered_vectors(rng, n_training, n_generated, dim, n_clusters=n_clusters)
        training_vectors = tv if training_vectors is None else training_vectors
        generated_vectors = gv if generated_vectors is None else generated_vectors
    training_vectors = np.asarray(training_vectors, dtype=np.float32)
    generated_vectors = np.asarray(generated_vectors, dtype=np.float32)
    n_training, dim = training_vectors.shape
    n_generated = len(generated_vectors)

    training_owner = np.array([owner_ids[i % owners] for i in range(n_training)], dtype=np.int64)
    training_license = np.array([license_ids[i % len(license_ids)] for i in range(n_training)], dtype=np.int64)
    opted_out = rng.random(n_training) < opted_out_fraction if opted_out_fraction else np.zeros(n_training, bool)
    training_ids = add_training_images(conn, training_owner, training_license, tag=tag, opted_out=opted_out.tolist())

    if isinstance(quality, str):
        if quality != "random":
            raise ValueError(f"quality must be None, 'random' or a sequence, not {quality!r}")
        qualities = rng.uniform(0.2, 3.0, size=n_generated)
    elif quality is None:
        qualities = np.ones(n_generated)
    else:
        qualities = np.asarray(quality, dtype=float)
    generated_ids = add_generated_images(conn, n_generated, run_id, tag=tag, quality=qualities, created_at=created_at)

    emb_space = spaces.get_or_create_space(conn, space, model="synthetic", dim=dim, distance=distance, storage=storage)
    store.copy_vectors(conn, emb_space, "training", training_ids, training_vectors, source="factory")
    store.copy_vectors(conn, emb_space, "generated", generated_ids, generated_vectors, source="factory")
    return {
        "space": emb_space,
        "owner_ids": owner_ids,
        "owner_names": owner_names,
        "license_ids": license_ids,
        "license_names": license_names,
        "run_id": run_id,
        "training_ids": training_ids,
        "generated_ids": generated_ids,
        "training_vectors": training_vectors,
        "generated_vectors": generated_vectors,
        "quality": qualities,
        "training_owner": training_owner,
        "training_license": training_license,
        "opted_out": opted_out,
    }


def numpy_knn(
    training: np.ndarray, generated: np.ndarray, k: int, *, distance: str = "cosine", eligible: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Exact k nearest neighbours (indices into training, distances), pgvector's distance definitions."""
    t = training.astype(np.float64)
    g = generated.astype(np.float64)
    if distance == "cosine":
        tn = t / np.linalg.norm(t, axis=1, keepdims=True)
        gn = g / np.linalg.norm(g, axis=1, keepdims=True)
        d = 1.0 - gn @ tn.T
    elif distance == "l2":
        d = np.sqrt(np.maximum(((g[:, None, :] - t[None, :, :]) ** 2).sum(-1), 0))
    elif distance == "inner_product":
        d = -(g @ t.T)
    else:
        raise ValueError(distance)
    if eligible is not None:
        d = np.where(eligible[None, :], d, np.inf)
    order = np.argsort(d, axis=1, kind="stable")[:, :k]
    return order, np.take_along_axis(d, order, axis=1)
