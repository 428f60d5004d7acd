"""Benchmark: the BI queries of issue 13 item 5 as the read-only role gmv_reader, p50 / p95 latency.

Synthetic world (no vectors needed): --training images of 100 owners, --generated images over six
months, k match rows each in one space, the valuation schemes, refreshed credit and one revenue pool
per month. Then, as gmv_reader (the BI role) over TCP with its SCRAM password, as a BI tool connects
(the embedded server's 127.0.0.1 listener, started with GMV_HOME in the work folder):

    report.owner_value        WHERE space = … AND scheme = …
    report.training_value     WHERE space = … AND scheme = … ORDER BY value DESC LIMIT 100
    report.attribution        WHERE generated_id = …      (a different id each time)
    report.royalty_statement  WHERE period = …

each run --repeats times; prints p50 / p95 and whether EXPLAIN shows a sequential scan of
gmv.training_image.

Then the refresh, side by side (unless --no-refresh): the plain aggregate the credit stores (counted,
as benchmarks/match.py timed it, and with its values summed), the materialized views of migration
0010 refreshed CONCURRENTLY (re-created here as gmv_bench_old_*), and `gmv value refresh`
(gmv.refresh_credit()): the first one, with everything marked, and after --changed of the match rows
(all in one month) changed.

    python benchmarks/report.py --training 100000 --generated 10000      # a short run
    nice python benchmarks/report.py --training 1000000 --generated 100000    # the issue's size
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

from common import fresh_database  # noqa: E402

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
    "training_value WHERE training_id": ("SELECT * FROM report.training_value WHERE training_id = %s", "tid"),
    "attribution WHERE generated_id": ("SELECT * FROM report.attribution WHERE generated_id = %s", "id"),
    "royalty_statement WHERE period": (
        "SELECT * FROM report.royalty_statement WHERE period = '2026-03'",
        None,
    ),
}


def build_world(url: str, n_training: int, n_generated: int, k: int) -> float:
    """The synthetic world; returns the seconds of its first `gmv value refresh` (empty credit)."""
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
        started = time.perf_counter()
        refresh(conn)  # the first: every credit row written
        first_refresh = time.perf_counter() - started
        conn.execute("VACUUM ANALYZE")
    return first_refresh


def seq_scans_of_training(plan: dict) -> int:
    nodes = [plan]
    found = 0
    while nodes:
        node = nodes.pop()
        if node.get("Node Type") == "Seq Scan" and node.get("Relation Name") == "training_image":
            found += 1
        nodes += node.get("Plans", [])
    return found


def tcp_server(workdir: Path, shared_buffers: str) -> tuple[str, str, int]:
    """gmv's embedded server with GMV_HOME in workdir (so its TCP listener on 127.0.0.1 and SCRAM
    pg_hba.conf, as `gmv db serve` gives BI tools); returns (admin URL over the socket, host, port)."""
    import psycopg

    from gmv_sql.db import embedded

    os.environ["GMV_HOME"] = str(workdir / "gmv_home")
    embedded.ensure_running()
    admin = embedded._server_url(embedded._postmaster_info(embedded.pgdata_dir()), "postgres")
    with psycopg.connect(admin, autocommit=True) as conn:
        current = conn.execute("SHOW shared_buffers").fetchone()[0]
        if conn.execute(
            "SELECT pg_size_bytes(%s) <> pg_size_bytes(current_setting('shared_buffers'))", (shared_buffers,)
        ).fetchone()[0]:
            conn.execute(f"ALTER SYSTEM SET shared_buffers = '{shared_buffers}'")
            print(f"# shared_buffers {current} -> {shared_buffers} (restart)", file=sys.stderr)
            restart = True
        else:
            restart = False
    if restart:
        embedded.restart()
        admin = embedded._server_url(embedded._postmaster_info(embedded.pgdata_dir()), "postgres")
    host, port = embedded.tcp_address()
    return admin, host, port


def reader_tcp_url(url: str, host: str, port: int, dbname: str) -> str:
    """gmv_reader over TCP with a password (set here as `gmv db up` does)."""
    from psycopg.conninfo import make_conninfo

    from gmv_sql.db import access
    from gmv_sql.db.connect import connect

    with connect(url, autocommit=True) as conn:
        access.ensure_reader_password(conn, url, True)
    password, _ = access.reader_password(url, True)
    return make_conninfo(host=host, port=port, dbname=dbname, user="gmv_reader", password=password)


# The credit of migration 0010 (materialized views refreshed CONCURRENTLY), for the comparison.
OLD_VIEWS = {
    "gmv_bench_old_credit": (
        "SELECT space_id, scheme_id, training_id, sum(quality * weight) AS value, count(*) AS n_matches "
        "FROM gmv.match_weight GROUP BY space_id, scheme_id, training_id",
        "space_id, scheme_id, training_id",
    ),
    "gmv_bench_old_credit_monthly": (
        "SELECT space_id, scheme_id, period, training_id, sum(quality * weight) AS value, count(*) AS n_matches "
        "FROM gmv.match_weight GROUP BY space_id, scheme_id, period, training_id",
        "space_id, scheme_id, period, training_id",
    ),
}


def refresh_comparison(url: str, changed: float, first_refresh: float) -> list[tuple[str, float]]:
    """Seconds of each way to bring credit up to date over the world's matches (one run each).

    Two baselines: the plain aggregate as benchmarks/match.py timed it (count(*) over the grouped
    rows: PostgreSQL then drops the unused sums, and with them the weight windows), and the same
    aggregate with its values summed (what the credit actually needs computed)."""
    from gmv_sql.db.connect import connect
    from gmv_sql.value.refresh import refresh

    out = []

    def timed(label: str, statement: str) -> None:
        t = time.perf_counter()
        conn.execute(statement)
        out.append((label, time.perf_counter() - t))
        print(f"# {label}: {out[-1][1]:.2f}s", file=sys.stderr, flush=True)

    with connect(url, autocommit=True) as conn:
        conn.execute("SET jit = off")  # as the refresh runs
        for name, (select, _) in OLD_VIEWS.items():
            what = name.removeprefix("gmv_bench_old_").replace("_", " ")
            timed(
                f"plain aggregate ({what}), count(*) of the groups (as match.py)",
                f"SELECT count(*) FROM ({select}) AS a",
            )
            timed(
                f"plain aggregate ({what}), values summed",
                f"SELECT count(*), sum(value), sum(n_matches) FROM ({select}) AS a",
            )
        out.append(("gmv value refresh, the first (empty credit tables: every row written)", first_refresh))
        for name, (select, key) in OLD_VIEWS.items():
            conn.execute(f"DROP MATERIALIZED VIEW IF EXISTS gmv.{name}")
            conn.execute(
                f"CREATE MATERIALIZED VIEW gmv.{name} WITH (vacuum_truncate = false) AS {select} WITH NO DATA"
            )
            conn.execute(f"CREATE UNIQUE INDEX ON gmv.{name} ({key})")
            conn.execute(f"REFRESH MATERIALIZED VIEW gmv.{name}")
        conn.execute("VACUUM ANALYZE")

        def gmv_refresh(label: str) -> None:
            t = time.perf_counter()
            result = refresh(conn)
            out.append((f"{label}: {result.describe().split(':')[0]}", time.perf_counter() - t))
            print(f"# {out[-1][0]}: {out[-1][1]:.2f}s", file=sys.stderr, flush=True)

        conn.execute("INSERT INTO gmv.credit_dirty (kind) VALUES ('credit'), ('images')")
        gmv_refresh("gmv value refresh, everything marked (nothing changed)")
        # --changed of all match rows, all in one month: other distances (so other softmax weights).
        n = conn.execute(
            "WITH month AS (SELECT generated_id FROM gmv.generated_image "
            "               WHERE gmv.credit_period(created_at) = '2026-03-01'), "
            "picked AS (SELECT m.space_id, m.generated_id, m.rank FROM gmv.match AS m JOIN month USING (generated_id) "
            "           ORDER BY md5(m.generated_id::text || m.rank) "
            "           LIMIT (SELECT round(%s * count(*)) FROM gmv.match)) "
            "UPDATE gmv.match AS m SET distance = m.distance * 1.01 FROM picked AS p "
            "WHERE (m.space_id, m.generated_id, m.rank) = (p.space_id, p.generated_id, p.rank)",
            (changed,),
        ).rowcount
        print(f"# changed {n:,} match rows in 2026-03", file=sys.stderr)
        for name in OLD_VIEWS:
            timed(
                f"REFRESH MATERIALIZED VIEW CONCURRENTLY ({name}, as 0010) after the change",
                f"REFRESH MATERIALIZED VIEW CONCURRENTLY gmv.{name}",
            )
        gmv_refresh(f"gmv value refresh after {n:,} matches changed in one month")
        for name in OLD_VIEWS:
            conn.execute(f"DROP MATERIALIZED VIEW gmv.{name}")
    return out


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
    p.add_argument(
        "--reader-url", help="with --database-url: how gmv_reader connects (default: as the admin URL)"
    )
    p.add_argument(
        "--changed", type=float, default=0.01, help="fraction of match rows changed for the refresh"
    )
    p.add_argument("--no-refresh", action="store_true", help="skip the refresh comparison")
    p.add_argument("--json", type=Path)
    args = p.parse_args()
    from gmv_sql.db.commands import with_user

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="gmv_report_bench_"))
    workdir.mkdir(parents=True, exist_ok=True)
    dbname = f"bench_report_{args.training}"
    server = None
    if args.database_url:
        url = fresh_database(args.database_url, dbname)
        reader = args.reader_url or with_user(url, "gmv_reader")
        how = "as given"
    else:
        from gmv_sql.db import embedded

        admin, host, port = tcp_server(workdir, args.shared_buffers)
        server = embedded
        url = fresh_database(admin, dbname)
        reader = reader_tcp_url(url, host, port, dbname)
        how = f"TCP {host}:{port}, SCRAM password"
    try:
        t0 = time.perf_counter()
        first_refresh = build_world(url, args.training, args.generated, args.k)
        print(f"# world built in {time.perf_counter() - t0:.1f}s", file=sys.stderr, flush=True)
        rows = bi_queries(url, reader, args.repeats)
        load_bi = os.getloadavg()
        refresh_rows = [] if args.no_refresh else refresh_comparison(url, args.changed, first_refresh)
        load_refresh = os.getloadavg()
    finally:
        if server is not None:
            server.stop()
    print(
        f"\n{args.training:,} training, {args.generated:,} generated, k={args.k}, as gmv_reader ({how}), "
        f"{args.repeats} runs each; load average {load_bi[0]:.1f} / {load_bi[1]:.1f} / {load_bi[2]:.1f} "
        f"on {os.cpu_count()} CPUs"
    )
    print(f"{'query':34s} {'rows':>7s} {'p50 ms':>9s} {'p95 ms':>9s}  seq scan of training_image")
    for r in rows:
        print(
            f"{r['query']:34s} {r['rows']:7,d} {r['p50_ms']:9.1f} {r['p95_ms']:9.1f}  "
            f"{'yes' if r['training_seq_scans'] else 'no'}"
        )
    if refresh_rows:
        print(
            f"\nrefresh over {args.generated * args.k:,} match rows, one run each; load average "
            f"{load_refresh[0]:.1f} / {load_refresh[1]:.1f} / {load_refresh[2]:.1f}"
        )
        count_only, summed = refresh_rows[0][1], refresh_rows[1][1]
        print(f"{'what':100s} {'seconds':>8s} {'x count(*)':>11s} {'x summed':>9s}")
        for label, seconds in refresh_rows:
            print(f"{label:100s} {seconds:8.2f} {seconds / count_only:11.2f} {seconds / summed:9.2f}")
    if args.json:
        args.json.write_text(
            json.dumps(
                {"args": {k: str(v) for k, v in vars(args).items()}, "rows": rows, "refresh": refresh_rows},
                indent=2,
            )
        )


def bi_queries(url: str, reader: str, repeats: int) -> list[dict]:
    from gmv_sql.db.connect import connect

    rows = []
    with connect(url, autocommit=True) as admin_conn:
        ids = {
            "id": [
                r[0]
                for r in admin_conn.execute(
                    "SELECT generated_id FROM gmv.generated_image ORDER BY md5(generated_id::text) LIMIT %s",
                    (repeats + 1,),
                )
            ],
            "tid": [
                r[0]
                for r in admin_conn.execute(
                    "SELECT training_id FROM gmv.training_image ORDER BY md5(training_id::text) LIMIT %s",
                    (repeats + 1,),
                )
            ],
        }
    with connect(reader, autocommit=True) as conn:
        for name, (statement, param) in QUERIES.items():
            times = []
            n_rows = 0
            for i in range(repeats + 1):  # the first run warms caches and is not counted
                params = (ids[param][i],) if param else None
                t = time.perf_counter()
                n_rows = len(conn.execute(statement, params).fetchall())
                if i:
                    times.append(time.perf_counter() - t)
            plan = conn.execute(
                "EXPLAIN (FORMAT JSON) " + statement, (ids[param][0],) if param else None
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
    return rows


if __name__ == "__main__":
    main()
