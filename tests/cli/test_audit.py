"""`gmv audit membership` end to end on synthetic vectors where the answer is known."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import stats

from tests.factories import clustered_vectors, seed


@pytest.fixture
def membership_world(conn, gmv, tmp_path):
    """120 training images; generated images are noisy copies of the first 60 (the members) only, k = 3."""
    rng = np.random.default_rng(4)
    training, _ = clustered_vectors(rng, 120, 0, 16, n_clusters=6)
    parents = rng.integers(0, 60, size=300)
    generated = training[parents] + 0.05 * rng.normal(size=(300, 16)).astype(np.float32)
    world = seed(conn, training_vectors=training, generated_vectors=generated, space="test")
    gmv("match", "--space", "test", "--k", "3")
    gmv("value", "refresh")
    shas = dict(conn.execute("SELECT training_id, sha256 FROM gmv.training_image").fetchall())
    uris = dict(conn.execute("SELECT training_id, uri FROM gmv.training_image").fetchall())
    ids = world["training_ids"]
    members = tmp_path / "members.txt"
    members.write_text("# sha256 of the members\n" + "\n".join(shas[int(i)] for i in ids[:60]) + "\n")
    nonmembers = tmp_path / "nonmembers.csv"  # a CSV naming images by their stored uri
    nonmembers.write_text("digit,path\n" + "".join(f"0,{uris[int(i)]}\n" for i in ids[60:]))
    return {"world": world, "members": members, "nonmembers": nonmembers, "shas": shas}


def test_members_are_valued_higher(membership_world, gmv, conn):
    w = membership_world
    result = gmv(
        "audit", "membership", "--members", w["members"], "--nonmembers", w["nonmembers"], "--format", "json"
    )
    numbers = json.loads(result.output)
    # An independent computation from the report view.
    values = dict(
        conn.execute(
            "SELECT training_id, value FROM report.training_value WHERE space = 'test' AND scheme = 'softmax_calibrated'"
        ).fetchall()
    )
    ids = w["world"]["training_ids"]
    member_values = np.array([values[int(i)] for i in ids[:60]])
    nonmember_values = np.array([values[int(i)] for i in ids[60:]])
    welch = stats.ttest_ind(member_values, nonmember_values, equal_var=False)
    assert numbers["n_members"] == 60 and numbers["n_nonmembers"] == 60
    assert numbers["space"] == "test" and numbers["scheme"] == "softmax_calibrated"  # the space's default
    assert numbers["mean_members"] == pytest.approx(member_values.mean())
    assert numbers["median_nonmembers"] == pytest.approx(np.median(nonmember_values))
    assert numbers["p_value"] == pytest.approx(welch.pvalue, rel=1e-9)
    assert numbers["mean_members"] > numbers["mean_nonmembers"] and numbers["p_value"] < 1e-4
    assert numbers["auc"] > 0.75
    # Beside Welch: a permutation p-value and a bootstrap interval of the AUC.
    assert numbers["permutation_p_value"] == pytest.approx(1 / 10_000) and numbers["permutations"] == 9999
    assert numbers["auc_ci_low"] < numbers["auc"] < numbers["auc_ci_high"] <= 1

    table = gmv("audit", "membership", "--members", w["members"], "--nonmembers", w["nonmembers"]).output
    assert "Welch t" in table and "AUC" in table and "(higher)" in table
    csv_out = gmv(
        "audit", "membership", "--members", w["members"], "--nonmembers", w["nonmembers"], "--format", "csv"
    ).output
    assert csv_out.splitlines()[0] == "item,value"

    # Another scheme gives other numbers but the same verdict.
    other = json.loads(
        gmv(
            "audit",
            "membership",
            "--members",
            w["members"],
            "--nonmembers",
            w["nonmembers"],
            "--scheme",
            "uniform",
            "--format",
            "json",
        ).output
    )
    assert other["scheme"] == "uniform" and other["mean_members"] > other["mean_nonmembers"]


def test_unknown_image_is_a_one_line_error(membership_world, gmv, tmp_path):
    w = membership_world
    bad = tmp_path / "bad.txt"
    lines = w["members"].read_text().splitlines()
    lines.insert(3, "f" * 64)
    bad.write_text("\n".join(lines) + "\n")
    result = gmv("audit", "membership", "--members", bad, "--nonmembers", w["nonmembers"], ok=False)
    assert result.exit_code == 1
    message = result.output.strip()
    assert len(message.splitlines()) == 1
    assert "bad.txt:4" in message and "f" * 64 in message and "gmv ingest training" in message

    missing_path = tmp_path / "paths.txt"
    missing_path.write_text("/no/such/image.png\n/no/such/other.png\n")
    result = gmv("audit", "membership", "--members", missing_path, "--nonmembers", w["nonmembers"], ok=False)
    assert "'/no/such/image.png'" in result.output and len(result.output.strip().splitlines()) == 1


def test_an_image_in_both_lists_is_refused(membership_world, gmv, tmp_path):
    w = membership_world
    overlap = tmp_path / "overlap.txt"
    first_nonmember = w["shas"][int(w["world"]["training_ids"][60])]
    overlap.write_text(w["members"].read_text() + first_nonmember + "\n")
    result = gmv("audit", "membership", "--members", overlap, "--nonmembers", w["nonmembers"], ok=False)
    assert "in both" in result.output and len(result.output.strip().splitlines()) == 1


def test_needs_a_matched_space(gmv, tmp_path):
    listing = tmp_path / "m.txt"
    listing.write_text("a" * 64 + "\n")
    result = gmv("audit", "membership", "--members", listing, "--nonmembers", listing, ok=False)
    assert result.exit_code == 1 and "embedding space" in result.output


def test_opted_out_and_excluded_images_are_left_out_and_counted(membership_world, gmv, conn):
    """One population everywhere: images that can be matched. A listed image that never can is left out."""
    w = membership_world
    ids = w["world"]["training_ids"]
    conn.execute("UPDATE gmv.training_image SET opted_out = true WHERE training_id = %s", (int(ids[61]),))
    conn.execute("INSERT INTO gmv.license (name, excluded) VALUES ('withdrawn', true)")
    conn.execute(
        "UPDATE gmv.training_image SET license_id = (SELECT license_id FROM gmv.license WHERE name = 'withdrawn')"
        " WHERE training_id = %s",
        (int(ids[0]),),
    )
    numbers = json.loads(
        gmv(
            "audit",
            "membership",
            "--members",
            w["members"],
            "--nonmembers",
            w["nonmembers"],
            "--format",
            "json",
        ).output
    )
    assert (numbers["n_members"], numbers["n_nonmembers"]) == (59, 59)
    assert (numbers["left_out_members"], numbers["left_out_nonmembers"]) == (1, 1)
    table = gmv("audit", "membership", "--members", w["members"], "--nonmembers", w["nonmembers"]).output
    assert "1 members, 1 non-members" in table and "n = 59 members, 59 non-members" in table


def test_evidence_page_and_audit_count_the_same_images(membership_world, gmv, conn, tmp_path):
    """After an opt-out, the page's value distribution and the audit still agree on n and means."""
    w = membership_world
    ids = w["world"]["training_ids"]
    conn.execute(
        "UPDATE gmv.training_image SET attributes = jsonb_build_object('split',"
        " CASE WHEN training_id = ANY(%s) THEN 'member' ELSE 'non-member' END)",
        ([int(i) for i in ids[:60]],),
    )
    conn.execute("UPDATE gmv.training_image SET opted_out = true WHERE training_id = %s", (int(ids[70]),))
    numbers = json.loads(
        gmv(
            "audit",
            "membership",
            "--members",
            w["members"],
            "--nonmembers",
            w["nonmembers"],
            "--format",
            "json",
        ).output
    )
    page = tmp_path / "evidence.html"
    gmv("report", "evidence", "--space", "test", "--html", page)
    text = page.read_text(encoding="utf-8")
    assert numbers["n_nonmembers"] == 59
    assert f"member n = {numbers['n_members']} (mean {numbers['mean_members']:.4g})" in text
    assert f"non-member n = {numbers['n_nonmembers']} (mean {numbers['mean_nonmembers']:.4g})" in text
    assert "1 opted-out or excluded images are left out" in text
