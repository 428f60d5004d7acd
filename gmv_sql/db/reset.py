"""Starting from nothing: empty a database of gmv data (`gmv db reset`), or create one afresh (the demo's)."""

from __future__ import annotations

from dataclasses import dataclass

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from gmv_sql.db import catalog
from gmv_sql.errors import DatabaseError
from gmv_sql.resources import query


@dataclass(frozen=True)
class ResetResult:
    """What a reset deleted: rows per data table (all of them, zeros included) and the vector tables dropped."""

    rows: dict[str, int]
    vector_tables: list[catalog.VectorTable]

    @property
    def deleted_anything(self) -> bool:
        return bool(self.vector_tables) or any(self.rows.values())


def _render(name: str, **fill: sql.Composable) -> sql.Composed:
    return sql.SQL(query("db", name)).format(**fill)


def empty_database(conn: psycopg.Connection) -> ResetResult:
    """Delete all gmv data in one transaction: drop each space's vector tables, empty the data tables
    (identities restart at 1) and the credit tables.

    The schema stays at its migration, and so do the valuation schemes (catalog.SCHEMA_TABLES). A
    running stage is waited for (its current transaction finishes first); a failure leaves every row.
    """
    tables = sql.SQL(", ").join(catalog.qualified(name) for name in catalog.DATA_TABLES)
    try:
        with conn.transaction():
            conn.execute(_render("lock_tables", tables=tables))
            issued = catalog.count_rows(conn, catalog.qualified("statement"))
            if issued:
                # Issued statements are never deleted, and the data they cite must not be reused under their ids.
                raise DatabaseError(
                    f"nothing deleted: this database holds {issued} issued royalty statements, which are never "
                    "deleted; start over in a new database (or drop this one)"
                )
            rows = catalog.data_row_counts(conn)
            vectors = catalog.vector_tables(conn)
            for vector in vectors:
                conn.execute(_render("drop_table", table=vector.table))
            conn.execute(_render("truncate_tables", tables=tables))
            credit = sql.SQL(", ").join(catalog.qualified(name) for name in catalog.CREDIT_TABLES)
            conn.execute(
                _render("truncate_tables", tables=credit)
            )  # after the data: its triggers mark credit
    except psycopg.errors.FeatureNotSupported as exc:  # another table references gmv's (TRUNCATE refuses)
        detail = f" ({exc.diag.message_detail.rstrip('.')})" if exc.diag.message_detail else ""
        raise DatabaseError(
            f"nothing deleted: {exc.diag.message_primary}{detail}; gmv empties only its own tables, "
            "so drop that foreign key or table first"
        ) from exc
    return ResetResult(rows=rows, vector_tables=vectors)


def with_database(url: str, dbname: str) -> str:
    """The same server and login, another database."""
    params = conninfo_to_dict(url)
    params["dbname"] = dbname
    return make_conninfo(**params)


def fresh_database(server_url: str, dbname: str) -> str:
    """Drop (if it exists) and create database `dbname` on the server, migrate it to head; return its URL.

    Only for a database gmv owns outright (the demo's on the embedded server): it is dropped even
    while others are connected.
    """
    from gmv_sql.db.connect import connect
    from gmv_sql.db.migrate import upgrade

    admin_url = with_database(server_url, "postgres")
    database = sql.Identifier(dbname)
    with connect(admin_url, register_vector=False) as conn:
        conn.execute(_render("drop_database", database=database))
        conn.execute(_render("create_database", database=database))
    url = with_database(admin_url, dbname)
    upgrade(url)
    return url
