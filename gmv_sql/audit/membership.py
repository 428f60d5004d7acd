"""The membership test of GMValuator (arXiv 2304.10701, Table 1).

Training images that a generator really learnt from (members) should receive more credit than
images from the same distribution that it never saw (non-members). We compare the two groups'
values with Welch's t-test (unequal variances) and the AUC, the probability that a random member
is valued above a random non-member (ties count one half), which is Mann-Whitney U / (n1 n2).
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

_SHA256 = re.compile(r"^[0-9a-fA-F]{64}$")


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
            ("AUC", self.auc),
        ]

    def summary(self) -> str:
        """One line for people: who is valued higher and how surely."""
        direction = "higher" if self.mean_members > self.mean_nonmembers else "not higher"
        return (
            f"members' mean value {self.mean_members:.4g} vs non-members' {self.mean_nonmembers:.4g} "
            f"({direction}); Welch t = {self.t_statistic:.3f}, p = {self.p_value:.3g}, AUC = {self.auc:.3f}"
        )


def membership_test(member_values, nonmember_values) -> MembershipResult:
    """Welch's t-test and AUC of members' values against non-members' values."""
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
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise InputError(f"list file {str(path)!r} does not exist; check the path") from None
    except UnicodeDecodeError:
        raise InputError(
            f"list file {str(path)!r} is not UTF-8 text; give one sha256 or path per line"
        ) from None
    except OSError as exc:
        raise InputError(f"cannot read list file {str(path)!r}: {exc.strerror}") from None
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


def values_of(
    conn: psycopg.Connection, entries: list[ListedImage], *, space: str, scheme: str
) -> dict[int, float]:
    """{training_id: value} of the listed images; an image gmv does not know is a one-line error."""
    rows = conn.execute(query("audit", "training_values"), {"space": space, "scheme": scheme}).fetchall()
    by_sha = {sha: (tid, value) for tid, sha, _, value in rows}
    by_uri = {uri: (tid, value) for tid, _, uri, value in rows}
    values: dict[int, float] = {}
    for entry in entries:
        training_id, value = _find(entry, by_sha, by_uri)
        if value is None:
            raise NotFoundError(
                f"{entry.where}: training image {training_id} has no value in space {space!r} / scheme {scheme!r}; "
                f"run `gmv match --space {space}` and `gmv value refresh`"
            )
        values[training_id] = float(value)
    return values


def audit_membership(
    conn: psycopg.Connection, members: Path, nonmembers: Path, *, space: str, scheme: str
) -> MembershipResult:
    """Read both lists, look up the images' values and run the test."""
    member_values = values_of(conn, read_image_list(members), space=space, scheme=scheme)
    nonmember_values = values_of(conn, read_image_list(nonmembers), space=space, scheme=scheme)
    both = sorted(set(member_values) & set(nonmember_values))
    if both:
        raise ConflictError(
            f"training image {both[0]} is in both {str(members)!r} and {str(nonmembers)!r} "
            f"({len(both)} such); an image is a member or a non-member, not both"
        )
    result = membership_test(list(member_values.values()), list(nonmember_values.values()))
    return MembershipResult(**{**result.as_dict(), "space": space, "scheme": scheme})
