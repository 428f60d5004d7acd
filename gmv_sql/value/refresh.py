"""Refreshing the valuation materialized views (gmv.training_credit, gmv.training_credit_monthly)."""

from __future__ import annotations

import time
from dataclasses import dataclass

import psycopg

from gmv_sql.db.catalog import CREDIT_VIEWS, count_rows, qualified
from gmv_sql.resources import query
from gmv_sql.value.calibration import calibrate_missing


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
        conn.execute(query("value", "refresh_settings"))
        # A space matched outside `gmv match` (or before this scheme existed) gets its temperature here,
        # so the softmax_calibrated credit is never missing.
        calibrate_missing(conn)
        # work_mem stays the server's: raising it to 256MB (so the window sorts of gmv.match_weight
        # would not spill) made both refreshes ~2x slower over 1M match rows (docs/BENCHMARKS.md).
        for view in CREDIT_VIEWS:
            started = time.monotonic()
            conn.execute(query("value", f"refresh_{view}"))
            rows = count_rows(conn, qualified(view))
            results.append(RefreshResult(view=f"gmv.{view}", rows=rows, seconds=time.monotonic() - started))
    return results
