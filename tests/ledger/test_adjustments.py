"""Corrections are adjustments: an issued statement reads the same row for row after every kind of data
change; the adjustment is the draft now minus what was issued, to the cent; verify names the change."""

from __future__ import annotations

import numpy as np
import pytest

from gmv_sql.ledger import statements
from gmv_sql.ledger.verify import verify
from tests.factories import refused
from tests.ledger import world as w
from tests.ledger.world import D

# (operation, scheme it matters for, what verify must say)
CHANGES = {
    "opt_out": (w.opt_out, "rank_linear", "training images in its matches opted out"),
    "opt_in": (w.opt_in, "rank_linear", "generated images rematched"),
    "new_training_images": (w.add_training, "rank_linear", "generated images rematched"),
    "deleted_training_image": (w.delete_training, "rank_linear", "training images in its matches deleted"),
    "backdated_generated_image": (w.backdate_generated, "rank_linear", "generated images added"),
    "temperature": (
        w.change_temperature,
        "softmax_distance",
        "temperature of scheme 'softmax_distance' changed",
    ),
    "quality": (w.change_quality, "rank_linear", "generated images with a changed quality"),
}


@pytest.mark.parametrize("change", list(CHANGES))
def test_issued_statement_is_unchanged_and_adjustment_is_draft_minus_issued(conn, db_url, change):
    operation, scheme, words = CHANGES[change]
    rng = np.random.default_rng(11)
    opted = np.zeros(120, bool)
    opted[::17] = True  # a few opted out from the start, so that opting in has something to do
    world = w.matched_world(conn, db_url, opted_out=opted)
    if scheme == "softmax_distance":
        conn.execute("UPDATE gmv.valuation_scheme SET temperature = 0.01 WHERE name = 'softmax_distance'")
    first = w.issue(conn, pool="1000.00", scheme=scheme)
    frozen = w.statement_rows(conn, first.statement_id)
    assert "reproduces" not in str(frozen) and verify(conn, first.statement_id).current_same

    for _ in range(2):  # the change, twice, so a rematch or a single image cannot be a no-op by chance
        operation(conn, world, rng)
    assert w.statement_rows(conn, first.statement_id) == frozen

    result = verify(conn, first.statement_id)
    assert result.reproduces and not result.current_same
    assert any(words in text for text in result.changes), result.changes

    now = w.draft(conn, scheme=scheme)
    issued = w.issued_by_owner(conn, scheme=scheme)
    adjustment = w.issue(conn, scheme=scheme, reason=change)
    assert isinstance(adjustment, statements.Issued) and adjustment.kind == "adjustment"
    lines = {
        owner_id: amount
        for owner_id, amount in conn.execute(
            "SELECT owner_id, amount FROM gmv.statement_line WHERE statement_id = %s",
            (adjustment.statement_id,),
        )
    }
    expected = {
        line.owner_id: line.due - issued.get(line.owner_id, D("0.00")) for line in now.computation.lines
    } | {o: -a for o, a in issued.items() if o not in {line.owner_id for line in now.computation.lines}}
    assert lines == expected
    assert sum(lines.values()) == D("0.00")  # unchanged pool
    assert conn.execute(
        "SELECT reason, kind FROM gmv.statement WHERE statement_id = %s", (adjustment.statement_id,)
    ).fetchone() == (change, "adjustment")
    assert w.statement_rows(conn, first.statement_id) == frozen
    w.check_invariants(conn, scheme=scheme)
    assert verify(conn, adjustment.statement_id).current_same


def test_new_pool_adjusts_by_the_difference_and_nothing_changed_issues_nothing(conn, db_url, gmv):
    w.matched_world(conn, db_url)
    w.issue(conn, pool="1000.00")
    again = w.issue(conn)
    assert isinstance(again, statements.Draft)  # nothing to adjust: nothing written
    assert conn.execute("SELECT count(*) FROM gmv.statement").fetchone() == (1,)
    out = gmv("report", "royalties", "--period", "2026-01", "--issue")
    assert "nothing to adjust" in out.stderr
    raised = w.issue(conn, pool="1250.55", reason="late revenue")
    assert raised.kind == "adjustment" and raised.draft.computation.amount == D("250.55")
    w.check_invariants(conn)
    result = verify(conn, 1)
    assert result.reproduces and "the pool changed from 1000.00 to 1250.55 EUR" in result.changes


def test_reversal_withdraws_and_the_next_issue_pays_again(conn, db_url, gmv):
    w.matched_world(conn, db_url)
    w.issue(conn, pool="300.00")
    out = gmv("statement", "reverse", "1", "--reason", "wrong pool")
    assert "issued statement 2 (reversal of 1): -300.00 EUR" in out.stderr
    assert w.issued_by_owner(conn) == {}
    assert conn.execute(
        "SELECT kind, reverses, amount FROM gmv.statement WHERE statement_id = 2"
    ).fetchone() == (
        "reversal",
        1,
        D("-300.00"),
    )
    refused(gmv, "statement", "reverse", "1", "--reason", "x", reason="already reversed by statement 2")
    refused(gmv, "statement", "reverse", "2", "--reason", "x", reason="is itself a reversal")
    assert "reproduces exactly: it negates" in gmv("statement", "verify", "2").stdout
    repaid = w.issue(conn, pool="300.00")
    assert repaid.kind == "adjustment" and repaid.draft.computation.amount == D("300.00")
    w.check_invariants(conn)


def test_verify_says_reproduces_exactly_and_catches_tampering(conn, db_url, gmv):
    w.matched_world(conn, db_url)
    w.issue(conn, pool="99.99")
    out = gmv("statement", "verify", "1").stdout
    assert "statement 1 reproduces exactly: from its 200 stored match rows" in out
    # A superuser can switch the trigger off; verify still notices.
    conn.execute("ALTER TABLE gmv.statement_match DISABLE TRIGGER frozen")
    conn.execute(
        "UPDATE gmv.statement_match SET quality = quality * 5 WHERE generated_id = (SELECT min(generated_id) FROM gmv.statement_match)"
    )
    conn.execute("ALTER TABLE gmv.statement_match ENABLE TRIGGER frozen")
    refused(gmv, "statement", "verify", "1", reason="does NOT reproduce from its stored rows")


def test_verify_cli_lists_changes_and_differences(conn, db_url, gmv):
    world = w.matched_world(conn, db_url)
    w.issue(conn, pool="500.00")
    rng = np.random.default_rng(3)
    w.opt_out(conn, world, rng)
    w.backdate_generated(conn, world, rng, n=3)
    out = gmv("statement", "verify", "1").stdout
    assert "reproduces exactly from its 200 stored match rows; the data today gives other amounts" in out
    assert "1 of the training images in its matches opted out" in out and "3 generated images added" in out
    assert "due" in out and "gmv report royalties --period PERIOD --issue" in out
