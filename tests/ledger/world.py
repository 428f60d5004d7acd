"""What the ledger tests share: a matched world, issuing, the data changes a month can see, invariants."""

from __future__ import annotations

import datetime as dt
import decimal
from functools import partial

import numpy as np
import psycopg

from gmv_sql.db.connect import connect
from gmv_sql.embed import store
from gmv_sql.ledger import statements
from gmv_sql.ledger.draft import Scope, resolve_scope
from gmv_sql.ledger.verify import verify
from gmv_sql.match import matcher
from gmv_sql.report.common import resolve_target
from gmv_sql.report.royalties import parse_period
from tests.factories import DEFAULT_CREATED_AT, add_generated_images, add_training_images, fingerprint, seed

D = decimal.Decimal
LEDGER = ("statement", "statement_line", "statement_credit", "statement_match")


def matched_world(
    conn, db_url: str, *, seed_: int = 0, n_training: int = 120, n_generated: int = 40, **kw
) -> dict:
    """4 owners, a paid and a free licence, random quality, exact top-5 matches (deterministic rematches);
    the space's default scheme is rank_linear unless scheme= says otherwise."""
    world = seed(
        conn,
        n_training=n_training,
        n_generated=n_generated,
        dim=8,
        owners=4,
        quality="random",
        licenses=(("paid", True, False), ("paid-2", True, False), ("free", False, False)),
        seed=seed_,
        scheme=kw.pop("scheme", "rank_linear"),  # the figures these tests check are rank_linear's
        **kw,
    )
    world["db_url"] = db_url
    rematch(conn, world, k=5)
    return world


def rematch(conn, world: dict, *, k: int | None = None, full: bool = False) -> None:
    matcher.match_space(
        partial(connect, world["db_url"]),
        world["space"],
        k=k,
        exact=True,
        rematch=full,
        workers=1,
        recall_sample=0,
    )


def issue(
    conn,
    period: str = "2026-01",
    pool: str | None = None,
    *,
    scheme: str | None = None,
    generator: str | None = None,
    run: str | None = None,
    reason: str | None = None,
):
    target = resolve_target(conn, None, scheme)
    scope = resolve_scope(conn, generator, run)
    return statements.issue(
        conn,
        target,
        parse_period(period),
        scope,
        pool=D(pool) if pool else None,
        currency="EUR",
        reason=reason,
    )


def draft(conn, period: str = "2026-01", *, scheme: str | None = None, generator=None, run=None):
    target = resolve_target(conn, None, scheme)
    return statements.draft(conn, target, parse_period(period), resolve_scope(conn, generator, run))


def ledger_fingerprint(conn) -> dict:
    return {table: fingerprint(conn, table) for table in LEDGER}


def statement_rows(conn, statement_id: int) -> dict:
    """Everything stored for one statement, row for row (its report views and its stored match rows)."""
    out = {}
    for view, schema in (
        ("statement", "report"),
        ("statement_line", "report"),
        ("statement_credit", "report"),
        ("statement_match", "gmv"),
    ):
        rows = conn.execute(
            f"SELECT * FROM {schema}.{view} WHERE statement_id = %s ORDER BY 1, 2, 3", (statement_id,)
        ).fetchall()
        out[view] = sorted(map(repr, rows))
    return out


def issued_by_owner(
    conn, *, scheme: str = "rank_linear", scope: str = "all", period: str = "2026-01"
) -> dict:
    rows = conn.execute(
        "SELECT l.owner_id, sum(l.amount) FROM gmv.statement_line l JOIN gmv.statement s USING (statement_id) "
        "WHERE s.scheme = %s AND s.scope = %s AND s.period = %s::date GROUP BY 1",
        (scheme, scope, f"{period}-01"),
    ).fetchall()
    return {o: a for o, a in rows if a}


def check_invariants(
    conn, *, scheme: str = "rank_linear", scope: str = "all", generator=None, run=None
) -> None:
    """Issued + adjustments = the draft now (per owner and per image, to the cent); every statement's lines
    add up to its amount and its image lines to its owner lines; originals pay the pool; all verify."""
    now = draft(conn, scheme=scheme, generator=generator, run=run)
    due_now = {line.owner_id: line.due for line in now.computation.lines if line.due}
    assert issued_by_owner(conn, scheme=scheme, scope=scope) == due_now
    images_issued = dict(
        conn.execute(
            "SELECT c.training_id, sum(c.amount) FROM gmv.statement_credit c JOIN gmv.statement s USING (statement_id) "
            "WHERE s.scheme = %s AND s.scope = %s GROUP BY 1 HAVING sum(c.amount) <> 0",
            (scheme, scope),
        ).fetchall()
    )
    assert images_issued == {c.info.training_id: c.due for c in now.computation.credits if c.due}
    for sid, kind, amount, pool in conn.execute(
        "SELECT statement_id, kind, amount, pool FROM gmv.statement ORDER BY 1"
    ).fetchall():
        lines = conn.execute(
            "SELECT owner_id, amount, due - issued_before FROM gmv.statement_line WHERE statement_id = %s",
            (sid,),
        ).fetchall()
        assert sum((a for _, a, _ in lines), D("0.00")) == amount
        assert all(a == d for _, a, d in lines)
        per_owner = dict(
            conn.execute(
                "SELECT owner_id, sum(amount) FROM gmv.statement_credit WHERE statement_id = %s GROUP BY 1",
                (sid,),
            ).fetchall()
        )
        assert {o: a for o, a, _ in lines if a} == {o: a for o, a in per_owner.items() if a}
        if kind == "original":
            assert amount == pool
        assert verify(conn, sid).reproduces, sid


# ------------------------------------------------------------------------------ changes to the data


def opt_out(conn, world, rng) -> int:
    """Opt out one matched training image and re-match the generated images that used it."""
    matched = [r[0] for r in conn.execute("SELECT DISTINCT training_id FROM gmv.match ORDER BY 1")]
    victim = int(rng.choice(matched))
    conn.execute("UPDATE gmv.training_image SET opted_out = true WHERE training_id = %s", (victim,))
    rematch(conn, world)
    return victim


def opt_in(conn, world, rng) -> int | None:
    out = [
        r[0] for r in conn.execute("SELECT training_id FROM gmv.training_image WHERE opted_out ORDER BY 1")
    ]
    if not out:
        return None
    chosen = int(rng.choice(out))
    conn.execute("UPDATE gmv.training_image SET opted_out = false WHERE training_id = %s", (chosen,))
    rematch(conn, world, full=True)
    return chosen


def add_training(conn, world, rng, n: int = 3) -> np.ndarray:
    """New training images right next to some generated images, then a full re-match."""
    space = world["space"]
    with conn.transaction():
        owners = [int(rng.choice(world["owner_ids"])) for _ in range(n)]
        ids = add_training_images(
            conn, owners, [world["license_ids"][0]] * n, tag=f"late:{rng.integers(1 << 40)}"
        )
        near = world["generated_vectors"][rng.integers(0, len(world["generated_vectors"]), size=n)]
        vectors = (near + 0.01 * rng.normal(size=near.shape)).astype(np.float32)
        store.copy_vectors(conn, space, "training", ids, vectors, source="test")
    rematch(conn, world, full=True)
    return ids


def delete_training(conn, world, rng) -> int:
    matched = [r[0] for r in conn.execute("SELECT DISTINCT training_id FROM gmv.match ORDER BY 1")]
    victim = int(rng.choice(matched))
    conn.execute("DELETE FROM gmv.training_image WHERE training_id = %s", (victim,))
    return victim


def backdate_generated(conn, world, rng, n: int = 2, when: dt.datetime = DEFAULT_CREATED_AT) -> np.ndarray:
    """Generated images ingested now with a created_at inside the (issued) month, then matched."""
    space = world["space"]
    with conn.transaction():
        ids = add_generated_images(
            conn, n, world["run_id"], tag=f"late:{rng.integers(1 << 40)}", created_at=when, quality=[1.5] * n
        )
        vectors = (
            world["training_vectors"][rng.integers(0, len(world["training_vectors"]), size=n)]
            + 0.2 * rng.normal(size=(n, space.dim))
        ).astype(np.float32)
        store.copy_vectors(conn, space, "generated", ids, vectors, source="test")
    rematch(conn, world)
    return ids


def change_temperature(conn, world, rng) -> float:
    t = float(rng.choice([0.02, 0.05, 0.1, 0.3, 1.0]))
    conn.execute("UPDATE gmv.valuation_scheme SET temperature = %s WHERE name = 'softmax_distance'", (t,))
    return t


def change_quality(conn, world, rng) -> int:
    g = int(rng.choice(world["generated_ids"]))
    conn.execute("UPDATE gmv.generated_image SET quality = quality * 2 + 0.5 WHERE generated_id = %s", (g,))
    return g


def scope_of(conn: psycopg.Connection, generator=None, run=None) -> Scope:
    return resolve_scope(conn, generator, run)
