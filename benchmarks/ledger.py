"""How long the ledger takes: draft, issue, adjustment and verify of one month, by size.

Synthetic rows written straight into the tables (no vectors needed): n generated images of one month,
each matched to k training images drawn at random from n_training, owned by 100 owners. For each size:
the draft (`gmv report royalties` without --issue), issuing the original, opting out 1% of the training
images (their matches deleted: a re-match would put others in their place; not needed to time the
ledger), issuing the adjustment, and verifying the original (which computes twice: stored rows and live).

    python benchmarks/ledger.py --sizes 10000,100000 --k 10
"""

from __future__ import annotations

import argparse
import datetime as dt
import decimal
import tempfile
import time
from pathlib import Path

from common import fresh_database, private_server

SETUP = """
INSERT INTO gmv.owner (name) SELECT 'owner-' || i FROM generate_series(1, 100) AS i;
INSERT INTO gmv.license (name, royalty_bearing) VALUES ('paid', true), ('free', false);
INSERT INTO gmv.training_image (sha256, uri, owner_id, license_id)
SELECT encode(sha256(('t' || i)::bytea), 'hex'), 'synthetic://t/' || i, 1 + i %% 100, 1 + (i %% 10 = 0)::int
FROM generate_series(1, %(n_training)s) AS i;
INSERT INTO gmv.generator (name) VALUES ('g');
INSERT INTO gmv.generation_run (generator_id, name) VALUES (1, 'r');
INSERT INTO gmv.generated_image (sha256, uri, run_id, quality, created_at)
SELECT encode(sha256(('g' || i)::bytea), 'hex'), 'synthetic://g/' || i, 1, 0.5 + random(), '2026-01-15'
FROM generate_series(1, %(n_generated)s) AS i;
INSERT INTO gmv.embedding_space (name, model, dim, match_k) VALUES ('bench', 'synthetic', 2, %(k)s);
INSERT INTO gmv.match (space_id, generated_id, rank, training_id, distance, k)
SELECT 1, g, r, t, 0.1 * r + random() * 0.01, %(k)s
FROM (
    SELECT g, row_number() OVER (PARTITION BY g ORDER BY random()) AS r, t
    FROM generate_series(1, %(n_generated)s) AS g
    CROSS JOIN LATERAL (
        SELECT DISTINCT 1 + floor(random() * %(n_training)s)::int AS t FROM generate_series(1, %(k)s * 2) WHERE g > 0
    ) AS c
) AS x
WHERE r <= %(k)s;
"""

OPT_OUT = """
WITH gone AS (
    UPDATE gmv.training_image SET opted_out = true WHERE training_id % 100 = 7 RETURNING training_id
)
DELETE FROM gmv.match WHERE training_id IN (SELECT training_id FROM gone)
"""


def timed(fn):
    started = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - started


def run_size(admin: str, n_generated: int, n_training: int, k: int) -> dict:
    from gmv_sql.db.connect import connect
    from gmv_sql.ledger import statements
    from gmv_sql.ledger.draft import Scope
    from gmv_sql.ledger.verify import verify
    from gmv_sql.report.common import resolve_target

    url = fresh_database(admin, "gmv_bench_ledger")
    with connect(url) as conn:
        sizes = {"n_training": n_training, "n_generated": n_generated, "k": k}
        for statement in filter(str.strip, SETUP.split(";\n")):
            conn.execute(statement, sizes if "%(" in statement else None)
        rows = conn.execute("SELECT count(*) FROM gmv.match").fetchone()[0]
        conn.execute("ANALYZE")
        target = resolve_target(conn)
        month = dt.date(2026, 1, 1)
        pool = decimal.Decimal("100000.00")
        _, t_draft = timed(lambda: statements.draft(conn, target, month, Scope(), pool=pool))
        first, t_issue = timed(lambda: statements.issue(conn, target, month, Scope()))
        conn.execute(OPT_OUT)
        second, t_adjust = timed(lambda: statements.issue(conn, target, month, Scope(), reason="opt-out"))
        result, t_verify = timed(lambda: verify(conn, first.statement_id))
        assert result.reproduces and not result.current_same
        assert second.draft.computation.amount == 0
    return {
        "generated": n_generated,
        "match rows": rows,
        "draft s": t_draft,
        "issue s": t_issue,
        "adjust s": t_adjust,
        "verify s": t_verify,
        "credit lines": len(first.draft.computation.credits),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="10000,100000", help="comma-separated numbers of generated images")
    p.add_argument("--training", type=int, default=20000, help="training images")
    p.add_argument("--k", type=int, default=10)
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="gmv-bench-ledger-") as tmp:
        server, admin = private_server(Path(tmp) / "pgdata", cleanup_mode="stop")
        for i, n in enumerate(args.sizes.split(",")):
            row = run_size(admin, int(n), args.training, args.k)
            if i == 0:
                print("  ".join(f"{c:>12}" for c in row), flush=True)
            print(
                "  ".join(f"{v:>12.2f}" if isinstance(v, float) else f"{v:>12,}" for v in row.values()),
                flush=True,
            )
        server.cleanup()


if __name__ == "__main__":
    main()
