"""Refreshing the valuation materialized views (gmv.training_credit, gmv.training_credit_monthly)."""

from __future__ import annotations

import time
from dataclasses import dataclass

import psycopg

from gmv_sql.resources import query

VIEWS = ("training_credit", "training_credit_monthly")
REFRESH_WORK_MEM = "256MB"


@dataclass
class RefreshResult:
    view: str
    rows: int
    seconds: float


def refresh(conn: psycopg.Connection) -> list[RefreshResult]:
    """REFRESH … CONCURRENTLY both views in ONE transaction (readers keep reading the old rows meanwhile).

    One transaction so that every report view switches to the new numbers at the same instant
    (report.training_value reads one view, report.royalty_statement the other); a failure leaves
    both as they were.
    """
    results = []
    with conn.transaction():
        conn.execute("SET LOCAL jit = off")
        # The windows of gmv.match_weight sort every match row once per scheme; with the 4MB
        # default those sorts spill to disk.
        conn.execute(f"SET LOCAL work_mem = '{REFRESH_WORK_MEM}'")
        for view in VIEWS:
            started = time.monotonic()
            conn.execute(query("value", f"refresh_{view}"))
            rows = conn.execute(f"SELECT count(*) FROM gmv.{view}").fetchone()[0]
            results.append(RefreshResult(view=f"gmv.{view}", rows=rows, seconds=time.monotonic() - started))
    return results
