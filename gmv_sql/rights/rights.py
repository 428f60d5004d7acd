"""Rights of training images and licence terms, changed without SQL (gmv rights, gmv license set).

Targets name training images by sha256, by path (a file's bytes are hashed; otherwise the path
as ingested) or by owner. Every change runs in one transaction that names the command and the OS
user in application_name; the triggers of sql/derived/25_rights.sql log each changed field into
gmv.rights_change (report.rights_change). Opt-outs take effect for matching at the next
`gmv match` (docs/ROYALTIES.md, "Rights and opt-outs").
"""

from __future__ import annotations

import datetime as dt
import getpass
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import psycopg

from gmv_sql.errors import InputError, NotFoundError
from gmv_sql.ingest.files import sha256_file
from gmv_sql.resources import query

_SHA256 = re.compile(r"^[0-9a-fA-F]{64}$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def parse_day(text: str | None) -> dt.date | None:
    """--from YYYY-MM-DD as a date (None stays None); anything else is a one-line InputError."""
    if text is None:
        return None
    try:
        if not _DATE.match(text.strip()):
            raise ValueError
        return dt.date.fromisoformat(text.strip())
    except ValueError:
        raise InputError(f"--from {text!r} is not a date; use YYYY-MM-DD, e.g. --from 2026-03-01") from None


def _actor(conn: psycopg.Connection, command: str) -> None:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no login name (some containers)
        user = str(os.getuid()) if hasattr(os, "getuid") else "unknown"
    conn.execute(query("rights", "set_actor"), {"name": f"gmv {command} (os user {user})"[:63]})


def resolve_targets(conn: psycopg.Connection, targets: Sequence[str], owners: Sequence[str]) -> list[int]:
    """Training ids named by sha256, path or owner name; an unknown one is a one-line NotFoundError."""
    ids: set[int] = set()
    by_sha: dict[str, str] = {}  # sha256 -> the target that named it
    by_uri: dict[str, str] = {}
    for target in targets:
        if _SHA256.match(target):
            by_sha[target.lower()] = target
        elif os.path.isfile(target):
            by_sha[sha256_file(target)] = target
        else:
            by_uri[os.path.abspath(os.path.expanduser(target))] = target
    if by_sha:
        found = dict(conn.execute(query("rights", "training_by_sha256"), {"sha256": list(by_sha)}).fetchall())
        missing = [t for sha, t in by_sha.items() if sha not in found]
        for target in missing:
            # A file that changed since ingest is still found by the path it was ingested from.
            uri = os.path.abspath(os.path.expanduser(target))
            if not _SHA256.match(target) and os.path.isfile(target):
                by_uri[uri] = target
            else:
                raise NotFoundError(
                    f"no training image has sha256 {target!r}; check it, or name the image by its path or --owner"
                )
        ids.update(found.values())
    if by_uri:
        found = dict(conn.execute(query("rights", "training_by_uri"), {"uri": list(by_uri)}).fetchall())
        for uri, target in by_uri.items():
            if uri not in found:
                raise NotFoundError(
                    f"{target!r} is not an ingested training image (no such sha256, file or ingested path); "
                    "give its sha256, the file it was ingested from, or --owner NAME"
                )
        ids.update(found.values())
    if owners:
        names = list(dict.fromkeys(owners))
        known = dict(conn.execute(query("rights", "owners"), {"names": names}).fetchall())
        for name in names:
            if name not in known:
                raise NotFoundError(f"no owner named {name!r}; list owners with `gmv report owners`")
        ids.update(
            r[0]
            for r in conn.execute(query("rights", "training_of_owners"), {"owner_ids": list(known.values())})
        )
    return sorted(ids)


@dataclass
class RightsResult:
    images: int  # training images named
    changed: int  # of which this command changed
    affected: dict[str, int] = field(default_factory=dict)  # space -> generated images to re-match
    spaces: list[str] = field(default_factory=list)  # matched spaces (the next gmv match to run)


def opt_out(
    conn: psycopg.Connection, targets: Sequence[str], owners: Sequence[str], *, from_day: dt.date | None
) -> RightsResult:
    """Opt the named training images out (from_day: only for outputs created on or after it, UTC)."""
    with conn.transaction():
        _actor(conn, "rights opt-out")
        ids = resolve_targets(conn, targets, owners)
        before = conn.execute(query("rights", "opt_out"), {"ids": ids, "from": from_day}).fetchall()
        changed = sum(1 for was_out, was_from in before if not was_out or was_from != from_day)
        affected = dict(conn.execute(query("rights", "affected_matches"), {"ids": ids}).fetchall())
        spaces = [r[0] for r in conn.execute(query("rights", "matched_spaces"))]
    return RightsResult(images=len(ids), changed=changed, affected=affected, spaces=spaces)


def opt_in(conn: psycopg.Connection, targets: Sequence[str], owners: Sequence[str]) -> RightsResult:
    """Opt the named training images back in: they compete for matches again at the next gmv match."""
    with conn.transaction():
        _actor(conn, "rights opt-in")
        ids = resolve_targets(conn, targets, owners)
        before = conn.execute(query("rights", "opt_in"), {"ids": ids}).fetchall()
        spaces = [r[0] for r in conn.execute(query("rights", "matched_spaces"))]
    return RightsResult(images=len(ids), changed=sum(1 for (was_out,) in before if was_out), spaces=spaces)


def set_license(
    conn: psycopg.Connection,
    name: str,
    *,
    royalty_bearing: bool | None = None,
    excluded: bool | None = None,
    url: str | None = None,
) -> list[tuple]:
    """Change a licence's terms (None keeps a value; url '' clears it); returns its row as `licenses` shows."""
    if royalty_bearing is None and excluded is None and url is None:
        raise InputError(
            f"nothing to set for licence {name!r}; give --royalty-bearing/--no-royalty-bearing, "
            "--excluded/--included or --url URL"
        )
    with conn.transaction():
        _actor(conn, "license set")
        updated = conn.execute(
            query("rights", "set_license"),
            {"name": name, "royalty_bearing": royalty_bearing, "excluded": excluded, "url": url},
        ).fetchall()
        if not updated:
            known = [r[0] for r in conn.execute(query("rights", "license_names"))]
            shown = ", ".join(repr(n) for n in known[:10]) + (" …" if len(known) > 10 else "")
            raise NotFoundError(
                f"no licence named {name!r} (known: {shown or 'none'}); licences are created by gmv ingest training"
            )
    return conn.execute(query("rights", "licenses"), {"name": name}).fetchall()
