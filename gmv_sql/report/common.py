"""What report commands share: picking the space and scheme, and noticing stale credit views."""

from __future__ import annotations

from dataclasses import dataclass

import psycopg

from gmv_sql.errors import NotFoundError
from gmv_sql.resources import query
from gmv_sql.spaces import get_space


@dataclass(frozen=True)
class Target:
    """The embedding space and valuation scheme a report is about."""

    space_id: int
    space: str
    scheme_id: int
    scheme: str


def resolve_target(conn: psycopg.Connection, space: str | None = None, scheme: str | None = None) -> Target:
    """The named space (default: the only one) and scheme (default: the space's default scheme)."""
    found = get_space(conn, space)
    if scheme is None:
        row = conn.execute(query("report", "default_scheme"), {"space_id": found.space_id}).fetchone()
    else:
        row = conn.execute(query("report", "scheme_by_name"), {"name": scheme}).fetchone()
    if row is None:
        known = ", ".join(r[0] for r in conn.execute(query("report", "scheme_names")))
        raise NotFoundError(f"no valuation scheme {scheme!r} (known: {known}); pick one with --scheme")
    return Target(space_id=found.space_id, space=found.name, scheme_id=row[0], scheme=row[1])


def credit_marks(conn: psycopg.Connection, target: Target) -> int:
    """Changes to the space's credit since the last refresh (marks in gmv.credit_dirty)."""
    return int(conn.execute(query("value", "credit_marks"), {"space_id": target.space_id}).fetchone()[0])


def refresh_or_note(conn: psycopg.Connection, target: Target) -> str | None:
    """Bring the valuation up to date first when that is cheap; else a note saying how far behind it is.

    Cheap: the changed slices hold at most REFRESH_FIRST_MAX_MATCHES match rows and no other refresh
    is running. Returns a one-line note for stderr, or None when the valuation was current.
    """
    from gmv_sql.value.refresh import refresh_if_cheap

    if not credit_marks(conn, target) and not conn.execute(query("value", "image_marks")).fetchone()[0]:
        return None
    result = refresh_if_cheap(conn)
    if result is not None:
        return f"note: refreshed the valuation first ({result.describe()})"
    return stale_credit_note(conn, target)


def credit_lag(conn: psycopg.Connection, target: Target) -> tuple[int, int]:
    """(match rows of the space now, match rows the credit views counted at their last refresh)."""
    row = conn.execute(
        query("report", "credit_lag"), {"space_id": target.space_id, "scheme_id": target.scheme_id}
    ).fetchone()
    return int(row[0]), int(row[1])


def stale_credit_note(conn: psycopg.Connection, target: Target) -> str | None:
    """A one-line note when the valuation is older than the matches (how many it lacks), else None."""
    matches, credited = credit_lag(conn, target)
    if matches == credited:
        if credit_marks(conn, target):
            return (
                f"note: the valuation of space {target.space!r} is older than changes to its matches or to "
                "generated images' quality or dates; run `gmv value refresh` for current values"
            )
        return None
    where = f"the valuation of space {target.space!r} is older than its matches"
    if credited == 0:
        what = f"none of its {matches:,} matches is valued yet (every value shows 0)"
    elif matches > credited:
        what = f"it lacks {matches - credited:,} of {matches:,} matches"
    else:
        what = f"it still counts {credited - matches:,} matches deleted since (re-matched or images removed)"
    return f"note: {where}: {what}; run `gmv value refresh` for current values"


def ineligible_matches(conn: psycopg.Connection, target: Target) -> int:
    """Match rows that point at training images opted out (or licences excluded) since matching."""
    return int(
        conn.execute(query("report", "ineligible_matches"), {"space_id": target.space_id}).fetchone()[0]
    )
