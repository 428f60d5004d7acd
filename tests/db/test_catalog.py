"""gmv_sql/db/catalog.py is the one list of gmv's tables: it must match the migrated schema."""

from __future__ import annotations

from gmv_sql.db import catalog
from tests.factories import seed


def test_catalog_names_every_table_and_materialized_view_of_schema_gmv(conn):
    seed(conn, n_training=4, n_generated=2, dim=4)  # one space: its vector tables are listed separately
    vector_tables = {
        conn.execute("SELECT to_regclass(%s)::text", (v.table.as_string(conn),)).fetchone()[0]
        for v in catalog.vector_tables(conn)
    }
    assert vector_tables == {"gmv.training_embedding_1", "gmv.generated_embedding_1"}
    tables = {r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'gmv'")}
    assert tables == {
        *catalog.DATA_TABLES,
        *catalog.SCHEMA_TABLES,
        *catalog.LEDGER_TABLES,
        *catalog.CREDIT_TABLES,
    } | {t.removeprefix("gmv.") for t in vector_tables}
    # Credit is kept in tables (gmv.refresh_credit()), not materialized views.
    assert conn.execute("SELECT count(*) FROM pg_matviews WHERE schemaname = 'gmv'").fetchone()[0] == 0


def test_data_tables_come_after_the_tables_they_reference(conn):
    references = conn.execute(
        "SELECT c.conrelid::regclass::text, c.confrelid::regclass::text FROM pg_constraint AS c"
        " WHERE c.contype = 'f' AND c.connamespace = 'gmv'::regnamespace"
    ).fetchall()
    assert references
    order = {f"gmv.{name}": i for i, name in enumerate(catalog.DATA_TABLES)}
    for table, referenced in references:
        if table in order and referenced in order:
            assert order[referenced] < order[table], f"{table} references {referenced}, listed after it"


def test_counts(conn):
    seed(conn, n_training=4, n_generated=2, dim=4, owners=2)
    counts = catalog.data_row_counts(conn)
    assert list(counts) == list(catalog.DATA_TABLES)
    assert counts["training_image"] == 4 and counts["generated_image"] == 2 and counts["owner"] == 2
    assert [catalog.count_rows(conn, v.table) for v in catalog.vector_tables(conn)] == [4, 2]
