"""Owners' own logins (`gmv db grant-owner`): an owner's role sees its own rows in owner_report and
nothing of any other owner: not by a view, a filter, an aggregate or a function in its WHERE clause."""

from __future__ import annotations

import stat
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from gmv_sql.db.commands import with_user
from tests.factories import refused, relations, seed

OWNERS = ["Alice Studio", "bob", "carol"]


def _rows(conn, schema: str, view: str, where: str = "", params=()) -> list[tuple]:
    stmt = sql.SQL("SELECT * FROM {}.{} ").format(sql.Identifier(schema), sql.Identifier(view)) + sql.SQL(
        where
    )
    rows = conn.execute(stmt, params).fetchall()
    return sorted((tuple(round(v, 9) if isinstance(v, float) else v for v in row) for row in rows), key=repr)


@pytest.fixture
def owners(gmv, conn):
    seed(conn, n_training=60, n_generated=20, dim=8, k=5, pool="900.00", owners=OWNERS)
    gmv("value", "refresh")
    # Rows in the ledger's and the rights log's owner views too: an issued statement, and each owner's
    # images opted out and back in (the matches stay as they were).
    gmv("report", "royalties", "--period", "2026-01", "--issue")
    for name in OWNERS:
        gmv("rights", "opt-out", "--owner", name)
        gmv("rights", "opt-in", "--owner", name)
    # Every match a near-copy, so that report.near_copy has each owner's rows.
    conn.execute("UPDATE gmv.embedding_space SET near_copy_distance = 2, near_copy_source = 'set'")
    roles = {}
    for name in OWNERS[:2]:
        out = gmv("db", "grant-owner", name).output
        roles[name] = out.split("login role ")[1].split()[0]
    return roles


def test_grant_owner_creates_a_login_with_a_private_password(gmv, owners):
    assert owners["Alice Studio"].startswith("gmv_owner_alice_studio_")
    home = Path(gmv.env["GMV_HOME"])
    files = sorted((home / "secrets").glob("gmv_owner_*"))
    assert len(files) == 2 and all(stat.S_IMODE(f.stat().st_mode) == 0o600 for f in files)
    again = gmv("db", "grant-owner", "bob").output
    assert "kept login role " + owners["bob"] in again
    assert not [f for f in files if f.read_text().strip() in again]
    assert files[0].read_text().strip() in gmv("db", "grant-owner", "Alice Studio", "--show-password").output
    refused(gmv, "db", "grant-owner", "nobody", reason="no owner named 'nobody'")
    refused(gmv, "db", "grant-owner", "carol", "--role", "gmv_reader", reason="is not an owner's login")


def test_an_owner_sees_exactly_its_own_rows_in_every_view(conn, db_url, owners):
    views = [v for v in relations(conn, "owner_report", "v") if v != "my_owner"]
    report_views = relations(conn, "report", "v")
    assert {"training_value", "owner_value", "attribution", "royalty_statement"} <= set(views)
    # Every report view with an owner column has its owner twin.
    with_owner = {
        r[0]
        for r in conn.execute(
            "SELECT c.relname FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid "
            "WHERE c.relnamespace = 'report'::regnamespace AND a.attname = 'owner'"
        )
    }
    assert set(views) == with_owner and with_owner <= set(report_views)
    for name, role in owners.items():
        with psycopg.connect(with_user(db_url, role), autocommit=True) as owner:
            assert owner.execute("SELECT owner FROM owner_report.my_owner").fetchall() == [(name,)]
            for view in views:
                mine = _rows(owner, "owner_report", view)
                assert mine, f"{role} sees no rows in owner_report.{view}"
                assert mine == _rows(conn, "report", view, "WHERE owner = %s", (name,)), view
                for other in OWNERS:
                    if other != name:
                        assert not _rows(owner, "owner_report", view, "WHERE owner = %s", (other,))
            # Aggregates see the same rows: totals are the owner's own.
            own_total, own_images = owner.execute(
                "SELECT sum(value), count(*) FROM owner_report.training_value"
            ).fetchone()
            assert (round(own_total, 9), own_images) == tuple(
                round(v, 9) if isinstance(v, float) else v
                for v in conn.execute(
                    "SELECT sum(value), count(*) FROM report.training_value WHERE owner = %s", (name,)
                ).fetchone()
            )
            assert owner.execute("SELECT count(DISTINCT owner) FROM owner_report.attribution").fetchone() == (
                1,
            )


def test_an_owner_reads_nothing_else(conn, db_url, owners):
    role = owners["bob"]
    with psycopg.connect(with_user(db_url, role), autocommit=True) as owner:
        for schema in ("gmv", "report"):
            for rel in relations(conn, schema, "rmv"):
                with pytest.raises(psycopg.errors.InsufficientPrivilege):
                    owner.execute(
                        sql.SQL("SELECT 1 FROM {}.{} LIMIT 1").format(
                            sql.Identifier(schema), sql.Identifier(rel)
                        )
                    )
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            owner.execute("CREATE TEMP TABLE t (x int)")
    # And the BI reader does not see owners' logins or their views.
    with psycopg.connect(with_user(db_url, "gmv_reader"), autocommit=True) as reader:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            reader.execute("SELECT * FROM owner_report.owner_value")


def test_a_function_in_the_owners_where_clause_sees_only_its_rows(db_url, owners):
    """security_barrier: the owner's own (cheap, leaky) function runs after the view's owner filter."""
    role = owners["bob"]
    seen: list[str] = []
    with psycopg.connect(with_user(db_url, role), autocommit=True) as owner:
        owner.add_notice_handler(lambda diag: seen.append(diag.message_primary))
        owner.execute("SET default_transaction_read_only = off")
        owner.execute(
            "CREATE FUNCTION pg_temp.peek(text) RETURNS boolean LANGUAGE plpgsql COST 0.0000001 AS "
            "$$ BEGIN RAISE NOTICE 'saw %', $1; RETURN true; END $$"
        )
        for view in ("training_value", "attribution", "owner_value", "royalty_statement"):
            owner.execute(
                sql.SQL("SELECT * FROM owner_report.{} WHERE pg_temp.peek(owner)").format(
                    sql.Identifier(view)
                )
            )
    assert seen and set(seen) == {"saw bob"}, sorted(set(seen))
