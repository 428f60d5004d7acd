"""The one list of what gmv stores in schema gmv: data tables, per-space vector tables, credit tables.

`gmv db status` counts these tables, `gmv db reset` empties them, the demo checks that a database it
is given holds none of their rows, and `gmv value refresh` keeps the credit tables. A migration that adds
a table adds it here too (tests/db/test_catalog.py compares this list with the schema).
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg
from psycopg import sql

from gmv_sql.resources import query

# User data, in dependency order (a table comes after the tables it references).
DATA_TABLES: tuple[str, ...] = (
    "owner",
    "owner_login",
    "license",
    "training_image",
    "generator",
    "generation_run",
    "generated_image",
    "embedding_space",
    "match_run",
    "match",
    "scheme_calibration",
    "revenue_pool",
    "match_coverage",
    "rights_change",
)
# Issued statements (gmv_sql/ledger): never updated or deleted (triggers refuse it), so counted but
# not emptied by `gmv db reset`.
LEDGER_TABLES: tuple[str, ...] = ("statement", "statement_line", "statement_credit", "statement_match")
# Created and filled by the migrations (the valuation schemes): schema, not data; a reset keeps them.
SCHEMA_TABLES: tuple[str, ...] = ("valuation_scheme",)
# The valuation stage's tables, derived from the data by `gmv value refresh` (gmv.refresh_credit() in
# sql/derived/12_credit.sql) and emptied with it by `gmv db reset`; gmv.credit_dirty lists what changed.
CREDIT_TABLES: tuple[str, ...] = (
    "training_credit_monthly",
    "training_credit",
    "owner_credit_monthly",
    "owner_credit",
    "training_image_count",
    "credit_dirty",
)


def qualified(name: str) -> sql.Composed:
    """gmv.<name> as a safely quoted identifier."""
    return sql.SQL("gmv.{}").format(sql.Identifier(name))


@dataclass(frozen=True)
class VectorTable:
    """One per-space vector table: gmv.<kind>_embedding_<space_id>."""

    space: str
    kind: str
    table: sql.Composed


def vector_tables(conn: psycopg.Connection) -> list[VectorTable]:
    """The vector tables of every embedding space, by space id, training before generated."""
    from gmv_sql import spaces

    return [
        VectorTable(space=space.name, kind=kind, table=space.table(kind))
        for space in spaces.list_spaces(conn)
        for kind in spaces.KINDS
    ]


def count_rows(conn: psycopg.Connection, table: sql.Composable) -> int:
    return int(conn.execute(sql.SQL(query("db", "count_rows")).format(table=table)).fetchone()[0])


def data_row_counts(conn: psycopg.Connection) -> dict[str, int]:
    """Rows per data table, in DATA_TABLES order."""
    return {name: count_rows(conn, qualified(name)) for name in DATA_TABLES}
