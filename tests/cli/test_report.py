"""`gmv value refresh` and `gmv report royalties|owners|top|evidence` end to end."""

from __future__ import annotations

import csv
import decimal
import io
import json

import pytest

from tests.factories import DEFAULT_PERIOD, seed


@pytest.fixture
def matched(gmv, conn):
    """60 training images of 3 owners (one licence pays no royalties), 20 generated, matched with k=5."""
    world = seed(
        conn,
        n_training=60,
        n_generated=20,
        dim=8,
        owners=3,
        quality="random",
        licenses=(("paid", True, False), ("paid-too", True, False), ("free", False, False)),
    )
    gmv("match", "--space", "test", "--k", "5", "--exact")
    return world


def test_value_refresh_prints_totals(gmv, matched):
    rows = json.loads(gmv("value", "refresh", "--format", "json").stdout)
    assert {r["scheme"] for r in rows} == {
        "rank_linear",
        "reciprocal_rank",
        "softmax_distance",
        "softmax_calibrated",
        "uniform",
    }
    for r in rows:
        assert r["space"] == "test" and float(r["total_credit"]) == pytest.approx(matched["quality"].sum())


def test_royalties_add_up_and_are_recorded(gmv, conn, matched):
    result = gmv(
        "report",
        "royalties",
        "--period",
        DEFAULT_PERIOD,
        "--pool",
        "1000.01",
        "--currency",
        "usd",
        "--format",
        "json",
    )
    rows = json.loads(result.stdout)
    assert {r["owner"] for r in rows} == set(matched["owner_names"])
    assert sum(decimal.Decimal(r["amount"]) for r in rows) == decimal.Decimal("1000.01")
    assert all(r["currency"] == "USD" and r["period"] == DEFAULT_PERIOD for r in rows)
    assert any(float(r["unpaid_credit"]) > 0 for r in rows)  # the "free" licence's credit is shown
    assert conn.execute("SELECT amount, currency FROM gmv.revenue_pool").fetchone() == (
        decimal.Decimal("1000.01"),
        "USD",
    )
    # The refresh inside royalties made report views current.
    assert "note:" not in gmv("report", "owners").stderr


@pytest.mark.parametrize(
    ("args", "text"),
    [
        (("--period", "2026-1", "--pool", "10"), "period '2026-1' is not a month"),
        (("--period", DEFAULT_PERIOD, "--pool", "-5"), "pool '-5' is negative"),
        (("--period", DEFAULT_PERIOD, "--pool", "10", "--currency", "euro"), "currency 'euro'"),
        (("--period", DEFAULT_PERIOD, "--pool", "10", "--space", "nope"), "no embedding space 'nope'"),
        (("--period", DEFAULT_PERIOD, "--pool", "10", "--scheme", "nope"), "no valuation scheme 'nope'"),
    ],
)
def test_royalties_bad_input_writes_nothing(gmv, conn, matched, args, text):
    result = gmv("report", "royalties", *args, ok=False)
    lines = result.output.strip().splitlines()
    assert result.exit_code == 1 and len(lines) == 1 and text in lines[0], result.output
    assert conn.execute("SELECT count(*) FROM gmv.revenue_pool").fetchone() == (0,)


def test_default_space_must_be_unambiguous(gmv, conn, matched):
    seed(conn, n_training=10, n_generated=2, dim=4, space="other", seed=1)
    result = gmv("report", "owners", ok=False)
    assert "several embedding spaces (test, other); pick one with --space" in result.output
    gmv("report", "owners", "--space", "test")


def test_owners_and_top(gmv, matched):
    # Matches are newer than the credit: a cheap refresh runs first, and says so.
    first = gmv("report", "owners", "--format", "csv")
    assert "note: refreshed the valuation first (recomputed" in first.stderr
    assert "refreshed" not in gmv("report", "owners").stderr
    owners = list(csv.DictReader(io.StringIO(first.stdout)))
    assert [o["owner"] for o in sorted(owners, key=lambda o: o["owner"])] == matched["owner_names"]
    assert sum(float(o["value"]) for o in owners) == pytest.approx(matched["quality"].sum())
    values = [float(o["value"]) for o in owners]
    assert values == sorted(values, reverse=True)
    top = json.loads(gmv("report", "top", "--limit", "3", "--scheme", "uniform", "--format", "json").stdout)
    assert len(top) == 3 and top[0]["value"] >= top[1]["value"] >= top[2]["value"]
    assert set(top[0]) >= {"training_id", "uri", "owner", "license", "value", "n_matches", "share"}
    table = gmv("report", "top", "--limit", "2").stdout.splitlines()
    assert table[0].split()[:3] == ["training_id", "uri", "owner"] and len(table) == 4


def test_evidence(gmv, conn, matched):
    g = int(matched["generated_ids"][0])
    rows = json.loads(gmv("report", "evidence", str(g), "--format", "json").stdout)
    assert [r["rank"] for r in rows] == [1, 2, 3, 4, 5]
    assert sum(r["weight"] for r in rows) == pytest.approx(1.0)
    assert rows[0]["distance"] <= rows[-1]["distance"]
    stored = [
        r[0]
        for r in conn.execute("SELECT training_id FROM gmv.match WHERE generated_id = %s ORDER BY rank", (g,))
    ]
    assert [r["training_id"] for r in rows] == stored
    missing = gmv("report", "evidence", "999999", ok=False)
    assert "no generated image with id 999999" in missing.output
    assert "GENERATED_ID" in gmv("report", "evidence", ok=False).output


def test_evidence_of_unmatched_image_says_run_match(gmv, conn):
    world = seed(conn, n_training=10, n_generated=2, dim=4)
    result = gmv("report", "evidence", str(int(world["generated_ids"][0])), ok=False)
    assert "has no matches in space 'test'; run `gmv match --space test`" in result.output


def test_evidence_html_calls_the_page_writer(gmv, matched, tmp_path):
    import gmv_sql.report.evidence_html  # noqa: F401  (the project's own module: a broken import fails, not skips)

    path = tmp_path / "evidence.html"
    out = gmv("report", "evidence", "--html", str(path), "--sample", "3").stdout
    assert path.exists() and str(path) in out


def test_full_pipeline_as_processes(gmv, conn):
    """Real subprocesses: match, refresh, royalties."""
    seed(conn, n_training=40, n_generated=9, dim=4, owners=3)
    gmv.run("match", "--space", "test", "--k", "3")
    gmv.run("value", "refresh")
    out = gmv.run(
        "report", "royalties", "--period", DEFAULT_PERIOD, "--pool", "100", "--format", "csv"
    ).stdout
    rows = list(csv.DictReader(io.StringIO(out)))
    assert sum(decimal.Decimal(r["amount"]) for r in rows) == decimal.Decimal("100.00")


def test_reports_warn_about_matches_of_opted_out_images(gmv, conn, matched):
    gmv("value", "refresh")
    assert "note:" not in gmv("report", "top").stderr
    victim = conn.execute("SELECT training_id FROM gmv.match WHERE rank = 1 LIMIT 1").fetchone()[0]
    conn.execute("UPDATE gmv.training_image SET opted_out = true WHERE training_id = %s", (victim,))
    assert "opted out or under excluded licences" in gmv("report", "top").stderr
    assert (
        "run `gmv match --space test`"
        in gmv("report", "royalties", "--period", DEFAULT_PERIOD, "--pool", "1").stderr
    )
    gmv("match", "--space", "test")
    gmv("value", "refresh")
    assert "note:" not in gmv("report", "owners").stderr
