"""What a month's pool pays each owner and each training image, computed one way for drafts, issues and
verification: match rows -> credit per training image (SQL, sql/queries/ledger.sql) -> cents
(gmv_sql/ledger/split.py) -> minus what earlier statements of the same month and scope issued.

The rows come from pg_temp.ledger_rows, filled from the live gmv.match (fill_live) or from a
statement's stored rows (fill_stored); callers work inside one transaction (the table is dropped on
commit).
"""

from __future__ import annotations

import datetime as dt
import decimal
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

import psycopg
from psycopg.rows import namedtuple_row

from gmv_sql.errors import NotFoundError
from gmv_sql.ledger.split import from_cents, largest_remainder, to_cents
from gmv_sql.resources import query

ZERO = decimal.Decimal("0.00")


@dataclass(frozen=True)
class Scope:
    """Whose outputs a pool pays for: every generator, one generator, or one run of it."""

    generator_id: int | None = None
    generator: str | None = None
    run_id: int | None = None
    run: str | None = None

    @property
    def label(self) -> str:
        if self.generator is None:
            return "all"
        if self.run is None:
            return f"generator {self.generator}"
        return f"generator {self.generator} run {self.run}"


def resolve_scope(conn: psycopg.Connection, generator: str | None, run: str | None) -> Scope:
    """The scope named by --generator / --run; unknown names are a one-line NotFoundError."""
    if generator is None:
        if run is not None:
            raise NotFoundError(f"--run {run!r} needs --generator NAME (runs are named within a generator)")
        return Scope()
    row = conn.execute(query("ledger", "generator_by_name"), {"name": generator}).fetchone()
    if row is None:
        known = ", ".join(r[0] for r in conn.execute(query("ledger", "generator_names"))) or "none yet"
        raise NotFoundError(f"no generator {generator!r} (known: {known}); check --generator")
    if run is None:
        return Scope(row[0], row[1])
    found = conn.execute(query("ledger", "run_by_name"), {"generator_id": row[0], "name": run}).fetchone()
    if found is None:
        known = ", ".join(r[0] for r in conn.execute(query("ledger", "run_names"), {"generator_id": row[0]}))
        raise NotFoundError(
            f"generator {generator!r} has no run {run!r} (known: {known or 'none'}); check --run"
        )
    return Scope(row[0], row[1], found[0], found[1])


@dataclass(frozen=True)
class Key:
    """One chain of statements: a month, space, scheme and scope."""

    period: dt.date
    space_id: int
    scheme_id: int
    scope: Scope

    def params(self, **extra) -> dict:
        return {
            "period": self.period,
            "space_id": self.space_id,
            "scheme_id": self.scheme_id,
            "generator_id": self.scope.generator_id,
            "run_id": self.scope.run_id,
            "scope": self.scope.label,
            **extra,
        }


@dataclass(frozen=True)
class ImageInfo:
    """A credited training image as a statement describes it."""

    training_id: int
    owner_id: int
    owner: str
    sha256: str | None
    uri: str | None
    license: str | None
    royalty_bearing: bool


@dataclass
class OwnerLine:
    owner_id: int
    owner: str
    credit: float
    unpaid_credit: float
    share: float
    due: decimal.Decimal
    issued_before: decimal.Decimal
    amount: decimal.Decimal


@dataclass
class CreditLine:
    info: ImageInfo
    credit: float
    n_matches: int
    due: decimal.Decimal
    issued_before: decimal.Decimal
    amount: decimal.Decimal


@dataclass
class Computation:
    """A statement's lines: per owner and per (training image, owner), sorted for display."""

    lines: list[OwnerLine] = field(default_factory=list)
    credits: list[CreditLine] = field(default_factory=list)

    @property
    def amount(self) -> decimal.Decimal:
        return sum((line.amount for line in self.lines), ZERO)

    @property
    def due(self) -> decimal.Decimal:
        return sum((line.due for line in self.lines), ZERO)

    def changes_anything(self) -> bool:
        return any(line.amount for line in self.lines) or any(c.amount for c in self.credits)


# --------------------------------------------------------------------------------------------- rows


def fill_live(conn: psycopg.Connection, key: Key) -> None:
    """pg_temp.ledger_rows := the live match rows of the key's month, space and scope."""
    conn.execute(query("ledger", "create_rows"))
    conn.execute(query("ledger", "clear_rows"))
    conn.execute(query("ledger", "fill_live_rows"), key.params())
    conn.execute(query("ledger", "analyze_rows"))  # a temporary table has no statistics until analysed


def fill_stored(conn: psycopg.Connection, statement_id: int) -> None:
    """pg_temp.ledger_rows := the rows statement_id was computed from."""
    conn.execute(query("ledger", "create_rows"))
    conn.execute(query("ledger", "clear_rows"))
    conn.execute(query("ledger", "fill_stored_rows"), {"statement_id": statement_id})
    conn.execute(query("ledger", "analyze_rows"))


def credit_rows(
    conn: psycopg.Connection, formula: str, temperature: float | None
) -> list[tuple[int, decimal.Decimal, int]]:
    """(training_id, credit, n_matches) from pg_temp.ledger_rows under a scheme."""
    return [
        (int(t), decimal.Decimal(c), int(n))
        for t, c, n in conn.execute(
            query("ledger", "credit"), {"formula": formula, "temperature": temperature}
        )
    ]


def live_images(conn: psycopg.Connection, ids: Iterable[int]) -> dict[int, ImageInfo]:
    with conn.cursor(row_factory=namedtuple_row) as cur:
        rows = cur.execute(query("ledger", "live_images"), {"ids": list(ids)}).fetchall()
    return {
        r.training_id: ImageInfo(
            r.training_id, r.owner_id, r.owner, r.sha256, r.uri, r.license, r.royalty_bearing
        )
        for r in rows
    }


def issued_before(
    conn: psycopg.Connection, key: Key, before: int
) -> tuple[dict[int, tuple[decimal.Decimal, str]], dict[tuple[int, int], tuple[decimal.Decimal, ImageInfo]]]:
    """What statements of the key with id < before issued: per owner, and per (training image, owner)."""
    params = key.params(before=before)
    owners = {
        int(owner_id): (issued, owner)
        for owner_id, issued, owner in conn.execute(query("ledger", "issued_lines"), params)
    }
    images = {}
    with conn.cursor(row_factory=namedtuple_row) as cur:
        for r in cur.execute(query("ledger", "issued_credits"), params):
            info = ImageInfo(
                r.training_id, r.owner_id, r.owner, r.sha256, r.uri, r.license, r.royalty_bearing
            )
            images[(r.training_id, r.owner_id)] = (r.issued, info)
    return owners, images


# -------------------------------------------------------------------------------------------- split


def split(
    pool: decimal.Decimal,
    credits: list[tuple[int, decimal.Decimal, int]],
    images: dict[int, ImageInfo],
    issued_owners: dict[int, tuple[decimal.Decimal, str]] | None = None,
    issued_images: dict[tuple[int, int], tuple[decimal.Decimal, ImageInfo]] | None = None,
) -> Computation:
    """Owners' and images' due cents of the pool, and the change against what was issued before.

    Owners share the pool pro rata to the credit of their royalty-bearing images (largest remainder,
    ties by owner name); an owner's cents go to those images pro rata to credit (ties by training id).
    """
    issued_owners = issued_owners or {}
    issued_images = issued_images or {}
    paid: dict[int, decimal.Decimal] = defaultdict(decimal.Decimal)
    unpaid: dict[int, decimal.Decimal] = defaultdict(decimal.Decimal)
    names: dict[int, str] = {}
    per_owner_images: dict[int, dict[int, decimal.Decimal]] = defaultdict(dict)
    for training_id, credit, _ in credits:
        info = images[training_id]
        names[info.owner_id] = info.owner
        if info.royalty_bearing:
            paid[info.owner_id] += credit
            per_owner_images[info.owner_id][training_id] = credit
        else:
            unpaid[info.owner_id] += credit
    owners = sorted(set(paid) | set(unpaid) | set(issued_owners))
    for owner_id in owners:
        names.setdefault(owner_id, issued_owners.get(owner_id, (ZERO, str(owner_id)))[1])
    total = sum(paid.values(), decimal.Decimal(0))
    owner_cents = largest_remainder(to_cents(pool), dict(paid), order=names)

    result = Computation()
    for owner_id in owners:
        due = from_cents(owner_cents.get(owner_id, 0))
        before = issued_owners.get(owner_id, (ZERO, ""))[0]
        credit = paid.get(owner_id, decimal.Decimal(0))
        result.lines.append(
            OwnerLine(
                owner_id=owner_id,
                owner=names[owner_id],
                credit=float(credit),
                unpaid_credit=float(unpaid.get(owner_id, 0)),
                share=float(credit / total) if total else 0.0,
                due=due,
                issued_before=before,
                amount=due - before,
            )
        )
    image_cents: dict[int, int] = {}
    for owner_id, weights in per_owner_images.items():
        image_cents.update(largest_remainder(owner_cents.get(owner_id, 0), weights))
    seen = set()
    for training_id, credit, n_matches in credits:
        info = images[training_id]
        key = (training_id, info.owner_id)
        seen.add(key)
        due = from_cents(image_cents.get(training_id, 0))
        before = issued_images.get(key, (ZERO, info))[0]
        result.credits.append(CreditLine(info, float(credit), n_matches, due, before, due - before))
    for key, (before, info) in issued_images.items():
        if key not in seen:  # credited before, not now (opted out, deleted, rematched away)
            result.credits.append(CreditLine(info, 0.0, 0, ZERO, before, -before))
    result.lines.sort(key=lambda line: (-line.due, -line.credit, line.owner))
    result.credits.sort(key=lambda c: (c.info.owner, c.info.training_id))
    return result
