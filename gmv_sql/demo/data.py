"""The demo's data: scikit-learn's 1,797 real handwritten digits (8x8, shipped with the package, so
nothing is downloaded), split per class into members (the generator's training set) and held-out
non-members, written as PNG files with CSV manifests naming fictitious owners and licences.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SCALE = 4  # 8x8 digits are written as 32x32 PNGs (nearest neighbour): big enough to look at

# Fictitious rights holders. Licences marked False are shown in reports but never paid; the "&"
# and the apostrophe make every report escape its text properly.
OWNERS = (
    "Ada Archive Ltd",
    "Brighton Handwriting Society",
    "Carver & Daughters",
    "Dumont Scans SARL",
    "Eastgate School Project",
    "Fujimoto Studio",
    "Greta's Notebook Co",
    "Harbour Street Library",
)
LICENSES = {
    "Commercial Royalty 1.0": True,
    "Stock Photo Standard": True,
    "CC0-1.0": False,
    "Public Domain Mark": False,
}
# Each owner publishes under one licence: owners of royalty-free images still appear (unpaid credit).
OWNER_LICENSE = {
    OWNERS[0]: "Commercial Royalty 1.0",
    OWNERS[1]: "Stock Photo Standard",
    OWNERS[2]: "Commercial Royalty 1.0",
    OWNERS[3]: "Stock Photo Standard",
    OWNERS[4]: "CC0-1.0",
    OWNERS[5]: "Commercial Royalty 1.0",
    OWNERS[6]: "Public Domain Mark",
    OWNERS[7]: "Stock Photo Standard",
}
PERIOD = "2026-01"  # the month the generated images are dated in, and the royalty period


@dataclass(frozen=True)
class Split:
    """Indices into load_digits(): members train the generator, non-members are held out."""

    members: np.ndarray
    nonmembers: np.ndarray


def load_digits() -> tuple[np.ndarray, np.ndarray]:
    """(images as float in [0, 1], shape (1797, 8, 8); labels 0..9)."""
    from sklearn.datasets import load_digits as sklearn_digits

    digits = sklearn_digits()
    return digits.images / 16.0, digits.target.astype(np.int64)


def split_per_class(
    labels: np.ndarray, members_per_class: int, nonmembers_per_class: int, seed: int
) -> Split:
    """Disjoint members and non-members, the same number from every class, chosen at random (seeded)."""
    rng = np.random.default_rng(seed)
    members: list[int] = []
    nonmembers: list[int] = []
    for label in np.unique(labels):
        indices = rng.permutation(np.flatnonzero(labels == label))
        if members_per_class + nonmembers_per_class > len(indices):
            raise ValueError(
                f"class {label} has {len(indices)} images, fewer than {members_per_class} + {nonmembers_per_class}"
            )
        members += indices[:members_per_class].tolist()
        nonmembers += indices[members_per_class : members_per_class + nonmembers_per_class].tolist()
    return Split(np.array(sorted(members)), np.array(sorted(nonmembers)))


def to_png_pixels(image: np.ndarray) -> np.ndarray:
    """A [0, 1] ink image as uint8 dark ink on white paper, enlarged SCALE times."""
    ink = np.clip(np.rint(image * 255.0), 0, 255).astype(np.uint8)
    return np.kron(255 - ink, np.ones((SCALE, SCALE), dtype=np.uint8))


def write_png(path: Path, image: np.ndarray) -> str:
    """Write the image (deterministic bytes) and return the sha256 of the file."""
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(to_png_pixels(image), mode="L").save(path, format="PNG", optimize=False)
    return hashlib.sha256(path.read_bytes()).hexdigest()


@dataclass(frozen=True)
class TrainingFiles:
    manifest: Path
    members_list: Path
    nonmembers_list: Path
    opted_out_sha256: str
    n_members: int
    n_nonmembers: int


def write_training_set(
    out: Path, images: np.ndarray, labels: np.ndarray, split: Split, seed: int
) -> TrainingFiles:
    """PNGs of members and non-members, their manifest (path, owner, license, split, digit) and the
    members / non-members lists for `gmv audit membership` (the opted-out image is left out of both:
    it is never matched, so it says nothing about membership)."""
    rng = np.random.default_rng(seed + 7)
    everything = [(int(i), "member") for i in split.members] + [
        (int(i), "non-member") for i in split.nonmembers
    ]
    owners = rng.choice(len(OWNERS), size=len(everything))
    opted_out_row = int(rng.integers(len(everything)))
    manifest = out / "training.csv"
    lists = {"member": [], "non-member": []}
    opted_out_sha = ""
    with open(manifest, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["path", "owner", "license", "split", "digit", "source"])
        for row, ((index, group), owner_index) in enumerate(zip(everything, owners, strict=True)):
            relative = Path("data", "training", group, f"digit{labels[index]}_{index:04d}.png")
            sha = write_png(out / relative, images[index])
            owner = OWNERS[owner_index]
            writer.writerow(
                [
                    relative.as_posix(),
                    owner,
                    OWNER_LICENSE[owner],
                    group,
                    int(labels[index]),
                    f"sklearn-digits#{index}",
                ]
            )
            if row == opted_out_row:
                opted_out_sha = sha
            else:
                lists[group].append((relative.as_posix(), sha, int(labels[index])))
    paths = {}
    for group, name in (("member", "members.csv"), ("non-member", "nonmembers.csv")):
        paths[group] = out / name
        with open(paths[group], "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle, lineterminator="\n")
            writer.writerow(["path", "sha256", "digit"])
            writer.writerows(lists[group])
    return TrainingFiles(
        manifest=manifest,
        members_list=paths["member"],
        nonmembers_list=paths["non-member"],
        opted_out_sha256=opted_out_sha,
        n_members=len(split.members),
        n_nonmembers=len(split.nonmembers),
    )


def write_generated_set(out: Path, images: np.ndarray, labels: np.ndarray, seed: int) -> tuple[Path, int]:
    """PNGs of generated images and their manifest (path, quality, created_at in PERIOD, digit).

    Byte-identical samples are written once (gmv identifies images by their bytes)."""
    rng = np.random.default_rng(seed + 11)
    year, month = (int(part) for part in PERIOD.split("-"))
    start = dt.datetime(year, month, 1, tzinfo=dt.timezone.utc)
    seconds = rng.integers(0, 28 * 24 * 3600, size=len(images))
    manifest = out / "generated.csv"
    seen: set[str] = set()
    with open(manifest, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["path", "quality", "created_at", "digit"])
        for number, (image, label, offset) in enumerate(zip(images, labels, seconds, strict=True)):
            relative = Path("data", "generated", f"gen{number:04d}_digit{label}.png")
            sha = write_png(out / relative, image)
            if sha in seen:
                (out / relative).unlink()
                continue
            seen.add(sha)
            created = (start + dt.timedelta(seconds=int(offset))).isoformat().replace("+00:00", "Z")
            writer.writerow([relative.as_posix(), 1, created, int(label)])
    return manifest, len(seen)
