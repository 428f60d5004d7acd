"""The BI lookups of report.training_value and report.attribution read indexes, never every training
image (issue 13: p95 < 300 ms at 1M training images; benchmarks/report.py measures the times).

The world is seeded in SQL with enough rows (20,000 training images, 5 schemes: 100,000 credit rows)
that a sequential scan costs the planner more than the index paths, as it does at scale; no planner
setting is changed. ANALYZE first, as autovacuum would have by then.
"""

from __future__ import annotations

import json

import pytest

from gmv_sql import spaces
from gmv_sql.value.refresh import refresh

N_TRAINING = 20_000
N_GENERATED = 2_000


@pytest.fixture
def world(conn):
    conn.execute("INSERT INTO gmv.owner (name) SELECT 'owner-' || i FROM generate_series(1, 50) AS i")
    conn.execute("INSERT INTO gmv.license (name) VALUES ('paid')")
    conn.execute(
        "INSERT INTO gmv.training_image (sha256, uri, owner_id, license_id) "
        "SELECT lpad(to_hex(i), 64, '0'), 't/' || i, (SELECT min(owner_id) FROM gmv.owner) + i %% 50, "
        "       (SELECT min(license_id) FROM gmv.license) "
        "FROM generate_series(1, %s) AS i",
        (N_TRAINING,),
    )
    conn.execute("INSERT INTO gmv.generator (name) VALUES ('g')")
    conn.execute(
        "INSERT INTO gmv.generation_run (generator_id, name) SELECT generator_id, 'r' FROM gmv.generator"
    )
    conn.execute(
        "INSERT INTO gmv.generated_image (sha256, uri, run_id, created_at) "
        "SELECT lpad(to_hex(i), 64, '0'), 'g/' || i, (SELECT min(run_id) FROM gmv.generation_run), "
        "       timestamptz '2026-01-15' + (i %% 3) * interval '1 month' "
        "FROM generate_series(1, %s) AS i",
        (N_GENERATED,),
    )
    space = spaces.get_or_create_space(conn, "plans", model="plans", dim=8)
    first = conn.execute("SELECT min(training_id) FROM gmv.training_image").fetchone()[0]
    conn.execute(
        "INSERT INTO gmv.match (space_id, generated_id, rank, training_id, distance, k) "
        "SELECT %(space)s, g.generated_id, r, %(first)s + ((g.generated_id * 7919 + r * 104729) %% %(n)s), "
        "       0.1 * r + (g.generated_id %% 7) * 0.01, 10 "
        "FROM gmv.generated_image AS g CROSS JOIN generate_series(1, 10) AS r",
        {"space": space.space_id, "first": first, "n": N_TRAINING},
    )
    spaces.set_match_k(conn, space, 10)
    refresh(conn)
    conn.execute("ANALYZE")
    return {"first_training": first}


def _plan(conn, statement: str, params=None) -> dict:
    plan = conn.execute("EXPLAIN (FORMAT JSON) " + statement, params).fetchone()[0]
    return (json.loads(plan) if isinstance(plan, str) else plan)[0]["Plan"]


def _scans(plan: dict) -> list[tuple[str, str]]:
    nodes, found = [plan], []
    while nodes:
        node = nodes.pop()
        if "Relation Name" in node:
            found.append((node["Node Type"], node["Relation Name"]))
        nodes += node.get("Plans", [])
    return found


@pytest.mark.parametrize(
    "statement, param",
    [
        ("SELECT * FROM report.training_value WHERE training_id = %s", "training"),
        (
            "SELECT * FROM report.training_value WHERE space = 'plans' AND scheme = 'rank_linear' "
            "ORDER BY value DESC LIMIT 100",
            None,
        ),
        ("SELECT * FROM report.training_value ORDER BY value DESC LIMIT 100", None),
        ("SELECT * FROM report.attribution WHERE generated_id = %s", "generated"),
    ],
)
def test_lookups_never_scan_every_training_image(conn, world, statement, param):
    params = (world["first_training"] + 123,) if param == "training" else (77,) if param else None
    scans = _scans(_plan(conn, statement, params))
    assert ("Seq Scan", "training_image") not in scans, scans
    assert ("Seq Scan", "training_credit") not in scans, scans
    assert ("Seq Scan", "match") not in scans, scans
    assert conn.execute(statement, params).fetchall()
