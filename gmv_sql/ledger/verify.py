"""`gmv statement verify`: does an issued statement still reproduce, and what changed since?

Two checks. First, the statement is recomputed from the match rows it stored, with the scheme,
temperature, pool and image descriptions of its issue: the lines must come out equal to the cent
(anything else means stored rows were tampered with). Second, the live data is computed as a draft
of the same month and scope now and compared with what the statement says is due; differences are
explained by comparing the stored rows with the live ones (training images opted out, excluded or
deleted, generated images added, deleted or moved out of the month, images rematched, quality,
licence, owner, temperature or pool changes).
"""

from __future__ import annotations

import decimal
from dataclasses import dataclass, field

import psycopg
from psycopg.rows import dict_row

from gmv_sql.errors import NotFoundError
from gmv_sql.ledger import draft as ledger
from gmv_sql.ledger import statements
from gmv_sql.ledger.draft import Computation, Key, Scope
from gmv_sql.resources import query


@dataclass
class Verification:
    statement_id: int
    kind: str
    reproduces: bool  # the stored rows give the stored lines exactly
    mismatches: list[str] = field(default_factory=list)
    current_same: bool = True  # the live data gives the same amounts due
    differences: list[str] = field(default_factory=list)  # owners whose due changed
    changes: list[str] = field(default_factory=list)  # why, in words
    change_counts: dict[str, int] = field(default_factory=dict)
    n_rows: int = 0


def _lines_by_owner(comp: Computation) -> dict[int, tuple]:
    return {line.owner_id: (line.due, line.issued_before, line.amount) for line in comp.lines}


def _credits_by_image(comp: Computation) -> dict[tuple[int, int], tuple]:
    return {(c.info.training_id, c.info.owner_id): (c.due, c.issued_before, c.amount) for c in comp.credits}


def _compare(stored: Computation, recomputed: Computation) -> list[str]:
    out = []
    names = {line.owner_id: line.owner for line in stored.lines + recomputed.lines}
    a, b = _lines_by_owner(stored), _lines_by_owner(recomputed)
    for owner_id in sorted(set(a) | set(b)):
        if a.get(owner_id) != b.get(owner_id):
            have = a.get(owner_id, ("-",) * 3)
            want = b.get(owner_id, ("-",) * 3)
            out.append(f"owner {names[owner_id]!r}: stored amount {have[2]}, recomputed {want[2]}")
    ca, cb = _credits_by_image(stored), _credits_by_image(recomputed)
    differing = [k for k in set(ca) | set(cb) if ca.get(k) != cb.get(k)]
    if differing:
        out.append(f"{len(differing)} training-image lines differ (first: training id {min(differing)[0]})")
    return out


def _stored_images(stored: statements.Stored) -> dict[int, ledger.ImageInfo]:
    """The description of each credited image as the statement stored it."""
    images: dict[int, ledger.ImageInfo] = {}
    for c in stored.computation.credits:
        if c.n_matches > 0 or c.info.training_id not in images:
            images[c.info.training_id] = c.info
    return images


def _live_scope(conn: psycopg.Connection, scope: Scope) -> Scope | None:
    """The stored scope's ids now (None when its generator or run no longer exists)."""
    try:
        return ledger.resolve_scope(conn, scope.generator, scope.run)
    except NotFoundError:
        return None


def verify(conn: psycopg.Connection, statement_id: int) -> Verification:
    with conn.transaction():
        stored = statements.load(conn, statement_id)
        h = stored.header
        result = Verification(statement_id, h["kind"], reproduces=True)
        if h["kind"] == "reversal":
            original = statements.load(conn, h["reverses"])
            negated = {k: -v[2] for k, v in _lines_by_owner(original.computation).items()}
            mine = {k: v[2] for k, v in _lines_by_owner(stored.computation).items()}
            result.reproduces = negated == mine
            if not result.reproduces:
                result.mismatches.append(f"its lines are not the negated lines of statement {h['reverses']}")
            return result
        key = stored.key
        prov = h["provenance"]
        temperature = prov["scheme"]["temperature"]
        formula = prov["scheme"]["formula"]

        # 1. From the stored rows, as issued.
        ledger.fill_stored(conn, statement_id)
        result.n_rows = int(conn.execute(query("ledger", "row_counts")).fetchone()[1])
        credits = ledger.credit_rows(conn, formula, temperature)
        owners, images = ledger.issued_before(conn, key, statement_id)
        recomputed = ledger.split(h["pool"], credits, _stored_images(stored), owners, images)
        result.mismatches = _compare(stored.computation, recomputed)
        result.reproduces = not result.mismatches

        # 2. The live data now, against what the statement says is due.
        scope = _live_scope(conn, key.scope)
        live_key = Key(key.period, key.space_id, key.scheme_id, scope or key.scope)
        if scope is None:
            ledger.fill_stored(conn, -1)  # the scope's generator is gone: nothing is live
        else:
            ledger.fill_live(conn, live_key)
        scheme = statements.get_scheme(conn, key.space_id, key.scheme_id)
        pool = statements.get_pool(conn, live_key) if scope is not None else None
        credits_now = ledger.credit_rows(conn, scheme.formula, scheme.temperature)
        images_now = ledger.live_images(conn, [t for t, _, _ in credits_now])
        amount_now = pool.amount if pool else h["pool"]
        now = ledger.split(amount_now, credits_now, images_now)
        due_then = {line.owner_id: line.due for line in stored.computation.lines}
        due_now = {line.owner_id: line.due for line in now.lines}
        names = {line.owner_id: line.owner for line in stored.computation.lines + now.lines}
        zero = decimal.Decimal("0.00")
        for owner_id in sorted(set(due_then) | set(due_now), key=lambda o: names[o]):
            a, b = due_then.get(owner_id, zero), due_now.get(owner_id, zero)
            if a != b:
                result.differences.append(f"{names[owner_id]}: due {a} at issue, {b} now")
        image_due_then = {k: v[0] for k, v in _credits_by_image(stored.computation).items() if v[0]}
        image_due_now = {k: v[0] for k, v in _credits_by_image(now).items() if v[0]}
        result.current_same = not result.differences and image_due_then == image_due_now

        with conn.cursor(row_factory=dict_row) as cur:
            counts = cur.execute(query("ledger", "changes"), {"statement_id": statement_id}).fetchone()
        result.change_counts = {k: int(v) for k, v in counts.items()}
        words = {
            "opted_out": "of the training images in its matches opted out",
            "excluded": "of the training images in its matches now under excluded licences",
            "training_deleted": "of the training images in its matches deleted",
            "generated_added": "generated images added (matched in the month and scope since)",
            "generated_deleted": "generated images deleted",
            "generated_left": "generated images no longer in the month or scope (created_at or run changed) or unmatched",
            "rematched": "generated images rematched (their top-k changed)",
            "quality_changed": "generated images with a changed quality",
            "royalty_changed": "training images whose licence became (or stopped being) royalty-bearing",
            "owner_changed": "training images that changed owner",
        }
        result.changes = [
            f"{result.change_counts[k]:,} {text}" for k, text in words.items() if result.change_counts[k]
        ]
        if scheme.temperature != temperature:
            result.changes.append(
                f"temperature of scheme {scheme.name!r} changed from {temperature} to {scheme.temperature}"
            )
        if scheme.formula != formula:
            result.changes.append(
                f"formula of scheme {scheme.name!r} changed from {formula} to {scheme.formula}"
            )
        if pool is None:
            result.changes.append("the revenue pool of the month and scope was deleted")
        elif pool.amount != h["pool"]:
            result.changes.append(f"the pool changed from {h['pool']} to {pool.amount} {pool.currency}")
        if scope is None:
            result.changes.append(f"the scope's generator or run ({key.scope.label}) no longer exists")
        return result
