"""gmv.match_run: the record of each `gmv match` (how it searched, the recall it measured, versions).

A run's row is written when it starts (in the transaction that fixes k), its match rows carry its
run_id, and it is completed at the end with what was matched and the recall measured on a sample
of those images against exact search (gmv_sql/match/recall.py). An interrupted run keeps
finished_at NULL and recall_status 'pending'.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.rows import dict_row

from gmv_sql import __version__
from gmv_sql.resources import query
from gmv_sql.spaces import EmbeddingSpace


@dataclass(frozen=True)
class RunRecall:
    """What a run records about recall: status measured / skipped / exact / nothing_matched."""

    status: str
    recall: float | None = None
    sample: int = 0


def index_params(space: EmbeddingSpace, exact: bool) -> dict[str, Any]:
    """The search's parameters as recorded: the index's build settings (none for exact), storage, distance."""
    params: dict[str, Any] = {"storage": space.storage, "distance": space.distance}
    if not exact:
        params |= {"precision": space.index_precision, "opclass": space.opclass}
        if space.index_kind == "ivfflat":
            params |= {"lists": space.ivfflat_lists, "built_on_rows": space.index_rows}
        else:
            params |= {"m": space.hnsw_m, "ef_construction": space.hnsw_ef_construction}
    return params


def start(
    conn: psycopg.Connection,
    space: EmbeddingSpace,
    *,
    k: int,
    exact: bool,
    ef_search: int | None,
    rematch: bool,
    rerank: EmbeddingSpace | None = None,
    candidates: int | None = None,
) -> int:
    """Insert the run's row; its id. A re-ranked run records its second space and candidate count
    in index_params."""
    params = index_params(space, exact)
    if rerank is not None:
        params |= {"rerank_space": rerank.name, "rerank_space_id": rerank.space_id, "candidates": candidates}
    row = conn.execute(
        query("match_run", "start"),
        {
            "space_id": space.space_id,
            "k": k,
            "exact": exact,
            "index_kind": None if exact else space.index_kind,
            "index_params": json.dumps(params),
            "ef_search": None if exact else ef_search,
            "rematch": rematch,
            "gmv_sql_version": __version__,
        },
    ).fetchone()
    return int(row[0])


def finish(
    conn: psycopg.Connection,
    run_id: int,
    *,
    matched: int,
    rows: int,
    recall: RunRecall,
    exact: bool,
    ef_search: int | None,
    probes: int | None,
    tuning: Any = None,
) -> None:
    """Complete the run's row: the search as it finally ran (--target-recall may have chosen ef_search,
    probes or exact search after the start), its counts and its measured recall."""
    calibration = None
    if tuning is not None:
        calibration = {
            "target_recall": tuning.target,
            "setting": tuning.setting,
            "value": tuning.value,
            "sample_recall": tuning.recall,
            "sample": tuning.sample,
            "reached": tuning.reached,
            "note": tuning.note,
        }
    conn.execute(
        query("match_run", "finish"),
        {
            "run_id": run_id,
            "exact": exact,
            "ef_search": None if exact else ef_search,
            "probes": None if exact else probes,
            "calibration": json.dumps(calibration) if calibration else None,
            "images_matched": matched,
            "rows_written": rows,
            "recall_at_k": recall.recall,
            "recall_sample": recall.sample,
            "recall_status": recall.status,
        },
    )


def get(conn: psycopg.Connection, run_id: int) -> dict[str, Any] | None:
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(query("match_run", "by_id"), {"run_id": run_id}).fetchone()
