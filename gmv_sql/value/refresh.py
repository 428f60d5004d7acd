"""Keeping the credit tables (gmv.training_credit, gmv.training_credit_monthly, gmv.owner_credit…) current.

Triggers mark the (space, month) slices a change touches in gmv.credit_dirty; gmv.refresh_credit()
(sql/derived/12_credit.sql) recomputes those slices and the totals they touch. Readers never wait: the
refresh deletes and inserts rows in one transaction, and they see the old rows until it commits.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import psycopg

from gmv_sql.db import locks
from gmv_sql.resources import query
from gmv_sql.value.calibration import calibrate_missing

# A report command refreshes first when the marked slices hold at most this many match rows (well
# under a second's work); otherwise it says how far behind the valuation is.
REFRESH_FIRST_MAX_MATCHES = 200_000


@dataclass
class RefreshResult:
    """What one refresh did: slices recomputed (None: everything), training-credit rows written."""

    slices: int | None
    credit_rows: int
    image_counts: bool
    seconds: float

    def describe(self) -> str:
        if self.slices is None:
            what = "recomputed all credit"
        elif self.slices == 0:
            what = "credit already current"
        else:
            what = f"recomputed {self.slices:,} changed (space, month) slices"
        counts = "; recounted images per owner" if self.image_counts else ""
        return f"{what}: {self.credit_rows:,} training-credit rows written{counts} in {self.seconds:.2f}s"


def refresh(conn: psycopg.Connection) -> RefreshResult:
    """Recompute the marked credit slices in ONE transaction (every report view switches at once)."""
    started = time.monotonic()
    with conn.transaction():
        conn.execute(query("value", "refresh_settings"))
        # A space matched outside `gmv match` (or before this scheme existed) gets its temperature here,
        # so the softmax_calibrated credit is never missing (a new temperature marks the space).
        calibrate_missing(conn)
        slices, full, counts, rows = conn.execute(query("value", "refresh_credit")).fetchone()
    return RefreshResult(
        slices=None if full else slices,
        credit_rows=rows,
        image_counts=counts,
        seconds=time.monotonic() - started,
    )


def pending_matches(conn: psycopg.Connection) -> int:
    """Match rows in the slices marked since the last refresh (all of them when everything is marked)."""
    everything, all_matches, marked = conn.execute(query("value", "pending_matches")).fetchone()
    return int(all_matches if everything else marked)


def refresh_if_cheap(
    conn: psycopg.Connection, max_matches: int = REFRESH_FIRST_MAX_MATCHES
) -> RefreshResult | None:
    """Refresh when the marked slices are small and no other refresh is running; else None."""
    if pending_matches(conn) > max_matches:
        return None
    with conn.transaction():
        if not conn.execute(query("locks", "try_xact_lock"), {"key": locks.CREDIT, "id": 0}).fetchone()[0]:
            return None  # another refresh is running: report what is there, with the note
        result = refresh(conn)
    return result
