"""Access: gmv_reader reads report.* and nothing else, writes nothing, and its statements time out;
`gmv db url` never prints a password unless asked."""

from __future__ import annotations

import psycopg
import pytest
from click.testing import CliRunner

from gmv_sql.cli import cli
from gmv_sql.db.connect import mask_password
from gmv_sql.value.refresh import refresh
from tests.factories import reader_url, relations, seed

pytestmark = pytest.mark.timeout(60)

# Everything a read-only BI login must not be able to do, tried twice: with the role's read-only
# default, and after the reader switches it off (privileges alone must still refuse). Each one
# succeeds for a privileged role (checked below), so a refusal is the grants' doing, not a statement
# that fails for everyone.
FORBIDDEN = [
    "INSERT INTO gmv.owner (name) VALUES ('mallory')",
    "UPDATE gmv.training_image SET owner_id = owner_id",
    "DELETE FROM gmv.match",
    "TRUNCATE gmv.revenue_pool",
    "UPDATE gmv.valuation_scheme SET temperature = temperature",
    "DELETE FROM gmv.training_embedding_{space_id}",
    "UPDATE gmv.generated_embedding_{space_id} SET embedding = embedding",
    "SELECT gmv.refresh_credit()",
    "DELETE FROM gmv.training_credit",
    "CREATE TABLE report.x (a int)",
    "CREATE TABLE gmv.x (a int)",
    "CREATE TABLE public.x (a int)",
    "CREATE VIEW public.v AS SELECT 1",
    "CREATE FUNCTION public.f() RETURNS int LANGUAGE sql AS 'SELECT 1'",
    "CREATE SCHEMA mallory",
    "CREATE ROLE mallory",
    "CREATE DATABASE mallory",
    "ALTER EXTENSION vector UPDATE",
    "DROP EXTENSION vector CASCADE",
    "DROP VIEW report.owner_value CASCADE",
    "ALTER VIEW report.owner_value RENAME TO x",
    "DROP TABLE gmv.owner CASCADE",
    "COMMENT ON VIEW report.owner_value IS 'x'",
    "ALTER ROLE gmv_reader SUPERUSER",
    "COPY gmv.owner TO STDOUT",
    "COPY (SELECT 1) TO PROGRAM 'cat > /dev/null'",  # 'true' may exit before the server writes
    "COPY gmv.owner (name) FROM PROGRAM 'echo mallory'",
    "SELECT pg_read_file('/etc/passwd')",
    "SELECT lo_import('/etc/passwd')",
]
OUTSIDE_A_TRANSACTION = {"CREATE DATABASE mallory": "DROP DATABASE mallory"}


@pytest.fixture
def seeded(conn, db_url):
    world = seed(conn, n_training=30, n_generated=10, dim=4, k=3, months=2, pool="1000.00")
    # A recorded match run and an issued statement, so that every report view has rows.
    from functools import partial

    from gmv_sql.db.connect import connect
    from gmv_sql.ledger import statements
    from gmv_sql.ledger.draft import Scope
    from gmv_sql.match import matcher
    from gmv_sql.report.common import resolve_target
    from gmv_sql.report.royalties import parse_period

    matcher.match_space(partial(connect, db_url), world["space"])
    statements.issue(conn, resolve_target(conn), parse_period("2026-01"), Scope())
    # Every match a near-copy, so that report.near_copy has rows to read.
    conn.execute("UPDATE gmv.embedding_space SET near_copy_distance = 2, near_copy_source = 'set'")
    return world


def _execute(conn: psycopg.Connection, statement: str) -> None:
    if statement.startswith("COPY") and statement.endswith("TO STDOUT"):
        with conn.cursor() as cur, cur.copy(statement) as copy:  # psycopg runs COPY … STDOUT only this way
            for _ in copy:
                pass
    else:
        conn.execute(statement)


def _refusal(reader: psycopg.Connection, statement: str) -> type[psycopg.Error] | None:
    """The error class the server refused the statement with; None if it ran."""
    try:
        _execute(reader, statement)
    except psycopg.Error as exc:
        return type(exc)
    return None


def test_every_forbidden_statement_succeeds_for_the_owner(db_url, seeded):
    """The control: a privileged role runs each statement (rolled back), so each one can be refused."""
    space_id = seeded["space"].space_id
    failed = {}
    with psycopg.connect(db_url, autocommit=True) as admin:
        for statement in FORBIDDEN:
            statement = statement.format(space_id=space_id)
            try:
                if statement in OUTSIDE_A_TRANSACTION:
                    _execute(admin, statement)
                    admin.execute(OUTSIDE_A_TRANSACTION[statement])
                else:
                    with admin.transaction(force_rollback=True):
                        _execute(admin, statement)
            except psycopg.Error as exc:
                failed[statement] = f"{type(exc).__name__}: {exc}"
    assert failed == {}


def test_report_views_are_not_writable_through(conn):
    writable = conn.execute(
        "SELECT table_name FROM information_schema.views WHERE table_schema = 'report'"
        " AND (is_insertable_into = 'YES' OR is_updatable = 'YES' OR is_trigger_insertable_into = 'YES')"
    ).fetchall()
    assert writable == []


@pytest.mark.parametrize(
    "read_only_default", [True, False], ids=["read-only-default", "read-only-switched-off"]
)
def test_reader_cannot_write_create_or_escape(db_url, seeded, read_only_default):
    space_id = seeded["space"].space_id
    # A read-only transaction stops a write before privileges are looked at; with it switched off,
    # the grants must refuse everything.
    expected = (psycopg.errors.InsufficientPrivilege,)
    if read_only_default:
        expected += (psycopg.errors.ReadOnlySqlTransaction,)
    with psycopg.connect(reader_url(db_url), autocommit=True) as reader:
        assert reader.execute("SELECT current_user").fetchone() == ("gmv_reader",)
        if not read_only_default:
            reader.execute("SET default_transaction_read_only = off")
        refusals = {s: _refusal(reader, s.format(space_id=space_id)) for s in FORBIDDEN}
    wrong = {s: error and error.__name__ for s, error in refusals.items() if error not in expected}
    assert wrong == {}
    with psycopg.connect(db_url, autocommit=True) as admin:
        # Nothing was written, even by a statement that should have failed half-way.
        assert admin.execute("SELECT count(*) FROM gmv.owner WHERE name = 'mallory'").fetchone() == (0,)
        assert admin.execute("SELECT count(*) FROM gmv.match").fetchone() == (10 * 3,)
        assert admin.execute("SELECT to_regnamespace('mallory')").fetchone() == (None,)


def test_reader_cannot_read_any_gmv_relation_or_vector(db_url, conn, seeded):
    gmv_relations = relations(conn, "gmv", "rvm")
    # tables (the credit tables among them), the match_weight view and the per-space vector tables
    assert {
        "owner",
        "match",
        "match_weight",
        "training_credit",
        f"training_embedding_{seeded['space'].space_id}",
        f"generated_embedding_{seeded['space'].space_id}",
    } <= set(gmv_relations)
    readable = []
    with psycopg.connect(reader_url(db_url), autocommit=True) as reader:
        for rel in gmv_relations:
            try:
                reader.execute(f'SELECT * FROM gmv."{rel}" LIMIT 1')
                readable.append(rel)
            except psycopg.errors.InsufficientPrivilege:
                pass
        assert reader.execute("SELECT has_schema_privilege('gmv', 'USAGE')").fetchone() == (False,)
    assert readable == []
    print(f"\naccess: {len(gmv_relations)} gmv relations, none readable by gmv_reader")
    # No report column exposes an embedding either.
    vector_columns = conn.execute(
        "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = 'report'"
        " AND udt_name IN ('vector', 'halfvec', 'sparsevec')"
    ).fetchall()
    assert vector_columns == []


def test_reader_reads_every_report_view(db_url, conn, seeded):
    refresh(conn)
    conn.execute("UPDATE gmv.license SET url = 'https://example.org/terms'")  # a row in report.rights_change
    views = relations(conn, "report", "vm")
    assert len(views) >= 5
    with psycopg.connect(reader_url(db_url), autocommit=True) as reader:
        counts = {v: reader.execute(f'SELECT count(*) FROM report."{v}"').fetchone()[0] for v in views}
    assert all(n > 0 for n in counts.values()), counts


def test_reader_has_a_statement_timeout(db_url):
    with psycopg.connect(reader_url(db_url), autocommit=True) as reader:
        timeout = reader.execute(
            "SELECT setting::int FROM pg_settings WHERE name = 'statement_timeout'"
        ).fetchone()[0]
        assert 0 < timeout <= 60_000
        assert reader.execute("SHOW default_transaction_read_only").fetchone() == ("on",)
        idle = reader.execute(
            "SELECT setting::int FROM pg_settings WHERE name = 'idle_in_transaction_session_timeout'"
        ).fetchone()[0]
        assert 0 < idle <= 600_000  # a BI tool that leaves a transaction open is cut off
        # The role setting is what PostgreSQL enforces; prove the enforcement path with a shorter one
        # for this session (a runaway dashboard query is cancelled, the connection stays usable).
        reader.execute("SET statement_timeout = '200ms'")
        with pytest.raises(psycopg.errors.QueryCanceled):
            reader.execute("SELECT pg_sleep(5)")
        assert reader.execute("SELECT 1").fetchone() == (1,)


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://alice:s3cret@db.example:5432/gmv",
        "postgres://alice:s3cret@db.example/gmv",
        "postgresql+psycopg://alice:s3cret@db.example/gmv",
        "postgresql://alice:s3cret%40%2F%3F@db.example/gmv",
        "postgresql://alice:s3cret@h1:5432,h2:5433/gmv?target_session_attrs=read-write",
        "postgresql://alice@db.example/gmv?password=s3cret",
        "postgresql://alice@db.example/gmv?sslmode=require&password=s3cret&application_name=x",
        "postgresql://alice@db.example/gmv?sslpassword=s3cret",
        "postgresql://alice:s3cret@/gmv?host=/var/run/postgresql",
        "postgresql://alice:pa@s3cret@db.example/gmv",
        "postgresql://alice:pa?s3cret@db.example/gmv",
        "host=db.example user=alice password=s3cret dbname=gmv",
        "host=db.example user=alice password='s3cret with spaces' dbname=gmv",
    ],
)
def test_db_url_hides_password_unless_asked(tmp_path, url):
    from tests.conftest import Gmv

    gmv = Gmv(url, tmp_path)
    for args in (("db", "url"), ("db", "url", "--reader"), ("db", "url", "--reader", "--show-password")):
        # A URL libpq cannot read may be refused (exit 1), but its password is never echoed.
        result = CliRunner().invoke(cli, list(args), env=gmv.env)
        assert result.exit_code in (0, 1) and "Traceback" not in result.output, result.output
        assert "s3cret" not in result.output, (args, result.output)
    assert "s3cret" in gmv("db", "url", "--show-password").output
    assert "s3cret" not in mask_password(url)


def test_connection_error_does_not_print_password(tmp_path):
    from tests.conftest import Gmv

    gmv = Gmv("postgresql://alice:s3cret@127.0.0.1:1/gmv", tmp_path)
    result = gmv("db", "status", ok=False)
    assert result.exit_code == 1
    assert "s3cret" not in result.output
    assert "cannot connect" in result.output
