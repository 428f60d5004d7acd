"""`gmv demo --quick` end to end (a real process, the real pipeline), and its database safety rules."""

from __future__ import annotations

import csv
import decimal
import json

import pytest

from gmv_sql.app import App
from gmv_sql.demo.steps import use_external_database
from gmv_sql.errors import ConfigError
from tests.factories import seed

PROMISED = (
    "evidence.html",
    "value_distribution.png",
    "owner_credit.png",
    "royalties.csv",
    "statement_1.json",
    "statement_2.json",
    "training.csv",
    "generated.csv",
    "members.csv",
    "nonmembers.csv",
    "summary.json",
)


@pytest.mark.slow
@pytest.mark.torch
@pytest.mark.timeout(1500)  # minutes on a quiet 2-core machine; far longer when it is shared
def test_quick_demo_values_members_above_nonmembers(gmv, tmp_path, conn):
    output = tmp_path / "demo"
    proc = gmv.run("demo", "--quick", "--output", output, timeout=1400)
    out = proc.stdout

    # Every promised file exists, is non-empty and is named in the output.
    for name in PROMISED:
        path = output / name
        assert path.is_file() and path.stat().st_size > 0, name
        assert str(path) in out, name
    assert len(list((output / "data" / "generated").glob("*.png"))) >= 500

    # The paper's membership result: members valued above held-out non-members, p < 0.01.
    summary = json.loads((output / "summary.json").read_text())
    membership = summary["membership"]
    print("quick demo membership:", membership, "timings:", summary["timings_s"])
    assert membership["mean_members"] > membership["mean_nonmembers"]
    assert membership["p_value"] < 0.01
    assert membership["auc"] > 0.5
    assert "Membership test" in out and "p-value (two-sided)" in out and "AUC" in out
    # The sweep's summary line: the signal across schemes, temperatures and k.
    assert "Robustness (gmv audit membership --sweep): sweep of " in out
    assert membership["sweep_summary"].startswith("sweep of ")
    # Sturdier than Welch alone: a permutation p-value and a bootstrap interval of the AUC.
    assert membership["permutation_p_value"] < 0.01 and "permutation p-value" in out
    assert (
        membership["auc_ci_low"] > 0.5
        and membership["auc_ci_low"] <= membership["auc"] <= membership["auc_ci_high"]
    )

    # The royalty statement: printed, and its CSV adds up to the pool exactly; royalty-free
    # licences earn credit but no money.
    assert "Royalty statement 2026-01, pool 10000.00 EUR" in out
    with open(output / "royalties.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert sum(decimal.Decimal(r["amount"]) for r in rows) == decimal.Decimal("10000.00")
    unpaid = [r for r in rows if decimal.Decimal(r["amount"]) == 0]
    assert unpaid and all(decimal.Decimal(r["unpaid_credit"]) > 0 for r in unpaid)

    # It ran in the database it was given (the test database), through the pipeline's tables.
    counts = conn.execute(
        "SELECT (SELECT count(*) FROM gmv.training_image), (SELECT count(*) FROM gmv.generated_image),"
        " (SELECT count(*) FROM gmv.training_image WHERE opted_out),"
        " (SELECT count(*) FROM gmv.match m JOIN gmv.training_image t USING (training_id) WHERE t.opted_out)"
    ).fetchone()
    assert counts[0] == summary["counts"]["members"] + summary["counts"]["nonmembers"]
    assert counts[1] == summary["counts"]["generated"]
    # One image opted out at ingest, then all of one owner's (the ledger step); none is matched.
    assert counts[2] > 1 and counts[3] == 0

    # The ledger: the month issued, then an adjustment after the opt-out; the issued month unchanged.
    assert "Issued statement 1 (2026-01, pool 10000.00 EUR), unchanged after the opt-out:" in out
    assert "Adjustment statement 2 (reason: " in out and "statement 1 reproduces exactly" in out
    kinds = conn.execute("SELECT statement_id, kind, amount FROM gmv.statement ORDER BY 1").fetchall()
    assert kinds == [(1, "original", decimal.Decimal("10000.00")), (2, "adjustment", decimal.Decimal("0.00"))]
    first = json.loads((output / "statement_1.json").read_text())
    assert {r["owner"]: r["amount"] for r in first["lines"]} == {r["owner"]: r["amount"] for r in rows}
    adjustment = json.loads((output / "statement_2.json").read_text())
    assert any(decimal.Decimal(r["amount"]) < 0 for r in adjustment["lines"])
    # efficientnet-lite0 at the demo's small input size (docs/DEMO.md: faster, and a clearer signal).
    assert conn.execute(
        "SELECT model, preprocessing ->> 'center_crop' FROM gmv.embedding_space WHERE name = 'digits-effnet'"
    ).fetchall() == [("efficientnet-lite0", "64")]
    # Near-copies, in the flip-invariant pixels space: counted, printed and in summary.json.
    near = summary["near_copies"]
    assert near["space"] == "digits-pixels" and near["threshold"] > 0 and 0 <= near["generated"] <= near["of"]
    assert f"Near-copies: {near['generated']} of {near['of']} generated digits" in out
    # Class consistency: matches show the digit asked for far above chance (10 balanced classes).
    consistency = summary["consistency"]
    assert consistency["attribute"] == "digit" and 0.05 < consistency["chance"] < 0.15
    assert consistency["rows"][-1]["share"] > consistency["chance"] and "Class consistency" in out

    # The evidence page is one self-contained file.
    page = (output / "evidence.html").read_text(encoding="utf-8")
    assert page.count('class="generated"') == 12 and 'src="data:image/png;base64,' in page
    # One count everywhere: the page's value distribution counts the images the audit tested.
    assert f"non-member n = {membership['n_nonmembers']} (mean {membership['mean_nonmembers']:.4g})" in page
    assert f"member n = {membership['n_members']} (mean {membership['mean_members']:.4g})" in page

    # Running again into the same (now full) database is refused before anything is touched.
    again = gmv.run("demo", "--quick", "--output", output, check=False)
    assert again.returncode == 1
    assert "already holds gmv data" in again.stderr and "--reset" in again.stderr
    assert (output / "summary.json").is_file()


def test_demo_refuses_a_foreign_output_folder(gmv, tmp_path):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "thesis.tex").write_text("precious")
    result = gmv("demo", "--quick", "--output", folder, ok=False)
    assert result.exit_code == 1 and "other files in it" in result.output
    assert (folder / "thesis.tex").read_text() == "precious"


def test_reset_empties_an_external_database(db_url, conn):
    seed(conn, n_training=20, n_generated=5, dim=4)
    app = App(cli_database_url=db_url)
    with pytest.raises(ConfigError, match="already holds gmv data"):
        use_external_database(app, reset=False)
    assert conn.execute("SELECT count(*) FROM gmv.training_image").fetchone()[0] == 20

    use_external_database(app, reset=True)
    for table in ("training_image", "generated_image", "owner", "license", "embedding_space", "match"):
        assert conn.execute(f"SELECT count(*) FROM gmv.{table}").fetchone()[0] == 0, table
    leftover = conn.execute(
        "SELECT count(*) FROM pg_tables WHERE schemaname = 'gmv' AND tablename ~ '^(training|generated)_embedding_'"
    ).fetchone()[0]
    assert leftover == 0
    # The schemes (schema data, not user data) stay.
    assert conn.execute("SELECT count(*) FROM gmv.valuation_scheme").fetchone()[0] == 5
