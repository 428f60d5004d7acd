"""Issuing freezes a statement: lines, per-image credit, stored match rows and provenance; triggers
refuse every change; bad input writes nothing."""

from __future__ import annotations

import psycopg
import pytest

from gmv_sql.ledger import statements
from tests.factories import refused
from tests.ledger.world import LEDGER, D, issue, ledger_fingerprint, matched_world


def test_issue_writes_lines_credits_rows_and_provenance(conn, db_url):
    world = matched_world(conn, db_url)
    issued = issue(conn, pool="1000.00")
    assert isinstance(issued, statements.Issued) and (issued.statement_id, issued.kind) == (1, "original")
    header = conn.execute(
        "SELECT kind, period, scope, pool, amount, currency, issued_by = session_user, provenance FROM gmv.statement"
    ).fetchone()
    kind, period, scope, pool, amount, currency, by_me, prov = header
    assert (kind, str(period), scope, pool, amount, currency, by_me) == (
        "original",
        "2026-01-01",
        "all",
        D("1000.00"),
        D("1000.00"),
        "EUR",
        True,
    )
    # Per owner: cents that add up to the pool; per image: cents that add up to the owner's line.
    lines = dict(conn.execute("SELECT owner, amount FROM gmv.statement_line").fetchall())
    assert set(lines) == set(world["owner_names"]) and sum(lines.values()) == D("1000.00")
    per_owner = dict(
        conn.execute("SELECT owner, sum(amount) FROM gmv.statement_credit GROUP BY 1").fetchall()
    )
    assert per_owner == lines
    free = conn.execute(
        "SELECT count(*), sum(amount) FROM gmv.statement_credit WHERE NOT royalty_bearing"
    ).fetchone()
    assert free[0] > 0 and free[1] == 0  # credit under a free licence is shown, never paid
    # The rows it was computed from: every match row of the month.
    assert (
        conn.execute("SELECT count(*) FROM gmv.statement_match").fetchone()
        == conn.execute("SELECT count(*) FROM gmv.match").fetchone()
    )
    # Provenance: model, weights, preprocessing, distance and index, k, scheme, runs with recall, versions.
    assert prov["space"]["model"] == "synthetic" and prov["space"]["distance"] == "cosine"
    assert prov["space"]["index"] == {"kind": "hnsw", "m": 16, "ef_construction": 64}
    assert "weights_sha256" in prov["space"] and "preprocessing" in prov["space"]
    assert prov["k"] == 5 and prov["scheme"] == {
        "name": "rank_linear",
        "formula": "rank_linear",
        "temperature": None,
    }
    [run] = prov["match_runs"]
    assert run["exact"] and run["recall_status"] == "exact" and run["images"] == 40
    assert set(prov["versions"]) == {"gmv_sql", "postgres", "pgvector"}
    assert prov["counts"]["generated_images"] == 40 and prov["counts"]["match_rows"] == 200


def test_draft_equals_the_report_view(conn, db_url, gmv):
    """The ledger's draft and report.royalty_statement split alike (two implementations of one rule)."""
    matched_world(conn, db_url)
    out = gmv("report", "royalties", "--period", "2026-01", "--pool", "777.77", "--format", "csv").stdout
    ledger_rows = sorted(tuple(line.split(",")[1::4]) for line in out.splitlines()[1:])
    view = conn.execute("SELECT owner, amount FROM report.royalty_statement").fetchall()
    assert ledger_rows == sorted((o, str(a)) for o, a in view)


@pytest.mark.parametrize("table", LEDGER)
@pytest.mark.parametrize(
    "statement",
    ["UPDATE gmv.{t} SET {c} = {c}", "DELETE FROM gmv.{t}", "TRUNCATE gmv.{t} CASCADE"],
)
def test_issued_rows_are_never_changed_even_by_a_superuser(conn, db_url, table, statement):
    matched_world(conn, db_url, n_training=40, n_generated=10)
    issue(conn, pool="10.00")
    before = ledger_fingerprint(conn)
    assert conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user").fetchone() == (True,)
    with pytest.raises(psycopg.errors.IntegrityConstraintViolation, match="issued statements never change"):
        conn.execute(statement.format(t=table, c="distance" if table == "statement_match" else "amount"))
    assert ledger_fingerprint(conn) == before


def test_issue_prints_the_id_and_show_reads_it_back(gmv, conn, db_url):
    matched_world(conn, db_url)
    result = gmv("report", "royalties", "--period", "2026-01", "--pool", "50.00", "--issue")
    assert "issued statement 1 (original) for 2026-01" in result.stderr
    shown = gmv("statement", "show", "1", "--format", "json").stdout
    import json

    body = json.loads(shown)
    assert body["statement"]["statement_id"] == 1 and body["statement"]["kind"] == "original"
    assert sum(D(line["amount"]) for line in body["lines"]) == D("50.00")
    credits = json.loads(gmv("statement", "show", "1", "--credits", "--format", "json").stdout)["credits"]
    assert sum(D(c["amount"]) for c in credits) == D("50.00")
    table = gmv("statement", "show", "1")
    assert "statement 1 (original) 2026-01, test/rank_linear, scope all: 50.00 EUR" in table.stderr
    assert "provenance: model synthetic" in table.stderr
    listed = gmv("statement", "list", "--format", "csv").stdout.splitlines()
    assert listed[0].startswith("id,kind,period") and listed[1].startswith("1,original,2026-01")


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        (("report", "royalties", "--period", "2026-03", "--issue"), "no revenue pool for 2026-03"),
        (
            ("report", "royalties", "--period", "2026-03", "--pool", "10", "--issue"),
            "nothing matched for 2026-03",
        ),
        (
            ("report", "royalties", "--period", "2026-01", "--pool", "10", "--generator", "nope"),
            "no generator 'nope'",
        ),
        (
            (
                "report",
                "royalties",
                "--period",
                "2026-01",
                "--pool",
                "10",
                "--generator",
                "test-generator",
                "--run",
                "r9",
            ),
            "generator 'test-generator' has no run 'r9'",
        ),
        (("report", "royalties", "--period", "2026-01", "--pool", "10", "--reason", "x"), "--reason"),
        (("statement", "show", "9"), "no statement with id 9"),
        (("statement", "verify", "9"), "no statement with id 9"),
        (("statement", "reverse", "9", "--reason", "x"), "no statement with id 9"),
    ],
)
def test_bad_input_is_one_line_and_writes_nothing(gmv, conn, db_url, args, reason):
    matched_world(conn, db_url, n_training=40, n_generated=10)
    before = ledger_fingerprint(conn), conn.execute("SELECT count(*) FROM gmv.revenue_pool").fetchone()
    refused(gmv, *args, reason=reason)
    assert (
        ledger_fingerprint(conn),
        conn.execute("SELECT count(*) FROM gmv.revenue_pool").fetchone(),
    ) == before


def test_issue_refuses_matches_of_opted_out_images_until_rematched(gmv, conn, db_url):
    matched_world(conn, db_url, n_training=40, n_generated=10)
    conn.execute(
        "UPDATE gmv.training_image SET opted_out = true WHERE training_id IN (SELECT training_id FROM gmv.match LIMIT 1)"
    )
    refused(
        gmv,
        "report",
        "royalties",
        "--period",
        "2026-01",
        "--pool",
        "10",
        "--issue",
        reason="gmv match --space test",
    )
    assert conn.execute("SELECT count(*) FROM gmv.statement").fetchone() == (0,)


def test_nothing_royalty_bearing_is_not_issued(gmv, conn, db_url):
    matched_world(conn, db_url, n_training=40, n_generated=10)
    conn.execute("UPDATE gmv.license SET royalty_bearing = false")
    refused(
        gmv, "report", "royalties", "--period", "2026-01", "--pool", "10", "--issue", reason="nothing to pay"
    )


def test_reset_refuses_a_database_with_issued_statements(gmv, conn, db_url):
    matched_world(conn, db_url, n_training=40, n_generated=10)
    issue(conn, pool="10.00")
    before = ledger_fingerprint(conn), conn.execute("SELECT count(*) FROM gmv.match").fetchone()
    refused(gmv, "db", "reset", "--yes", reason="holds 1 issued royalty statements, which are never deleted")
    assert (ledger_fingerprint(conn), conn.execute("SELECT count(*) FROM gmv.match").fetchone()) == before
