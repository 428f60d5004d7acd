"""Report commands say when the valuation is older than the matches, and by how many matches."""

from __future__ import annotations

from tests.factories import seed


def test_report_top_says_how_many_matches_the_valuation_lacks(gmv, conn):
    # As a new user does it: match, then straight to the report.
    seed(conn, n_training=40, n_generated=12, dim=8, with_matches=False)
    gmv("match", "--space", "test", "--k", "5")
    first = gmv("report", "top")
    assert (
        "note: the valuation of space 'test' is older than its matches: none of its 60 matches is valued yet "
        "(every value shows 0); run `gmv value refresh` for current values"
    ) in first.stderr
    gmv("value", "refresh")
    assert "older than its matches" not in gmv("report", "top").stderr
    assert "older than its matches" not in gmv("report", "owners").stderr

    # More generated images matched after the refresh: the note counts the missing matches.
    conn.execute("DELETE FROM gmv.match WHERE generated_id IN (SELECT generated_id FROM gmv.match LIMIT 1)")
    gmv("value", "refresh")
    gmv("match", "--space", "test")
    owners = gmv("report", "owners")
    assert "it lacks 5 of 60 matches; run `gmv value refresh`" in owners.stderr

    # Matches deleted since the refresh.
    gmv("value", "refresh")
    conn.execute("DELETE FROM gmv.match WHERE generated_id IN (SELECT generated_id FROM gmv.match LIMIT 1)")
    assert "it still counts 5 matches deleted since" in gmv("report", "top").stderr
