"""`gmv audit membership --sweep`: every scheme, temperature and k, against numpy on the stored matches."""

from __future__ import annotations

import json
from collections import defaultdict

import numpy as np
import pytest
from scipy import stats

from tests.factories import fingerprint, refused, seed

N_TRAINING, N_MEMBERS, N_GENERATED, N_CLASSES = 100, 50, 200, 5


@pytest.fixture
def sweep_world(conn, gmv, tmp_path):
    """Training images in 5 classes; generated images are noisy copies of the first 50 (the members)."""
    rng = np.random.default_rng(7)
    centres = rng.normal(size=(N_CLASSES, 12))
    classes = rng.integers(0, N_CLASSES, size=N_TRAINING)
    training = (centres[classes] + 0.5 * rng.normal(size=(N_TRAINING, 12))).astype(np.float32)
    parents = rng.integers(0, N_MEMBERS, size=N_GENERATED)
    generated = (training[parents] + 0.2 * rng.normal(size=(N_GENERATED, 12))).astype(np.float32)
    world = seed(conn, training_vectors=training, generated_vectors=generated, space="test", quality="random")
    tids, gids = world["training_ids"], world["generated_ids"]
    with conn.cursor() as cur:
        cur.executemany(
            "UPDATE gmv.training_image SET attributes = jsonb_build_object('digit', %s::text) WHERE training_id = %s",
            [(str(classes[i]), int(tids[i])) for i in range(N_TRAINING)],
        )
        # A quarter of the generated images come out as another class than their parent's.
        shown = [classes[p] if j % 4 else (classes[p] + 1) % N_CLASSES for j, p in enumerate(parents)]
        cur.executemany(
            "UPDATE gmv.generated_image SET attributes = jsonb_build_object('digit', %s::text) WHERE generated_id = %s",
            [(str(shown[j]), int(gids[j])) for j in range(N_GENERATED)],
        )
    gmv("match", "--space", "test", "--k", "5", "--exact")
    gmv("value", "refresh")
    shas = dict(conn.execute("SELECT training_id, sha256 FROM gmv.training_image").fetchall())
    members = tmp_path / "members.txt"
    members.write_text("\n".join(shas[int(i)] for i in tids[:N_MEMBERS]) + "\n")
    nonmembers = tmp_path / "nonmembers.txt"
    nonmembers.write_text("\n".join(shas[int(i)] for i in tids[N_MEMBERS:]) + "\n")
    labels = {int(tids[i]): str(classes[i]) for i in range(N_TRAINING)}
    generated_labels = {int(gids[j]): str(shown[j]) for j in range(N_GENERATED)}
    return {
        "world": world,
        "members": members,
        "nonmembers": nonmembers,
        "labels": labels,
        "generated_labels": generated_labels,
    }


def _numpy_row(conn, world, labels, generated_labels, formula, temperature, k):
    """p, AUC and class consistency of one setting, from gmv.match rows in numpy (DESIGN.md maths)."""
    quality = dict(conn.execute("SELECT generated_id, quality FROM gmv.generated_image"))
    by_generated = defaultdict(list)
    for g, rank, t, d in conn.execute("SELECT generated_id, rank, training_id, distance FROM gmv.match"):
        if rank <= k:
            by_generated[g].append((rank, t, d))
    credit: dict[int, float] = defaultdict(float)
    same = total = 0.0
    for g, rows in by_generated.items():
        ranks = np.array([r for r, _, _ in rows], dtype=float)
        dists = np.array([d for _, _, d in rows])
        if formula == "rank_linear":
            raw = k - ranks + 1
        elif formula == "reciprocal_rank":
            raw = 1 / ranks
        elif formula.startswith("softmax"):
            raw = np.exp(-(dists - dists.min()) / temperature)
        else:
            raw = np.ones_like(ranks)
        for (_, t, _), w in zip(rows, quality[g] * raw / raw.sum(), strict=True):
            credit[t] += w
            total += w
            same += w * (labels[t] == generated_labels[g])
    ids = [int(i) for i in world["training_ids"]]
    m = np.array([credit.get(t, 0.0) for t in ids[:N_MEMBERS]])
    n = np.array([credit.get(t, 0.0) for t in ids[N_MEMBERS:]])
    p = stats.ttest_ind(m, n, equal_var=False).pvalue
    auc = stats.mannwhitneyu(m, n, alternative="two-sided").statistic / (len(m) * len(n))
    return p, auc, same / total


def _sweep(gmv, w, *extra):
    return json.loads(
        gmv(
            "audit",
            "membership",
            "--members",
            w["members"],
            "--nonmembers",
            w["nonmembers"],
            "--sweep",
            *extra,
            "--format",
            "json",
        ).stdout
    )


def test_sweep_matches_numpy_for_every_scheme_temperature_and_k(sweep_world, gmv, conn):
    w = sweep_world
    result = _sweep(gmv, w, "--sweep-k", "1,3,5")
    assert result["class_attribute"] == "digit" and result["stored_k"] == 5 and result["searched_k"] is None
    schemes = dict(conn.execute("SELECT name, formula FROM gmv.valuation_scheme").fetchall())
    calibrated_t = conn.execute("SELECT temperature FROM gmv.scheme_calibration").fetchone()[0]
    # 4 schemes x 3 k, and softmax_calibrated at 5 temperatures x 3 k.
    assert len(result["rows"]) == (len(schemes) - 1) * 3 + 5 * 3
    for row in result["rows"]:
        formula = schemes[row["scheme"]]
        if formula == "softmax_calibrated":
            assert row["temperature"] == pytest.approx(calibrated_t * row["temperature_factor"], rel=1e-12)
        p, auc, consistency = _numpy_row(
            conn, w["world"], w["labels"], w["generated_labels"], formula, row["temperature"], row["k"]
        )
        assert row["p_value"] == pytest.approx(p, rel=1e-6), row
        assert row["auc"] == pytest.approx(auc, abs=1e-12), row
        assert row["class_consistency"] == pytest.approx(consistency, abs=1e-9), row
    # The members were copied: every setting finds them; a quarter of the classes were changed.
    assert all(r["p_value"] < 1e-3 and r["auc"] > 0.7 for r in result["rows"])
    assert all(0.4 < r["class_consistency"] < 0.8 for r in result["rows"])
    # The sweep agrees with the plain audit (report.training_value) at the stored k.
    plain = json.loads(
        gmv(
            "audit", "membership", "--members", w["members"], "--nonmembers", w["nonmembers"],
            "--scheme", "reciprocal_rank", "--format", "json",
        ).output
    )  # fmt: skip
    row = next(r for r in result["rows"] if r["scheme"] == "reciprocal_rank" and r["k"] == 5)
    assert row["p_value"] == pytest.approx(plain["p_value"], rel=1e-9)
    assert result["summary"].startswith("sweep of 27 settings in space 'test': strongest ")
    table = gmv(
        "audit",
        "membership",
        "--members",
        w["members"],
        "--nonmembers",
        w["nonmembers"],
        "--sweep",
        "--sweep-k",
        "1,3,5",
    )
    assert table.output.splitlines()[-1] == result["summary"]


def test_a_larger_k_is_searched_not_stored(sweep_world, gmv, conn):
    w = sweep_world
    before = fingerprint(conn, "match")
    wider = _sweep(gmv, w, "--sweep-k", "5,10")
    assert wider["searched_k"] == 10
    assert fingerprint(conn, "match") == before
    gmv("match", "--space", "test", "--k", "10", "--exact", "--rematch")
    gmv("value", "calibrate", "--space", "test")  # the stored calibration predates the re-match
    stored = _sweep(gmv, w, "--sweep-k", "10")
    assert stored["searched_k"] is None
    searched = {
        (r["scheme"], r["temperature_factor"]): r
        for r in wider["rows"]
        if r["k"] == 10 and r["scheme"] != "softmax_calibrated"
    }
    for row in stored["rows"]:
        if row["scheme"] == "softmax_calibrated":
            continue
        twin = searched[(row["scheme"], row["temperature_factor"])]
        assert twin["p_value"] == pytest.approx(row["p_value"], rel=1e-9)
        assert twin["class_consistency"] == pytest.approx(row["class_consistency"], abs=1e-12)


@pytest.mark.parametrize(
    ("extra", "reason"),
    [
        (("--sweep-k", "0,3"), "--sweep-k '0,3' is not a comma-separated list"),
        (("--sweep-k", "three"), "--sweep-k 'three'"),
        (("--class-attribute", "colour"), "attribute 'colour' is not on both"),
        (("--scheme", "uniform"), "--scheme 'uniform' and --sweep do not go together"),
    ],
)
def test_sweep_bad_input_is_one_line(sweep_world, gmv, extra, reason):
    w = sweep_world
    refused(
        gmv, "audit", "membership", "--members", w["members"], "--nonmembers", w["nonmembers"], "--sweep", *extra,
        reason=reason,
    )  # fmt: skip


def test_sweep_of_a_space_without_matches(conn, gmv, tmp_path):
    seed(conn, n_training=10, n_generated=4, dim=4)
    shas = [r[0] for r in conn.execute("SELECT sha256 FROM gmv.training_image ORDER BY training_id")]
    (tmp_path / "m.txt").write_text("\n".join(shas[:5]))
    (tmp_path / "n.txt").write_text("\n".join(shas[5:]))
    refused(
        gmv, "audit", "membership", "--members", tmp_path / "m.txt", "--nonmembers", tmp_path / "n.txt", "--sweep",
        reason="has no matches to sweep",
    )  # fmt: skip
