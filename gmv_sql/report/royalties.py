"""Royalty statements: record a month's revenue pool and split it over owners pro rata to credit.

The split itself is SQL (report.royalty_statement: largest remainder in cents, so amounts add up
exactly to the pool); this module validates what the user typed and writes the pool.
"""

from __future__ import annotations

import datetime as dt
import decimal
import re
from dataclasses import dataclass

import psycopg

from gmv_sql.errors import InputError
from gmv_sql.output import Rows, read
from gmv_sql.report.common import Target
from gmv_sql.resources import query
from gmv_sql.value.refresh import refresh

MAX_POOL = decimal.Decimal("9999999999999999.99")  # numeric(18, 2)


def parse_period(text: str) -> dt.date:
    """'2026-01' -> date(2026, 1, 1)."""
    match = re.fullmatch(r"(\d{4})-(\d{2})", text.strip())
    if not match or not 1 <= int(match.group(2)) <= 12 or int(match.group(1)) < 1:
        raise InputError(f"period {text!r} is not a month; use YYYY-MM, e.g. 2026-01")
    return dt.date(int(match.group(1)), int(match.group(2)), 1)


def parse_pool(text: str) -> decimal.Decimal:
    """A non-negative amount with at most two decimals (cents)."""
    try:
        amount = decimal.Decimal(text.strip().replace("_", ""))
    except decimal.InvalidOperation:
        raise InputError(f"pool {text!r} is not a number; give an amount like 1250.00") from None
    if not amount.is_finite():
        raise InputError(f"pool {text!r} is not a finite number; give an amount like 1250.00")
    if amount < 0:
        raise InputError(f"pool {text!r} is negative; give the amount to pay out (>= 0)")
    if amount > MAX_POOL:
        raise InputError(f"pool {text!r} is too large (max {MAX_POOL})")
    if amount != amount.quantize(decimal.Decimal("0.01")):
        raise InputError(f"pool {text!r} has fractions of a cent; round it to 2 decimals")
    return amount.quantize(decimal.Decimal("0.01"))


def parse_currency(text: str) -> str:
    """An ISO 4217-style three-letter code, upper-cased."""
    if not re.fullmatch(r"[A-Za-z]{3}", text.strip()):
        raise InputError(f"currency {text!r} is not a three-letter code; use e.g. EUR, USD, GBP")
    return text.strip().upper()


@dataclass
class Statement:
    period: str
    pool: decimal.Decimal
    currency: str
    table: Rows  # the rows of report.royalty_statement for the period, space and scheme

    @property
    def rows(self) -> list:
        return self.table.rows

    @property
    def paid(self) -> decimal.Decimal:
        return sum((r.amount for r in self.rows), decimal.Decimal("0.00"))


def record_and_split(
    conn: psycopg.Connection, target: Target, period: dt.date, pool: decimal.Decimal, currency: str
) -> Statement:
    """Upsert the pool, refresh credit, read the statement: one transaction, nothing kept on error."""
    with conn.transaction():
        conn.execute(
            query("report", "upsert_pool"),
            {
                "period": period,
                "amount": pool,
                "currency": currency,
                "space_id": target.space_id,
                "scheme_id": target.scheme_id,
            },
        )
        refresh(conn)
        label = period.strftime("%Y-%m")
        table = read(
            conn,
            query("report", "royalty_statement"),
            {"period": label, "space": target.space, "scheme": target.scheme},
        )
    return Statement(period=label, pool=pool, currency=currency, table=table)
