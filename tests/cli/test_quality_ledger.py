"""A changed quality weight q_j changes drafts and never an issued statement.

Needs the ledger (issue 12: gmv.statement…, tests/ledger/world.py); skipped until it is merged."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("gmv_sql.ledger")
world_module = pytest.importorskip("tests.ledger.world")


def test_a_changed_quality_changes_the_draft_and_never_an_issued_statement(conn, db_url, gmv, tmp_path):
    world_module.matched_world(conn, db_url)
    world_module.issue(conn, pool="1000.00")
    issued = world_module.ledger_fingerprint(conn)
    args = ("report", "royalties", "--period", "2026-01", "--pool", "1000.00", "--format", "json")
    before = {r["owner"]: r["amount"] for r in json.loads(gmv(*args).stdout)}

    # Weight up every generated image whose nearest match belongs to the first owner.
    rows = conn.execute(
        "SELECT g.sha256 FROM gmv.match AS m JOIN gmv.generated_image AS g USING (generated_id)"
        " JOIN gmv.training_image AS t USING (training_id) JOIN gmv.owner AS o USING (owner_id)"
        " WHERE m.rank = 1 AND o.name = 'owner-0'"
    ).fetchall()
    assert rows
    file = tmp_path / "quality.csv"
    file.write_text("sha256,quality\n" + "".join(f"{sha},25\n" for (sha,) in rows))
    gmv("quality", "import", file)

    after = {r["owner"]: r["amount"] for r in json.loads(gmv(*args).stdout)}
    assert after["owner-0"] > before["owner-0"]  # the draft follows q_j
    assert world_module.ledger_fingerprint(conn) == issued  # the issued statement does not
