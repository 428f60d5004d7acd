"""Report commands bring the valuation up to date first when that is cheap; otherwise they say that it
is older than the matches, and by how many matches."""

from __future__ import annotations

from contextlib import contextmanager

from gmv_sql.db import locks
from tests.factories import seed


@contextmanager
def refresh_running(conn):
    """Hold the refresh's advisory lock, as a long `gmv value refresh` in another session does."""
    conn.execute("SELECT pg_advisory_lock(%s, 0)", (locks.CREDIT,))
    try:
        yield
    finally:
        conn.execute("SELECT pg_advisory_unlock(%s, 0)", (locks.CREDIT,))


def test_report_top_refreshes_first_when_cheap(gmv, conn):
    # As a new user does it: match, then straight to the report.
    seed(conn, n_training=40, n_generated=12, dim=8, with_matches=False)
    gmv("match", "--space", "test", "--k", "5")
    first = gmv("report", "top", "--format", "csv")
    assert "note: refreshed the valuation first (recomputed" in first.stderr
    assert ",0.0," not in first.stdout.splitlines()[1]  # the top image has credit
    assert "note" not in gmv("report", "top").stderr


def test_report_top_says_how_many_matches_the_valuation_lacks(gmv, conn):
    seed(conn, n_training=40, n_generated=12, dim=8, with_matches=False)
    gmv("match", "--space", "test", "--k", "5")
    with refresh_running(conn):
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
    with refresh_running(conn):
        owners = gmv("report", "owners")
    assert "it lacks 5 of 60 matches; run `gmv value refresh`" in owners.stderr

    # Matches deleted since the refresh.
    gmv("value", "refresh")
    conn.execute("DELETE FROM gmv.match WHERE generated_id IN (SELECT generated_id FROM gmv.match LIMIT 1)")
    with refresh_running(conn):
        assert "it still counts 5 matches deleted since" in gmv("report", "top").stderr

    # Same count of matches, other quality: still older than the data.
    gmv("value", "refresh")
    conn.execute("UPDATE gmv.generated_image SET quality = 2")
    with refresh_running(conn):
        assert (
            "is older than changes to its matches or to generated images' quality"
            in gmv("report", "top").stderr
        )
    assert "refreshed the valuation first" in gmv("report", "top").stderr
