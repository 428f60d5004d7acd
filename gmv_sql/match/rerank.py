"""Re-ranking matches with a second embedding space (`gmv match --space A --rerank-space B`).

GMValuator's later version re-ranks the candidates of the first search by a perceptual distance.
Here: the N nearest training images of each generated image in space A (A's HNSW index), then the
final top-k among them by space B's distance, in one SQL statement per batch (sql/queries/rerank.sql).
The rows in gmv.match keep space A's id and record rerank_space_id = B and candidates = N; their
rank and distance are B's, so the valuation (and report.near_copy, with B's threshold) sees B's
order. One setting per space: the first run fixes it (later runs without --rerank-space keep it), and
changing it needs --rematch, as changing k does.
"""

from __future__ import annotations

import psycopg
from psycopg import sql

from gmv_sql import spaces
from gmv_sql.errors import ConflictError, InputError
from gmv_sql.resources import query
from gmv_sql.spaces import EmbeddingSpace

DEFAULT_CANDIDATES_PER_K = 10  # N = 10 k by default (at least 50), capped at 1000


def default_candidates(k: int) -> int:
    return min(1000, max(50, DEFAULT_CANDIDATES_PER_K * k))


def fragments(rerank: EmbeddingSpace) -> dict[str, sql.Composable]:
    return {
        "rerank_training": rerank.table("training"),
        "rerank_generated": rerank.table("generated"),
        "rerank_op": sql.SQL(rerank.operator),
    }


def render(name: str, space: EmbeddingSpace, rerank: EmbeddingSpace, *, exact: bool = False) -> sql.Composed:
    """A block of sql/queries/rerank.sql with both spaces filled in (top_k inside knn_insert/knn_select);
    candidates ordered by A's indexed expression, or with exact by its stored vectors."""
    extra = fragments(rerank)
    if name in ("knn_insert", "knn_select"):
        extra["top_k"] = spaces.render("rerank", "top_k", space, **extra, **space.order_keys(exact=exact))
    return spaces.render("rerank", name, space, **extra)


def check(
    conn: psycopg.Connection,
    space: EmbeddingSpace,
    rerank: EmbeddingSpace | None,
    candidates: int | None,
    k: int,
    *,
    rematch: bool,
) -> tuple[EmbeddingSpace | None, int | None]:
    """(re-ranking space, candidates) to use; one-line errors for what cannot work.

    Like k, the first run fixes the setting: a later run without --rerank-space keeps the space's
    stored setting, and a different one needs --rematch."""
    stored = (
        []
        if rematch
        else conn.execute(query("rerank", "stored_setting"), {"space_id": space.space_id}).fetchall()
    )
    if rerank is None and candidates is None and stored and stored[0][0] is not None:
        rerank_id, candidates, _name = stored[0]
        rerank = next((s for s in spaces.list_spaces(conn) if s.space_id == rerank_id), None)
    if rerank is None:
        if candidates is not None:
            raise InputError("--candidates only works with --rerank-space B; add it or drop --candidates")
    else:
        if rerank.space_id == space.space_id:
            raise InputError(
                f"--rerank-space {rerank.name!r} is the space matched in; pick another space to re-rank by"
            )
        candidates = default_candidates(k) if candidates is None else candidates
        if not k <= candidates <= 1000:
            raise InputError(f"--candidates {candidates} must be between k ({k}) and 1000")
        missing = conn.execute(render("count_training_without_rerank_vector", space, rerank)).fetchone()[0]
        if missing:
            raise ConflictError(
                f"{missing:,} training images have a vector in space {space.name!r} but not in {rerank.name!r}; "
                f"run `gmv embed --space {rerank.name}` first"
            )
    want = (rerank.space_id if rerank else None, candidates)
    for rerank_id, stored_candidates, name in stored:
        if (rerank_id, stored_candidates) != want:
            had = (
                f"re-ranked by {name!r} from {stored_candidates} candidates" if rerank_id else "not re-ranked"
            )
            now = f"re-ranked by {rerank.name!r} from {candidates}" if rerank else "without re-ranking"
            raise ConflictError(
                f"space {space.name!r} holds matches {had}; add --rematch to match again {now}"
            )
    return rerank, candidates
