"""Pools by scope: a generator (and optionally a run) is paid from its own pool; statements of different
scopes for one month coexist and are adjusted independently."""

from __future__ import annotations

from functools import partial

import numpy as np

from gmv_sql.db.connect import connect
from gmv_sql.ledger import statements
from gmv_sql.match import matcher
from tests.factories import refused, seed
from tests.ledger import world as w
from tests.ledger.world import D


def _two_generators(conn, db_url) -> dict:
    a = seed(
        conn,
        n_training=60,
        n_generated=20,
        dim=8,
        owners=3,
        generator="gen-a",
        run="run-1",
        seed=0,
        scheme="rank_linear",
    )
    seed(conn, n_training=30, n_generated=15, dim=8, owners=3, generator="gen-b", run="run-1", seed=1)
    seed(conn, n_training=10, n_generated=5, dim=8, owners=3, generator="gen-b", run="run-2", seed=2)
    matcher.match_space(partial(connect, db_url), a["space"], k=3, exact=True, recall_sample=0)
    a["db_url"] = db_url
    return a


def _generators_of(conn, statement_id: int) -> set[tuple[str, str]]:
    return set(
        conn.execute(
            "SELECT DISTINCT gen.name, r.name FROM gmv.statement_match m JOIN gmv.generated_image g USING (generated_id)"
            " JOIN gmv.generation_run r ON r.run_id = g.run_id JOIN gmv.generator gen USING (generator_id)"
            " WHERE m.statement_id = %s",
            (statement_id,),
        ).fetchall()
    )


def test_scoped_statements_coexist_and_pay_only_their_outputs(conn, db_url, gmv):
    _two_generators(conn, db_url)
    out = gmv(
        "report", "royalties", "--period", "2026-01", "--pool", "600.00", "--generator", "gen-a", "--issue"
    )
    assert "issued statement 1 (original) for 2026-01 (test/rank_linear, generator gen-a)" in out.stderr
    gmv("report", "royalties", "--period", "2026-01", "--pool", "400.00", "--generator", "gen-b", "--issue")
    gmv(
        "report",
        "royalties",
        "--period",
        "2026-01",
        "--pool",
        "50.00",
        "--generator",
        "gen-b",
        "--run",
        "run-2",
        "--issue",
    )
    gmv("report", "royalties", "--period", "2026-01", "--pool", "1000.00", "--issue")
    rows = conn.execute(
        "SELECT statement_id, scope, generator, run, amount FROM gmv.statement ORDER BY 1"
    ).fetchall()
    assert rows == [
        (1, "generator gen-a", "gen-a", None, D("600.00")),
        (2, "generator gen-b", "gen-b", None, D("400.00")),
        (3, "generator gen-b run run-2", "gen-b", "run-2", D("50.00")),
        (4, "all", None, None, D("1000.00")),
    ]
    assert _generators_of(conn, 1) == {("gen-a", "run-1")}
    assert _generators_of(conn, 2) == {("gen-b", "run-1"), ("gen-b", "run-2")}
    assert _generators_of(conn, 3) == {("gen-b", "run-2")}
    assert len(_generators_of(conn, 4)) == 3
    pools = conn.execute(
        "SELECT g.name, r.name, p.amount FROM gmv.revenue_pool p LEFT JOIN gmv.generator g USING (generator_id)"
        " LEFT JOIN gmv.generation_run r ON r.run_id = p.run_id ORDER BY p.amount"
    ).fetchall()
    assert pools == [
        ("gen-b", "run-2", D("50.00")),
        ("gen-b", None, D("400.00")),
        ("gen-a", None, D("600.00")),
        (None, None, D("1000.00")),
    ]
    # The unscoped report view splits only the unscoped pool.
    assert conn.execute("SELECT DISTINCT pool_amount FROM report.royalty_statement").fetchall() == [
        (D("1000.00"),)
    ]


def test_a_scope_is_adjusted_alone(conn, db_url):
    world = _two_generators(conn, db_url)
    w.issue(conn, pool="600.00", generator="gen-a")
    w.issue(conn, pool="400.00", generator="gen-b")
    w.backdate_generated(conn, world, np.random.default_rng(0), n=4)  # world's run: gen-a run-1
    assert isinstance(w.issue(conn, generator="gen-b"), statements.Draft)  # gen-b: nothing to adjust
    adjustment = w.issue(conn, generator="gen-a", reason="late outputs")
    assert adjustment.kind == "adjustment" and adjustment.draft.computation.amount == D("0.00")
    for generator in ("gen-a", "gen-b"):
        w.check_invariants(conn, scope=f"generator {generator}", generator=generator)


def test_scoped_draft_and_errors(conn, db_url, gmv):
    _two_generators(conn, db_url)
    out = gmv(
        "report",
        "royalties",
        "--period",
        "2026-01",
        "--pool",
        "10.00",
        "--generator",
        "gen-b",
        "--format",
        "csv",
    )
    assert "(generator gen-b): 10.00 EUR split over" in out.stderr
    assert sum(D(line.split(",")[5]) for line in out.stdout.splitlines()[1:]) == D("10.00")
    assert conn.execute("SELECT count(*) FROM gmv.statement").fetchone() == (0,)  # a draft issues nothing
    refused(
        gmv,
        "report",
        "royalties",
        "--period",
        "2026-01",
        "--run",
        "run-1",
        reason="--run 'run-1' needs --generator",
    )
    refused(
        gmv,
        "report",
        "royalties",
        "--period",
        "2026-01",
        "--generator",
        "gen-c",
        "--pool",
        "1",
        reason="no generator 'gen-c' (known: gen-a, gen-b)",
    )
    refused(
        gmv,
        "report",
        "royalties",
        "--period",
        "2026-02",
        "--generator",
        "gen-a",
        "--pool",
        "1",
        "--issue",
        reason="nothing matched for 2026-02 (space 'test', scheme 'rank_linear', generator gen-a)",
    )
    assert conn.execute("SELECT count(*) FROM gmv.revenue_pool WHERE period = '2026-02-01'").fetchone() == (
        0,
    )
