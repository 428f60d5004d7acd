"""Benchmark: the BI queries of issue 13 item 5 as the read-only role gmv_reader, p50 / p95 latency.

Synthetic world (no vectors needed): --training images of 100 owners, --generated images over six
months, k match rows each in one space, the four valuation schemes, refreshed credit views and one
revenue pool per month. Then, as gmv_reader (the BI role; over the server's socket, not TCP):

    report.owner_value        WHERE space = … AND scheme = …
    report.training_value     WHERE space = … AND scheme = … ORDER BY value DESC LIMIT 100
    report.attribution        WHERE generated_id = …      (a different id each time)
    report.royalty_statement  WHERE period = …

each run --repeats times; prints p50 / p95 and whether EXPLAIN shows a sequential scan of
gmv.training_image for the single-image lookup.

    python benchmarks/report.py --training 100000 --generated 10000      # a short run
    python benchmarks/report.py --training 1000000 --generated 100000    # the issue's size
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from common import fresh_database, private_server  # noqa: E402

QUERIES = {
    "owner_value (one space, scheme)": (
        "SELECT * FROM report.owner_value WHERE space = 'bench' AND scheme = 'rank_linear'",
        None,
    ),
    "training_value top 100": (
        "SELECT * FROM report.training_value WHERE space = 'bench' AND scheme = 'rank_linear' "
        "ORDER BY value DESC LIMIT 100",
        None,
    ),
    "attribution WHERE generated_id": ("SELECT * FROM report.attribution WHERE generated_id = %s", "id"),
    "royalty_statement WHERE period": (
        "SELECT * FROM report.royalty_statement WHERE period = '2026-03'",
        None,
    ),
}


def build_world(url: str, n_training: int, n_generated: int, k: int) -> None:
    from gmv_sql import spaces
    from gmv_sql.db.connect import connect
    from gmv_sql.value.refresh import refresh

    with connect(url, autocommit=True) as conn:
        conn.execute("INSERT INTO gmv.owner (name) SELECT 'owner-' || i FROM generate_series(1, 100) AS i")
        conn.execute("INSERT INTO gmv.license (name) VALUES ('paid')")
        conn.execute(
            "INSERT INTO gmv.training_image (sha256, uri, owner_id, license_id) "
            "SELECT lpad(to_hex(i), 64, '0'), 'bench://t/' || i, "
            "       (SELECT min(owner_id) FROM gmv.owner) + i %% 100, (SELECT min(license_id) FROM gmv.license) "
            "FROM generate_series(1, %s) AS i",
            (n_training,),
        )
        gen = conn.execute(
            "INSERT INTO gmv.generator (name) VALUES ('bench') RETURNING generator_id"
        ).fetchone()[0]
        run = conn.execute(
            "INSERT INTO gmv.generation_run (generator_id, name) VALUES (%s, 'bench') RETURNING run_id",
            (gen,),
        ).fetchone()[0]
        conn.execute(
            "INSERT INTO gmv.generated_image (sha256, uri, run_id, created_at) "
            "SELECT lpad(to_hex(i), 64, '0'), 'bench://g/' || i, %s, "
            "       timestamptz '2026-01-15' + (i %% 6) * interval '1 month' "
            "FROM generate_series(1, %s) AS i",
            (run, n_generated),
        )
        space = spaces.get_or_create_space(conn, "bench", model="bench", dim=8)
        first_t = conn.execute("SELECT min(training_id) FROM gmv.training_image").fetchone()[0]
        conn.execute(
            "INSERT INTO gmv.match (space_id, generated_id, rank, training_id, distance, k) "
            "SELECT %(space)s, g.generated_id, r, %(first)s + ((g.generated_id * 7919 + r * 104729) %% %(n)s), "
            "       0.1 * r + random() * 0.05, %(k)s "
            "FROM gmv.generated_image AS g CROSS JOIN generate_series(1, %(k)s) AS r",
            {"space": space.space_id, "first": first_t, "n": n_training, "k": k},
        )
        spaces.set_match_k(conn, space, k)
        conn.execute(
            "INSERT INTO gmv.revenue_pool (period, amount, currency, space_id, scheme_id) "
            "SELECT date '2026-01-01' + m * interval '1 month', 1000, 'EUR', %s, scheme_id "
            "FROM generate_series(0, 5) AS m CROSS JOIN gmv.valuation_scheme",
            (space.space_id,),
        )
        conn.execute("VACUUM ANALYZE")
        refresh(conn)
        conn.execute("VACUUM ANALYZE")


def seq_scans_of_training(plan: dict) -> int:
    nodes = [plan]
    found = 0
    while nodes:
        node = nodes.pop()
        if node.get("Node Type") == "Seq Scan" and node.get("Relation Name") == "training_image":
            found += 1
        nodes += node.get("Plans", [])
    return found


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--training", type=int, default=100_000)
    p.add_argument("--generated", type=int, default=10_000)
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--repeats", type=int, default=20)
    p.add_argument("--shared-buffers", default="1GB")
    p.add_argument("--workdir", type=Path, default=None)
    p.add_argument(
        "--database-url", help="admin URL of a PostgreSQL with pgvector (default: an embedded server)"
    )
    p.add_argument("--json", type=Path)
    args = p.parse_args()
    from gmv_sql.db.commands import with_user
    from gmv_sql.db.connect import connect

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="gmv_report_bench_"))
    workdir.mkdir(parents=True, exist_ok=True)
    if args.database_url:
        admin = args.database_url
    else:
        _, admin = private_server(workdir / "pgdata", args.shared_buffers, cleanup_mode="stop")
    url = fresh_database(admin, f"bench_report_{args.training}")
    t0 = time.perf_counter()
    build_world(url, args.training, args.generated, args.k)
    print(f"# world built in {time.perf_counter() - t0:.1f}s", file=sys.stderr, flush=True)
    reader = with_user(url, "gmv_reader")
    rows = []
    with connect(url, autocommit=True) as admin_conn:
        ids = [
            r[0]
            for r in admin_conn.execute(
                "SELECT generated_id FROM gmv.generated_image ORDER BY md5(generated_id::text) LIMIT %s",
                (args.repeats + 1,),
            )
        ]
    with connect(reader, autocommit=True) as conn:
        for name, (statement, param) in QUERIES.items():
            times = []
            n_rows = 0
            for i in range(args.repeats + 1):  # the first run warms caches and is not counted
                params = (ids[i],) if param else None
                t = time.perf_counter()
                n_rows = len(conn.execute(statement, params).fetchall())
                if i:
                    times.append(time.perf_counter() - t)
            plan = conn.execute(
                "EXPLAIN (FORMAT JSON) " + statement, (ids[0],) if param else None
            ).fetchone()[0]
            if isinstance(plan, str):
                plan = json.loads(plan)
            p95 = statistics.quantiles(times, n=20)[-1] if len(times) >= 2 else times[0]
            rows.append(
                {
                    "query": name,
                    "rows": n_rows,
                    "p50_ms": 1000 * statistics.median(times),
                    "p95_ms": 1000 * p95,
                    "training_seq_scans": seq_scans_of_training(plan[0]["Plan"]),
                }
            )
    print(
        f"\n{args.training:,} training, {args.generated:,} generated, k={args.k}, 4 schemes, as gmv_reader, "
        f"{args.repeats} runs each; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"
    )
    print(f"{'query':34s} {'rows':>7s} {'p50 ms':>9s} {'p95 ms':>9s}  seq scan of training_image")
    for r in rows:
        print(
            f"{r['query']:34s} {r['rows']:7,d} {r['p50_ms']:9.1f} {r['p95_ms']:9.1f}  "
            f"{'yes' if r['training_seq_scans'] else 'no'}"
        )
    if args.json:
        args.json.write_text(
            json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "rows": rows}, indent=2)
        )


if __name__ == "__main__":
    main()
