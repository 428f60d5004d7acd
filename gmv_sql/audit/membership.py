"""The membership test of GMValuator (arXiv 2304.10701, Table 1).

Training images that a generator really learnt from (members) should receive more credit than
images from the same distribution that it never saw (non-members). We compare the two groups'
values with Welch's t-test (unequal variances) and the AUC, the probability that a random member
is valued above a random non-member (ties count one half), which is Mann-Whitney U / (n1 n2).

Values are far from normal (many zeros, long right tail), so beside Welch's p there is a permutation
test of the difference in means (two-sided, PERMUTATIONS random relabellings, seeded; the smallest
p it can give is 1 / (PERMUTATIONS + 1)), and a bootstrap 95% confidence interval of the AUC
(BOOTSTRAP resamples of members and of non-members, each with replacement; percentile interval).

Who is tested (one definition everywhere: this audit, the evidence page, the demo): the listed
training images that can be matched, i.e. not opted out and not under an excluded licence. The
others are never matched, so their value of 0 says nothing about membership; they are left out and
counted (left_out_members / left_out_nonmembers). An image listed twice counts once.
"""

from __future__ import annotations

import csv
import io
import math
import re
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import psycopg

from gmv_sql.errors import ConflictError, InputError, NotFoundError
from gmv_sql.ingest.files import sha256_file
from gmv_sql.resources import query
from gmv_sql.textfile import read_user_text

_SHA256 = re.compile(r"^[0-9a-fA-F]{64}$")
PERMUTATIONS = 9999
BOOTSTRAP = 2000
SEED = 0  # the resampling is seeded: the same values give the same p and interval


@dataclass(frozen=True)
class MembershipResult:
    """Both groups' sizes, means and medians, Welch's t (two-sided p) and the AUC."""

    n_members: int
    n_nonmembers: int
    mean_members: float
    mean_nonmembers: float
    median_members: float
    median_nonmembers: float
    t_statistic: float
    p_value: float
    auc: float
    permutation_p_value: float = math.nan
    permutations: int = 0
    auc_ci_low: float = math.nan
    auc_ci_high: float = math.nan
    bootstrap_resamples: int = 0
    left_out_members: int = 0  # listed but opted out or under an excluded licence (never matched)
    left_out_nonmembers: int = 0
    space: str | None = None
    scheme: str | None = None

    def as_dict(self) -> dict[str, object]:
        return asdict(self)

    def rows(self) -> list[tuple[str, object]]:
        """(item, value) rows for the table and CSV output."""
        return [
            ("space", self.space),
            ("scheme", self.scheme),
            ("members n", self.n_members),
            ("members mean value", self.mean_members),
            ("members median value", self.median_members),
            ("non-members n", self.n_nonmembers),
            ("non-members mean value", self.mean_nonmembers),
            ("non-members median value", self.median_nonmembers),
            ("Welch t", self.t_statistic),
            ("p-value (two-sided)", self.p_value),
            (f"permutation p-value (two-sided, {self.permutations} permutations)", self.permutation_p_value),
            ("AUC", self.auc),
            (
                f"AUC 95% CI (bootstrap, {self.bootstrap_resamples} resamples)",
                f"{self.auc_ci_low:.3f} to {self.auc_ci_high:.3f}",
            ),
            (
                "listed but never matched (opted out / excluded licence), left out",
                f"{self.left_out_members} members, {self.left_out_nonmembers} non-members",
            ),
        ]

    def summary(self) -> str:
        """One line for people: who is valued higher and how surely."""
        direction = "higher" if self.mean_members > self.mean_nonmembers else "not higher"
        return (
            f"members' mean value {self.mean_members:.4g} vs non-members' {self.mean_nonmembers:.4g} "
            f"({direction}); Welch t = {self.t_statistic:.3f}, p = {self.p_value:.3g}; permutation p = "
            f"{self.permutation_p_value:.3g}; AUC = {self.auc:.3f} (95% CI {self.auc_ci_low:.3f} to {self.auc_ci_high:.3f}); "
            f"n = {self.n_members} members, {self.n_nonmembers} non-members"
        )


def auc_of(members: np.ndarray, nonmembers: np.ndarray) -> np.ndarray:
    """AUC = Mann-Whitney U / (n1 n2) of each row of members (..., n1) against nonmembers (..., n2)."""
    from scipy import stats

    both = np.concatenate([members, nonmembers], axis=-1)
    ranks = stats.rankdata(both, axis=-1)  # ties get their average rank: a tie counts one half
    n1, n2 = members.shape[-1], nonmembers.shape[-1]
    u = ranks[..., :n1].sum(axis=-1) - n1 * (n1 + 1) / 2
    return u / (n1 * n2)


def permutation_p_value(
    members: np.ndarray, nonmembers: np.ndarray, permutations: int = PERMUTATIONS, seed: int = SEED
) -> float:
    """Two-sided permutation test of the difference in means: (1 + #|diff*| >= |diff|) / (1 + permutations)."""
    rng = np.random.default_rng(seed)
    pooled = np.concatenate([members, nonmembers])
    n1, total = len(members), len(pooled)
    observed = abs(members.mean() - nonmembers.mean())
    tolerance = 1e-12 * max(1.0, abs(pooled).max())
    extreme, done = 0, 0
    while done < permutations:
        batch = min(1000, permutations - done)
        shuffled = pooled[np.argsort(rng.random((batch, total)), axis=1)]
        diff = np.abs(shuffled[:, :n1].mean(axis=1) - shuffled[:, n1:].mean(axis=1))
        extreme += int((diff >= observed - tolerance).sum())
        done += batch
    return (1 + extreme) / (1 + permutations)


def auc_interval(
    members: np.ndarray, nonmembers: np.ndarray, resamples: int = BOOTSTRAP, seed: int = SEED
) -> tuple[float, float]:
    """95% percentile bootstrap interval of the AUC (members and non-members resampled separately)."""
    rng = np.random.default_rng(seed)
    aucs = []
    for start in range(0, resamples, 500):
        batch = min(500, resamples - start)
        m = members[rng.integers(0, len(members), size=(batch, len(members)))]
        n = nonmembers[rng.integers(0, len(nonmembers), size=(batch, len(nonmembers)))]
        aucs.append(auc_of(m, n))
    low, high = np.percentile(np.concatenate(aucs), [2.5, 97.5])
    return float(low), float(high)


def membership_test(member_values, nonmember_values) -> MembershipResult:
    """Welch's t-test, permutation test, AUC and its bootstrap interval: members' vs non-members' values."""
    from scipy import stats

    members = np.asarray(member_values, dtype=np.float64)
    nonmembers = np.asarray(nonmember_values, dtype=np.float64)
    for name, values in (("members", members), ("non-members", nonmembers)):
        if values.ndim != 1 or len(values) < 2:
            raise InputError(
                f"the {name} list names {values.size} valued image(s); the test needs at least 2 per group"
            )
        if not np.isfinite(values).all():
            raise InputError(
                f"the {name}' values contain NaN or infinity; refresh the valuation (gmv value refresh)"
            )
    if np.ptp(members) == 0 and np.ptp(nonmembers) == 0:
        # Both groups constant: Welch's t is undefined; equal constants mean no evidence at all.
        t_stat = 0.0 if members[0] == nonmembers[0] else math.copysign(math.inf, members[0] - nonmembers[0])
        p_value = 1.0 if members[0] == nonmembers[0] else 0.0
    else:
        welch = stats.ttest_ind(members, nonmembers, equal_var=False)
        t_stat, p_value = float(welch.statistic), float(welch.pvalue)
    u_stat = stats.mannwhitneyu(members, nonmembers, alternative="two-sided").statistic  # U of members
    auc = float(u_stat) / (len(members) * len(nonmembers))
    ci_low, ci_high = auc_interval(members, nonmembers)
    return MembershipResult(
        n_members=len(members),
        n_nonmembers=len(nonmembers),
        mean_members=float(members.mean()),
        mean_nonmembers=float(nonmembers.mean()),
        median_members=float(np.median(members)),
        median_nonmembers=float(np.median(nonmembers)),
        t_statistic=t_stat,
        p_value=p_value,
        auc=auc,
        permutation_p_value=permutation_p_value(members, nonmembers),
        permutations=PERMUTATIONS,
        auc_ci_low=ci_low,
        auc_ci_high=ci_high,
        bootstrap_resamples=BOOTSTRAP,
    )


@dataclass(frozen=True)
class ListedImage:
    """One entry of a members/non-members list: where it was and what it names."""

    where: str  # "members.txt:3"
    text: str  # as written
    sha256: str | None  # known when the entry is a digest or an existing file


def read_image_list(path: Path) -> list[ListedImage]:
    """Entries of a list file: one sha256 or image path per line, or a CSV with a sha256 or path column.

    Blank lines and lines starting with # are skipped. A path to an existing file is identified by
    the sha256 of its bytes (the identity gmv ingest gives images); otherwise by its stored uri.
    """
    text = read_user_text(path, "list file", encoding_hint="give one sha256 or path per line")
    name = Path(path).name
    base = Path(path).resolve().parent
    lines = text.splitlines()
    first = next((line for line in lines if line.strip() and not line.lstrip().startswith("#")), "")
    header = [h.strip().lower() for h in next(csv.reader([first]))] if first else []
    entries: list[tuple[str, str]] = []
    if "," in first and ("sha256" in header or "path" in header):
        column = header.index("sha256") if "sha256" in header else header.index("path")
        reader = csv.reader(io.StringIO(text, newline=""))
        next(reader)
        for values in reader:
            where = f"{name}:{reader.line_num}"
            if not any(v.strip() for v in values):
                continue
            if column >= len(values) or not values[column].strip():
                raise InputError(f"{where}: no {header[column]} value; fill it or delete the row")
            entries.append((where, values[column].strip()))
    else:
        for number, line in enumerate(lines, start=1):
            value = line.strip()
            if value and not value.startswith("#") and value.lower() not in ("sha256", "path"):
                entries.append((f"{name}:{number}", value))
    result = []
    for where, value in entries:
        if _SHA256.match(value):
            result.append(ListedImage(where, value, value.lower()))
            continue
        candidate = Path(value).expanduser()
        if not candidate.is_absolute():
            candidate = base / candidate
        result.append(ListedImage(where, value, sha256_file(candidate) if candidate.is_file() else None))
    if not result:
        raise InputError(f"list file {str(path)!r} names no images; give one sha256 or path per line")
    return result


def _find(entry: ListedImage, by_sha: dict, by_uri: dict):
    """The row of a listed image, by its sha256, else by its stored uri (None: gmv does not know it)."""
    found = by_sha.get(entry.sha256) if entry.sha256 else None
    if found is None and not _SHA256.match(entry.text):
        found = by_uri.get(entry.text) or by_uri.get(str(Path(entry.text).expanduser().resolve()))
    if found is None:
        raise NotFoundError(
            f"{entry.where}: {entry.text!r} is not a training image gmv knows; "
            "ingest it with `gmv ingest training` or remove it from the list"
        )
    return found


def resolve_training_ids(conn: psycopg.Connection, entries: list[ListedImage]) -> list[int]:
    """The training ids of the listed images (each once, in list order); unknown ones are a one-line error."""
    rows = conn.execute(query("audit", "training_identities")).fetchall()
    by_sha = {sha: tid for tid, sha, _ in rows}
    by_uri = {uri: tid for tid, _, uri in rows}
    return list(dict.fromkeys(_find(entry, by_sha, by_uri) for entry in entries))


@dataclass(frozen=True)
class ListedValues:
    """The values of a list's images that can be matched, and the listed images that cannot."""

    values: dict[int, float]  # training_id -> value (an image listed twice once)
    left_out: frozenset[int]  # opted out or under an excluded licence: never matched


def values_of(
    conn: psycopg.Connection, entries: list[ListedImage], *, space: str, scheme: str
) -> ListedValues:
    """The listed images' values (see ListedValues); an image gmv does not know is a one-line error."""
    rows = conn.execute(query("audit", "training_values"), {"space": space, "scheme": scheme}).fetchall()
    by_sha = {sha: (tid, value, ok) for tid, sha, _, value, ok in rows}
    by_uri = {uri: (tid, value, ok) for tid, _, uri, value, ok in rows}
    values: dict[int, float] = {}
    left_out: set[int] = set()
    for entry in entries:
        training_id, value, matchable = _find(entry, by_sha, by_uri)
        if not matchable:
            left_out.add(training_id)
            continue
        if value is None:
            raise NotFoundError(
                f"{entry.where}: training image {training_id} has no value in space {space!r} / scheme {scheme!r}; "
                f"run `gmv match --space {space}` and `gmv value refresh`"
            )
        values[training_id] = float(value)
    return ListedValues(values, frozenset(left_out))


def audit_membership(
    conn: psycopg.Connection, members: Path, nonmembers: Path, *, space: str, scheme: str
) -> MembershipResult:
    """Read both lists, look up the images' values and run the test."""
    listed_members = values_of(conn, read_image_list(members), space=space, scheme=scheme)
    listed_nonmembers = values_of(conn, read_image_list(nonmembers), space=space, scheme=scheme)
    member_values, nonmember_values = listed_members.values, listed_nonmembers.values
    both = sorted(
        (set(member_values) | listed_members.left_out) & (set(nonmember_values) | listed_nonmembers.left_out)
    )
    if both:
        raise ConflictError(
            f"training image {both[0]} is in both {str(members)!r} and {str(nonmembers)!r} "
            f"({len(both)} such); an image is a member or a non-member, not both"
        )
    result = membership_test(list(member_values.values()), list(nonmember_values.values()))
    return MembershipResult(
        **{
            **result.as_dict(),
            "left_out_members": len(listed_members.left_out),
            "left_out_nonmembers": len(listed_nonmembers.left_out),
            "space": space,
            "scheme": scheme,
        }
    )
