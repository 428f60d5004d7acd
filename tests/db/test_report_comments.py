"""Every column of every report view has a COMMENT (BI tools show it beside the column)."""

from tests.factories import relations


def test_every_report_view_column_has_a_comment(conn):
    views = relations(conn, "report", "v")
    assert len(views) >= 5
    rows = conn.execute(
        "SELECT c.relname, a.attname, col_description(c.oid, a.attnum) "
        "FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid "
        "WHERE c.relnamespace = 'report'::regnamespace AND c.relkind = 'v' AND a.attnum > 0 AND NOT a.attisdropped"
    ).fetchall()
    assert {r[0] for r in rows} == set(views)
    missing = [f"report.{view}.{column}" for view, column, comment in rows if not (comment or "").strip()]
    assert not missing, f"report view columns without COMMENT ON COLUMN: {missing}"
    print(f"\ncomments: {len(rows)} columns of {len(views)} report views, all commented")


def test_credit_comment_states_its_units(conn):
    comment = conn.execute(
        "SELECT col_description('report.training_value'::regclass, "
        "(SELECT attnum FROM pg_attribute WHERE attrelid = 'report.training_value'::regclass AND attname = 'value'))"
    ).fetchone()[0]
    assert "quality × rank weight" in comment and "number of generated images" in comment
