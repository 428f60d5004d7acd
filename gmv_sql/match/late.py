"""Training vectors that arrive after the matches: they compete without re-matching everything.

A match row set of generated image g is the top-k among the training vectors the matcher could see.
gmv.match_coverage records, per space, the vectors (training_id, embedded_at) every current match
has competed with. Any other vector is *late*: embedded after the matches were made, re-embedded,
opted in again, or under a licence included again (the rights triggers clear its coverage row).
At the start of `gmv match`, under the space's match lock, one SQL statement compares every late
vector with every matched generated image it may be matched to (an exact scan, so the result is the
same as a full `--rematch --exact`), unmatches the images whose top-k it would enter, and records
the late vectors as covered. The run then matches those images again, among all vectors, like any
other unmatched image. tests/db/test_late_training.py proves the equality on random data.

Also here: the dated opt-out rule for matching. An opt-out from day D covers generated images created
on or after D (UTC); for earlier ones the image is still eligible. Pending images are matched in
groups that share the same set of ineligible training images.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import replace

import psycopg

from gmv_sql import spaces
from gmv_sql.embed import store
from gmv_sql.resources import query
from gmv_sql.spaces import EmbeddingSpace


def unmatch_late(conn: psycopg.Connection, space: EmbeddingSpace) -> int:
    """Unmatch the generated images late training vectors would enter; the number of images.

    Call in the transaction that holds the space's match lock, after the ineligible matches are
    dropped; the images unmatched here are pending for the same run.
    """
    params = {"space_id": space.space_id}
    if not conn.execute(spaces.render("match", "late_training_exists", space), params).fetchone()[0]:
        return 0
    return len({r[0] for r in conn.execute(spaces.render("match", "unmatch_late", space), params)})


def split_by_opt_out(
    conn: psycopg.Connection, plan, pending: Sequence[int]
) -> list[tuple[object, list[int]]]:
    """Pending generated ids grouped by the training images ineligible for them, each with its plan.

    plan is the run's MatchPlan (ineligible: images never matched). Dated opt-outs add, for a
    generated image created at c, the images opted out from a day <= c. Without dated opt-outs:
    one group, the plan itself.
    """
    dated = [(day, list(ids)) for day, ids in conn.execute(query("match", "dated_opt_outs"))]
    if not dated or not pending:
        return [(plan, list(pending))]
    created = dict(conn.execute(query("match", "pending_created_at"), {"ids": list(pending)}).fetchall())
    starts = [dt.datetime.combine(day, dt.time()) for day, _ in dated]  # UTC midnights, naive
    groups: dict[int, list[int]] = {}
    for generated_id in pending:
        stamp = created[generated_id]
        groups.setdefault(sum(1 for s in starts if stamp >= s), []).append(generated_id)
    n_vectors = store.count_vectors(conn, plan.space)
    out = []
    for epoch in sorted(groups):
        extra = [i for _, ids in dated[:epoch] for i in ids]
        ineligible = tuple(sorted({*plan.ineligible, *extra}))
        present = len(store.present(conn, plan.space, "training", ineligible)) if ineligible else 0
        out.append(
            (
                replace(plan, ineligible=ineligible, expected=min(plan.k, n_vectors - present)),
                groups[epoch],
            )
        )
    return out
