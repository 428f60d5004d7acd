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


def credit_is_stale(conn: psycopg.Connection, target: Target) -> bool:
    """True when gmv.match changed since the credit views were last refreshed."""
    return bool(
        conn.execute(
            query("report", "credit_is_stale"), {"space_id": target.space_id, "scheme_id": target.scheme_id}
        ).fetchone()[0]
    )


def ineligible_matches(conn: psycopg.Connection, target: Target) -> int:
    """Match rows that point at training images opted out (or licences excluded) since matching."""
    return int(
        conn.execute(query("report", "ineligible_matches"), {"space_id": target.space_id}).fetchone()[0]
    )
