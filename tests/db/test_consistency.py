"""gmv audit consistency: per-rank share of same-attribute matches against chance, binomial test."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest
from scipy import stats

from gmv_sql.audit.consistency import consistency
from tests.factories import refused, seed


def _labelled_world(conn, *, wrong: float = 0.0):
    """Training images in 4 clusters labelled by cluster (skewed frequencies); generated images near a
    training image, labelled with its class (a share `wrong` gets another label)."""
    rng = np.random.default_rng(1)
    centres = rng.normal(size=(4, 8)) * 3
    labels = rng.choice(4, size=160, p=[0.4, 0.3, 0.2, 0.1])
    training = centres[labels] + 0.4 * rng.normal(size=(160, 8))
    parents = rng.integers(0, 160, size=60)
    generated = training[parents] + 0.2 * rng.normal(size=(60, 8))
    asked = labels[parents].copy()
    flip = rng.random(60) < wrong
    asked[flip] = (asked[flip] + 1) % 4
    opted_out = np.zeros(160, bool)
    opted_out[:8] = True
    world = seed(conn, training_vectors=training, generated_vectors=generated, k=5, opted_out=opted_out)
    conn.execute(
        "UPDATE gmv.training_image AS t SET attributes = jsonb_build_object('digit', x.label)"
        " FROM unnest(%s::bigint[], %s::int[]) AS x(id, label) WHERE t.training_id = x.id",
        (world["training_ids"].tolist(), labels.tolist()),
    )
    # Generated labels as text: "3" and 3 are one value.
    conn.execute(
        "UPDATE gmv.generated_image AS g SET attributes = jsonb_build_object('digit', x.label::text)"
        " FROM unnest(%s::bigint[], %s::int[]) AS x(id, label) WHERE g.generated_id = x.id",
        (world["generated_ids"].tolist(), asked.tolist()),
    )
    world.update(labels=labels, asked=asked)
    return world


def _reference(conn, world):
    label_of = dict(zip(world["training_ids"].tolist(), world["labels"].tolist(), strict=True))
    asked_of = dict(zip(world["generated_ids"].tolist(), world["asked"].tolist(), strict=True))
    per_rank: dict[int, list[int]] = {}
    for g, rank, t in conn.execute("SELECT generated_id, rank, training_id FROM gmv.match"):
        per_rank.setdefault(rank, []).append(int(label_of[t] == asked_of[g]))
    eligible = world["labels"][world["eligible"]]
    frequency = Counter(eligible.tolist())
    chance = float(np.mean([frequency[a] / len(eligible) for a in world["asked"]]))
    return per_rank, chance


def test_shares_per_rank_and_overall_match_a_reference_with_binomial_p(conn):
    world = _labelled_world(conn, wrong=0.2)
    result = consistency(conn, world["space"], "digit")
    per_rank, chance = _reference(conn, world)
    assert result.chance == pytest.approx(chance)
    assert result.n_generated == 60 and [r.rank for r in result.rows] == ["1", "2", "3", "4", "5", "all"]
    for row in result.rows[:-1]:
        outcomes = per_rank[int(row.rank)]
        assert (row.n, row.same) == (len(outcomes), sum(outcomes))
        expected_p = stats.binomtest(sum(outcomes), len(outcomes), chance, alternative="greater").pvalue
        assert row.p_value == pytest.approx(expected_p)
    everything = [x for outcomes in per_rank.values() for x in outcomes]
    assert (result.overall.n, result.overall.same) == (len(everything), sum(everything))
    # Labels follow the clusters, so matches agree far above chance (~0.3 here); 20% were asked wrongly.
    assert 0.6 < result.overall.share < 0.85 and result.overall.p_value < 1e-10


def test_random_labels_sit_at_chance(conn):
    world = _labelled_world(conn)
    rng = np.random.default_rng(7)
    conn.execute(
        "UPDATE gmv.generated_image AS g SET attributes = jsonb_build_object('digit', x.label)"
        " FROM unnest(%s::bigint[], %s::int[]) AS x(id, label) WHERE g.generated_id = x.id",
        (world["generated_ids"].tolist(), rng.integers(0, 4, size=60).tolist()),
    )
    result = consistency(conn, world["space"], "digit")
    assert abs(result.overall.share - result.chance) < 0.12 and result.overall.p_value > 0.01


def test_cli_table_and_json(gmv, conn):
    _labelled_world(conn)
    out = gmv("audit", "consistency", "--attribute", "digit", "--space", "test").output
    assert "rank" in out and "chance" in out and "binomial p" in out
    data = json.loads(gmv("audit", "consistency", "--attribute", "digit", "--format", "json").stdout)
    assert data["attribute"] == "digit" and data["rows"][-1]["rank"] == "all"
    assert data["rows"][0]["share"] > data["chance"]


def test_bad_inputs_are_one_line_errors(gmv, conn):
    _labelled_world(conn)
    refused(
        gmv, "audit", "consistency", "--attribute", "colour", reason="attribute 'colour' is on 0 training"
    )
    refused(
        gmv, "audit", "consistency", "--attribute", "digit", "--space", "nope", reason="no embedding space"
    )
    result = gmv("audit", "consistency", ok=False)
    assert result.exit_code == 2 and "--attribute" in result.output
    conn.execute("UPDATE gmv.generated_image SET attributes = '{}'")
    refused(gmv, "audit", "consistency", "--attribute", "digit", reason="0 generated images")
    conn.execute("UPDATE gmv.generated_image SET attributes = '{\"digit\": 1}'")
    conn.execute("DELETE FROM gmv.match")
    refused(gmv, "audit", "consistency", "--attribute", "digit", reason="run `gmv match --space test` first")
