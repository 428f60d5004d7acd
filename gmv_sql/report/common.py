"""What report commands share: picking the space and scheme, and noticing stale credit views."""

from __future__ import annotations

from dataclasses import dataclass

import psycopg

from gmv_sql.errors import NotFoundError
from gmv_sql.resources import query


@dataclass(frozen=True)
class Target:
    """The embedding space and valuation scheme a report is about."""

    space_id: int
    space: str
    scheme_id: int
    scheme: str


def resolve_target(conn: psycopg.Connection, space: str | None = None, scheme: str | None = None) -> Target:
    """The named space (default: the only one) and scheme (default: the default scheme, rank_linear)."""
    spaces = conn.execute(query("report", "spaces")).fetchall()
    names = [name for _, name, _ in spaces]
    if space is None:
        if len(spaces) == 1:
            space_id, space = spaces[0][0], spaces[0][1]
        elif not spaces:
            raise NotFoundError("no embedding space yet; run `gmv embed --space NAME` and `gmv match --space NAME` first")
        else:
            raise NotFoundError(f"several embedding spaces ({', '.join(names)}); pick one with --space")
    else:
        found = [sid for sid, name, _ in spaces if name == space]
        if not found:
            raise NotFoundError(f"no embedding space {space!r} (known: {', '.join(names) or 'none yet'}); pick one with --space")
        space_id = found[0]
    if scheme is None:
        row = conn.execute(query("report", "default_scheme")).fetchone()
    else:
        row = conn.execute(query("report", "scheme_by_name"), {"name": scheme}).fetchone()
    if row is None:
        known = ", ".join(r[0] for r in conn.execute(query("report", "scheme_names")))
        raise NotFoundError(f"no valuation scheme {scheme!r} (known: {known}); pick one with --scheme")
    return Target(space_id=space_id, space=space, scheme_id=row[0], scheme=row[1])


def credit_is_stale(conn: psycopg.Connection, target: Target) -> bool:
    """True when gmv.match changed since the credit views were last refreshed."""
    return bool(
        conn.execute(query("report", "credit_is_stale"), {"space_id": target.space_id, "scheme_id": target.scheme_id})
        .fetchone()[0]
    )


def ineligible_matches(conn: psycopg.Connection, target: Target) -> int:
    """Match rows that point at training images opted out (or licences excluded) since matching."""
    return int(conn.execute(query("report", "ineligible_matches"), {"space_id": target.space_id}).fetchone()[0])
