"""Issuing statements: drafts, originals, adjustments and reversals, written once and never changed.

A month's first --issue for a space, scheme and scope freezes an original statement: per owner and
per training image, the pool's cents, the match rows they came from and their provenance. Every
later --issue for the same key is an adjustment: what the data says now minus everything issued so
far, so issued + adjustments always equal the current draft, to the cent. `gmv statement reverse`
withdraws a statement with a reversing one. Triggers (sql/derived/25_ledger.sql) refuse any UPDATE or
DELETE of issued rows.
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.rows import dict_row, namedtuple_row

from gmv_sql import __version__
from gmv_sql.db import locks
from gmv_sql.errors import ConflictError, InputError, NotFoundError
from gmv_sql.ledger import draft as ledger
from gmv_sql.ledger.draft import Computation, Key, Scope
from gmv_sql.report.common import Target, ineligible_matches
from gmv_sql.resources import query
from gmv_sql.spaces import get_space
from gmv_sql.value import calibration

ROUNDING = (
    "credit per training image rounded to 9 decimals; owners share the pool pro rata to royalty-bearing credit, "
    "largest remainder in cents (ties by owner name); an owner's cents go to its images the same way (ties by "
    "training id)"
)


@dataclass(frozen=True)
class Scheme:
    scheme_id: int
    name: str
    formula: str
    temperature: float | None


@dataclass(frozen=True)
class Pool:
    pool_id: int
    amount: decimal.Decimal
    currency: str


@dataclass
class Draft:
    """What the data says now for a key, against what its statements issued so far."""

    key: Key
    target: Target
    scheme: Scheme
    pool: Pool
    computation: Computation
    previous: list[tuple[int, str]]  # (statement_id, kind) issued for the key so far
    counts: dict[str, int]

    @property
    def kind(self) -> str:
        return "adjustment" if self.previous else "original"


@dataclass
class Issued:
    statement_id: int
    kind: str
    draft: Draft
    issued_at: dt.datetime
    issued_by: str


def get_scheme(conn: psycopg.Connection, space_id: int, scheme_id: int) -> Scheme:
    """The scheme with the temperature it has in this space (calibrated, explicit or the scheme's own)."""
    row = conn.execute(query("ledger", "scheme"), {"space_id": space_id, "scheme_id": scheme_id}).fetchone()
    return Scheme(*row)


def get_pool(conn: psycopg.Connection, key: Key) -> Pool | None:
    row = conn.execute(query("ledger", "pool"), key.params()).fetchone()
    return Pool(*row) if row else None


def record_pool(conn: psycopg.Connection, key: Key, amount: decimal.Decimal, currency: str) -> None:
    conn.execute(query("ledger", "upsert_pool"), key.params(amount=amount, currency=currency))


def _describe_key(key: Key, target: Target) -> str:
    scope = "" if key.scope.generator is None else f", {key.scope.label}"
    return f"{key.period:%Y-%m} (space {target.space!r}, scheme {target.scheme!r}{scope})"


def compute_draft(
    conn: psycopg.Connection, key: Key, target: Target, pool: decimal.Decimal | None = None
) -> Draft:
    """The draft of a key from the live match rows (call inside a transaction). pool: use this amount
    instead of the recorded one; without either, a NotFoundError naming the period."""
    recorded = get_pool(conn, key)
    if pool is not None:
        found = Pool(recorded.pool_id if recorded else 0, pool, recorded.currency if recorded else "EUR")
    elif recorded is None:
        raise NotFoundError(
            f"no revenue pool for {_describe_key(key, target)}; give --pool AMOUNT (and --currency) to record one"
        )
    else:
        found = recorded
    scheme = get_scheme(conn, key.space_id, key.scheme_id)
    if scheme.formula == "softmax_calibrated" and scheme.temperature is None:
        # Matched by other means than gmv match (which calibrates): calibrate now, as gmv value refresh
        # would; an existing temperature is never replaced.
        calibration.calibrate_missing(conn, key.space_id)
        scheme = get_scheme(conn, key.space_id, key.scheme_id)
        if scheme.temperature is None:
            raise NotFoundError(
                f"scheme {scheme.name!r} has no temperature in space {target.space!r} (no matches to "
                f"calibrate from); run gmv match --space {target.space}"
            )
    ledger.fill_live(conn, key)
    credits = ledger.credit_rows(conn, scheme.formula, scheme.temperature)
    images = ledger.live_images(conn, [t for t, _, _ in credits])
    previous = [(int(i), k) for i, k in conn.execute(query("ledger", "scope_statements"), key.params())]
    before = previous[-1][0] + 1 if previous else 0
    owners, image_lines = ledger.issued_before(conn, key, before) if previous else ({}, {})
    computation = ledger.split(found.amount, credits, images, owners, image_lines)
    with conn.cursor(row_factory=dict_row) as cur:
        counts = cur.execute(query("ledger", "row_counts")).fetchone()
    return Draft(key, target, scheme, found, computation, previous, {k: int(v) for k, v in counts.items()})


def provenance(conn: psycopg.Connection, draft: Draft) -> dict[str, Any]:
    """Everything the amounts depend on, from the rows in pg_temp.ledger_rows."""
    space = get_space(conn, draft.target.space)
    with conn.cursor(row_factory=dict_row) as cur:
        runs = cur.execute(query("ledger", "runs_used")).fetchall()
        versions = cur.execute(query("ledger", "versions")).fetchone()
    ks = [r[0] for r in conn.execute(query("ledger", "distinct_k"))]
    return {
        "space": {
            "name": space.name,
            "space_id": space.space_id,
            "model": space.model,
            "weights_sha256": space.weights_sha256,
            "preprocessing": space.preprocessing,
            "dim": space.dim,
            "storage": space.storage,
            "distance": space.distance,
            "index": {"kind": "hnsw", "m": space.hnsw_m, "ef_construction": space.hnsw_ef_construction},
        },
        "k": ks[0] if len(ks) == 1 else ks,
        "scheme": {
            "name": draft.scheme.name,
            "formula": draft.scheme.formula,
            "temperature": draft.scheme.temperature,
        },
        "scope": {"generator": draft.key.scope.generator, "run": draft.key.scope.run},
        "pool": {"amount": str(draft.pool.amount), "currency": draft.pool.currency},
        "match_runs": [
            {
                **{k: v for k, v in run.items() if k not in ("started_at", "finished_at")},
                "started_at": run["started_at"].isoformat() if run["started_at"] else None,
                "finished_at": run["finished_at"].isoformat() if run["finished_at"] else None,
            }
            for run in runs
        ],
        "counts": draft.counts,
        "previous_statements": [i for i, _ in draft.previous],
        "rounding": ROUNDING,
        "versions": {"gmv_sql": __version__, **versions},
    }


def _write(
    conn: psycopg.Connection,
    *,
    kind: str,
    key: Key,
    target: Target,
    pool: Pool,
    computation: Computation,
    reason: str | None,
    reverses: int | None,
    prov: dict[str, Any],
    store_rows: bool,
) -> tuple[int, dt.datetime, str]:
    with conn.cursor(row_factory=namedtuple_row) as cur:
        row = cur.execute(
            query("ledger", "insert_statement"),
            {
                "kind": kind,
                "period": key.period,
                "space_id": key.space_id,
                "space": target.space,
                "scheme_id": key.scheme_id,
                "scheme": target.scheme,
                "generator": key.scope.generator,
                "run": key.scope.run,
                "scope": key.scope.label,
                "pool": pool.amount,
                "amount": computation.amount,
                "currency": pool.currency,
                "reason": reason,
                "reverses": reverses,
                "provenance": json.dumps(prov, default=str),
            },
        ).fetchone()
    statement_id = row.statement_id
    with conn.cursor() as cur, cur.copy(query("ledger", "copy_lines")) as copy:
        for line in computation.lines:
            copy.write_row(
                (
                    statement_id,
                    line.owner_id,
                    line.owner,
                    line.credit,
                    line.unpaid_credit,
                    line.share,
                    line.due,
                    line.issued_before,
                    line.amount,
                )
            )
    with conn.cursor() as cur, cur.copy(query("ledger", "copy_credits")) as copy:
        for c in computation.credits:
            i = c.info
            copy.write_row(
                (
                    statement_id,
                    i.training_id,
                    i.owner_id,
                    i.sha256,
                    i.uri,
                    i.owner,
                    i.license,
                    i.royalty_bearing,
                    c.credit,
                    c.n_matches,
                    c.due,
                    c.issued_before,
                    c.amount,
                )
            )
    if store_rows:
        conn.execute(query("ledger", "store_rows"), {"statement_id": statement_id})
    return statement_id, row.issued_at, row.issued_by


def make_key(target: Target, period: dt.date, scope: Scope) -> Key:
    return Key(period=period, space_id=target.space_id, scheme_id=target.scheme_id, scope=scope)


def draft(
    conn: psycopg.Connection,
    target: Target,
    period: dt.date,
    scope: Scope,
    *,
    pool: decimal.Decimal | None = None,
    currency: str | None = None,
) -> Draft:
    """Record the pool (when given) and compute the draft: one transaction, nothing kept on error."""
    key = make_key(target, period, scope)
    with conn.transaction():
        if pool is not None:
            record_pool(conn, key, pool, currency or "EUR")
        return compute_draft(conn, key, target)


def issue(
    conn: psycopg.Connection,
    target: Target,
    period: dt.date,
    scope: Scope,
    *,
    pool: decimal.Decimal | None = None,
    currency: str | None = None,
    reason: str | None = None,
) -> Issued | Draft:
    """Issue the key's original statement, or an adjustment if it has statements already.

    Returns the Draft unchanged (nothing written) when an adjustment would change no cent.
    """
    key = make_key(target, period, scope)
    with conn.transaction():
        locks.wait_in_transaction(conn, locks.LEDGER, target.space_id)
        n = ineligible_matches(conn, target)
        if n:
            raise ConflictError(
                f"{n:,} matches in space {target.space!r} point at training images opted out or under excluded "
                f"licences; run `gmv match --space {target.space}` to re-match them, then issue"
            )
        if pool is not None:
            record_pool(conn, key, pool, currency or "EUR")
        found = compute_draft(conn, key, target)
        where = _describe_key(key, target)
        if not found.previous:
            if not found.counts["match_rows"]:
                raise NotFoundError(
                    f"nothing matched for {where}: no generated image of that month and scope has match rows; "
                    f"run `gmv match --space {target.space}` first, or check --period / --generator / --run"
                )
            if not any(line.due for line in found.computation.lines):
                raise InputError(
                    f"nothing to pay for {where}: no royalty-bearing credit or a zero pool; nothing issued"
                )
        elif not found.computation.changes_anything():
            return found
        prov = provenance(conn, found)
        statement_id, issued_at, issued_by = _write(
            conn,
            kind=found.kind,
            key=key,
            target=target,
            pool=found.pool,
            computation=found.computation,
            reason=reason,
            reverses=None,
            prov=prov,
            store_rows=True,
        )
    return Issued(statement_id, found.kind, found, issued_at, issued_by)


# ------------------------------------------------------------------------------------- reading back


@dataclass
class Stored:
    """An issued statement as stored."""

    header: dict[str, Any]
    computation: Computation

    @property
    def statement_id(self) -> int:
        return int(self.header["statement_id"])

    @property
    def key(self) -> Key:
        h = self.header
        scope = Scope(None, h["generator"], None, h["run"])
        return Key(h["period_date"], h["space_id"], h["scheme_id"], scope)


def load(conn: psycopg.Connection, statement_id: int) -> Stored:
    """The statement with its lines and credits; an unknown id is a one-line NotFoundError."""
    with conn.cursor(row_factory=dict_row) as cur:
        header = cur.execute(query("ledger", "statement"), {"statement_id": statement_id}).fetchone()
    if header is None:
        last = conn.execute(query("ledger", "last_statement_id")).fetchone()[0]
        hint = f"ids go up to {last}" if last else "none is issued yet"
        raise NotFoundError(
            f"no statement with id {statement_id} ({hint}); list them with `gmv statement list`"
        )
    comp = Computation()
    with conn.cursor(row_factory=namedtuple_row) as cur:
        for r in cur.execute(query("ledger", "lines"), {"statement_id": statement_id}):
            comp.lines.append(
                ledger.OwnerLine(
                    r.owner_id, r.owner, r.credit, r.unpaid_credit, r.share, r.due, r.issued_before, r.amount
                )
            )
        for r in cur.execute(query("ledger", "credits"), {"statement_id": statement_id}):
            info = ledger.ImageInfo(
                r.training_id, r.owner_id, r.owner, r.sha256, r.uri, r.license, r.royalty_bearing
            )
            comp.credits.append(
                ledger.CreditLine(info, r.credit, r.n_matches, r.due, r.issued_before, r.amount)
            )
    return Stored(header, comp)


def reverse(conn: psycopg.Connection, statement_id: int, reason: str | None) -> Issued:
    """Withdraw a statement by issuing one with every line negated."""
    with conn.transaction():
        original = load(conn, statement_id)
        locks.wait_in_transaction(conn, locks.LEDGER, original.header["space_id"])
        h = original.header
        if h["kind"] == "reversal":
            raise ConflictError(
                f"statement {statement_id} is itself a reversal (of {h['reverses']}); issue an adjustment instead"
            )
        already = conn.execute(query("ledger", "reversed_by"), {"statement_id": statement_id}).fetchone()
        if already:
            raise ConflictError(f"statement {statement_id} was already reversed by statement {already[0]}")
        key = original.key
        owners, images = ledger.issued_before(conn, key, 1 << 62)
        comp = Computation()
        for line in original.computation.lines:
            before = owners.get(line.owner_id, (ledger.ZERO, ""))[0]
            comp.lines.append(
                ledger.OwnerLine(
                    line.owner_id,
                    line.owner,
                    line.credit,
                    line.unpaid_credit,
                    line.share,
                    before - line.amount,
                    before,
                    -line.amount,
                )
            )
        for c in original.computation.credits:
            before = images.get((c.info.training_id, c.info.owner_id), (ledger.ZERO, c.info))[0]
            comp.credits.append(
                ledger.CreditLine(c.info, c.credit, c.n_matches, before - c.amount, before, -c.amount)
            )
        target = Target(h["space_id"], h["space"], h["scheme_id"], h["scheme"])
        pool = Pool(0, h["pool"], h["currency"])
        prov = {"reverses": statement_id, "reversed_kind": h["kind"], "versions": {"gmv_sql": __version__}}
        new_id, issued_at, issued_by = _write(
            conn,
            kind="reversal",
            key=key,
            target=target,
            pool=pool,
            computation=comp,
            reason=reason,
            reverses=statement_id,
            prov=prov,
            store_rows=False,
        )
    fake = Draft(key, target, Scheme(h["scheme_id"], h["scheme"], "", None), pool, comp, [], {})
    return Issued(new_id, "reversal", fake, issued_at, issued_by)
