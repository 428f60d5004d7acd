"""Randomised: sequences of opt-outs, opt-ins, late training images, deletions, backdated outputs,
temperature, quality and pool changes, issuing at random points; the ledger invariants hold after
every step (issued rows never change; issued + adjustments = the draft now, per owner and per image,
to the cent; every statement verifies)."""

from __future__ import annotations

import numpy as np
import pytest

from gmv_sql.ledger import statements
from gmv_sql.ledger.verify import verify
from tests.ledger import world as w

OPERATIONS = [
    w.opt_out,
    w.opt_in,
    w.add_training,
    w.delete_training,
    w.backdate_generated,
    w.change_temperature,
    w.change_quality,
]


@pytest.mark.timeout(600)
@pytest.mark.parametrize(
    ("seed", "scheme"), [(0, "rank_linear"), (1, "softmax_distance"), (2, "reciprocal_rank")]
)
def test_random_sequences_keep_the_ledger_invariants(conn, db_url, seed, scheme):
    rng = np.random.default_rng(seed)
    world = w.matched_world(conn, db_url, seed_=seed, n_training=100, n_generated=30)
    pool = "1000.00"
    first = w.issue(conn, pool=pool, scheme=scheme)
    frozen = {first.statement_id: w.statement_rows(conn, first.statement_id)}
    w.check_invariants(conn, scheme=scheme)
    done = []
    for step in range(10):
        operation = OPERATIONS[int(rng.integers(len(OPERATIONS)))]
        operation(conn, world, rng)
        done.append(operation.__name__)
        if rng.random() < 0.2:
            pool = f"{rng.integers(0, 5000)}.{rng.integers(0, 100):02d}"
        if rng.random() < 0.7:
            issued = w.issue(conn, pool=pool, scheme=scheme, reason=f"step {step}: {done[-1]}")
            if isinstance(issued, statements.Issued):
                frozen[issued.statement_id] = w.statement_rows(conn, issued.statement_id)
                assert verify(conn, issued.statement_id).current_same, done
            w.check_invariants(conn, scheme=scheme)
        for statement_id, rows in frozen.items():
            assert w.statement_rows(conn, statement_id) == rows, (statement_id, done)
            assert verify(conn, statement_id).reproduces, (statement_id, done)
    print(f"\nledger random seed {seed} ({scheme}): {done}, {len(frozen)} statements")
