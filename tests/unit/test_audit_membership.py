"""The membership statistics (no database): Welch's t-test and AUC against brute-force references,
and the member / non-member list formats."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from gmv_sql.audit.membership import membership_test, read_image_list
from gmv_sql.errors import InputError
from tests.factories import sha256


def brute_force_auc(members, nonmembers) -> float:
    """P(member > non-member) + 0.5 P(tie), over every pair."""
    wins = sum((m > n) + 0.5 * (m == n) for m in members for n in nonmembers)
    return wins / (len(members) * len(nonmembers))


def welch_by_hand(a, b) -> float:
    a, b = np.asarray(a, float), np.asarray(b, float)
    return (a.mean() - b.mean()) / math.sqrt(a.var(ddof=1) / len(a) + b.var(ddof=1) / len(b))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_statistics_match_references(seed):
    rng = np.random.default_rng(seed)
    members = rng.gamma(2.0, 1.0, size=40) + 0.5
    # Rounded values make ties, which the AUC must count as one half.
    nonmembers = np.round(rng.gamma(2.0, 1.0, size=55), 1)
    members = np.round(members, 1)
    result = membership_test(members, nonmembers)
    assert result.n_members == 40 and result.n_nonmembers == 55
    assert result.mean_members == pytest.approx(members.mean())
    assert result.median_nonmembers == pytest.approx(np.median(nonmembers))
    assert result.t_statistic == pytest.approx(welch_by_hand(members, nonmembers), rel=1e-12)
    assert result.p_value == pytest.approx(
        stats.ttest_ind(members, nonmembers, equal_var=False).pvalue, rel=1e-12
    )
    assert result.auc == pytest.approx(brute_force_auc(members, nonmembers), abs=1e-12)


def test_clear_separation_gives_auc_one_and_tiny_p():
    result = membership_test([5.0, 6.0, 7.0, 8.0], [0.0, 0.5, 1.0, 1.5])
    assert result.auc == 1.0
    assert result.p_value < 0.01
    assert "higher" in result.summary() and "not higher" not in result.summary()


def test_reversed_groups_give_complementary_auc():
    rng = np.random.default_rng(5)
    a, b = rng.normal(size=30), rng.normal(0.3, size=25)
    assert membership_test(a, b).auc + membership_test(b, a).auc == pytest.approx(1.0)


def test_constant_groups_do_not_crash():
    same = membership_test([0.0, 0.0, 0.0], [0.0, 0.0])
    assert same.p_value == 1.0 and same.auc == 0.5
    apart = membership_test([1.0, 1.0], [0.0, 0.0, 0.0])
    assert apart.p_value == 0.0 and apart.auc == 1.0 and apart.t_statistic == math.inf


def test_too_few_images_is_a_clear_error():
    with pytest.raises(InputError, match="at least 2"):
        membership_test([1.0], [0.0, 1.0])


def test_plain_list_of_sha256_and_paths(tmp_path):
    image = tmp_path / "images" / "a.png"
    image.parent.mkdir()
    image.write_bytes(b"not really a png, but bytes are bytes")
    digest = "AB" * 32
    listing = tmp_path / "members.txt"
    listing.write_text(f"# members\n{digest}\n\nimages/a.png\n/nowhere/b.png\n", encoding="utf-8")
    entries = read_image_list(listing)
    assert [e.where for e in entries] == ["members.txt:2", "members.txt:4", "members.txt:5"]
    assert entries[0].sha256 == digest.lower()
    # A relative path resolves against the list's folder and is identified by its bytes.
    assert entries[1].sha256 == sha256(image)
    assert entries[2].sha256 is None and entries[2].text == "/nowhere/b.png"


@pytest.mark.parametrize("column", ["sha256", "path"])
def test_csv_with_sha256_or_path_column(tmp_path, column):
    listing = tmp_path / "list.csv"
    value = "cd" * 32 if column == "sha256" else "x/y.png"
    listing.write_text(f'digit,{column},note\n3,{value},"a, b"\n', encoding="utf-8")
    entries = read_image_list(listing)
    assert len(entries) == 1 and entries[0].text == value and entries[0].where == "list.csv:2"


def test_csv_prefers_sha256_over_path(tmp_path):
    listing = tmp_path / "list.csv"
    listing.write_text("path,sha256\nsome/file.png," + "ef" * 32 + "\n", encoding="utf-8")
    assert read_image_list(listing)[0].sha256 == "ef" * 32


def test_empty_or_missing_list_is_a_one_line_error(tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("# nothing\n\n", encoding="utf-8")
    with pytest.raises(InputError, match="names no images"):
        read_image_list(empty)
    with pytest.raises(InputError, match="does not exist"):
        read_image_list(tmp_path / "missing.txt")
    bad = tmp_path / "bad.csv"
    bad.write_text("sha256,digit\n,3\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"bad.csv:2: no sha256"):
        read_image_list(bad)
