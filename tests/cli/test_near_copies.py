"""Near-copies end to end on real images: planted copies are flagged, disjoint images are not.

The space is the mirror-invariant pixels space (`gmv embed --model pixels --pixels-mirror`), where
a flipped copy has the same vector; the threshold is the space's own calibration (docs/NEAR_COPIES.md).
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps

from tests.factories import add_images_from_files

pytestmark = [pytest.mark.torch]


def _digits(folder: Path, indices) -> list[Path]:
    from gmv_sql.demo import data

    images, _ = data.load_digits()
    paths = []
    for i in indices:
        path = folder / f"digit-{i}.png"
        data.write_png(path, images[i])
        paths.append(path)
    return paths


def _photo_patches(folder: Path, n: int) -> list[Path]:
    from sklearn.datasets import load_sample_images

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for number, photo in enumerate(load_sample_images().images):
        for y in range(0, 400, 100):
            for x in range(0, 600, 100):
                if len(paths) < n and (number, y, x) != (0, 0, 0):
                    path = folder / f"patch-{number}-{y}-{x}.png"
                    Image.fromarray(photo[y : y + 96, x : x + 96]).convert("L").save(path)
                    paths.append(path)
    return paths


def _planted(folder: Path, originals: list[Path]) -> dict[Path, Path]:
    """Four kinds of copies of the originals: {copy: original}."""
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    copies = {}
    for number, original in enumerate(originals):
        image = Image.open(original).convert("L")
        kind = ("flipped", "noised", "jpeg", "cropped")[number % 4]
        path = folder / f"{kind}-{original.stem}.{'jpg' if kind == 'jpeg' else 'png'}"
        if kind == "flipped":
            ImageOps.mirror(image).save(path)
        elif kind == "noised":
            pixels = np.asarray(image, dtype=np.float32) + rng.normal(0, 8.0, (image.height, image.width))
            Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(path)
        elif kind == "jpeg":
            image.save(path, format="JPEG", quality=75)
        else:
            w, h = image.size
            image.crop((1, 1, w - 1, h - 1)).save(path)  # 1 px of 32 on each side
        copies[path] = original
    return copies


def _flagged(gmv) -> list[dict[str, str]]:
    out = gmv("report", "near-copies", "--space", "px", "--format", "csv").stdout
    return list(csv.DictReader(io.StringIO(out)))


def test_flipped_noised_jpeg_and_cropped_copies_are_flagged_and_disjoint_images_are_not(gmv, conn, tmp_path):
    training = _digits(tmp_path / "training", range(0, 300, 2))
    copies = _planted(tmp_path / "generated", training[:12])
    disjoint = _photo_patches(tmp_path / "generated", 8)
    add_images_from_files(conn, training, [*copies, *disjoint], owner="digit owner", license="CC-BY-4.0")
    gmv("embed", "--space", "px", "--model", "pixels", "--pixels-mirror", "-q")
    gmv("match", "--space", "px", "--k", "3")

    rows = _flagged(gmv)
    flagged = {Path(r["generated_uri"]): Path(r["training_uri"]) for r in rows if r["rank"] == "1"}
    assert flagged == copies  # every planted copy, each with its original; no disjoint image
    assert all(r["owner"] == "digit owner" and r["license"] == "CC-BY-4.0" for r in rows)
    assert all(
        float(r["distance"]) <= float(r["threshold"]) and r["threshold_source"] == "calibrated" for r in rows
    )
    # Calibrated by gmv match: a low percentile of distances between distinct training digits.
    threshold, source = conn.execute(
        "SELECT near_copy_distance, near_copy_source FROM gmv.embedding_space WHERE name = 'px'"
    ).fetchone()
    assert source == "calibrated" and 0 < threshold < 0.01


def test_disjoint_data_flags_none(gmv, conn, tmp_path):
    training = _digits(tmp_path / "training", range(0, 200))
    generated = [
        *_digits(tmp_path / "generated", range(1000, 1010)),
        *_photo_patches(tmp_path / "generated", 10),
    ]
    generated = [p for p in generated if p.name not in {t.name for t in training}]
    add_images_from_files(conn, training, generated)
    gmv("embed", "--space", "px", "--model", "pixels", "--pixels-mirror", "-q")
    gmv("match", "--space", "px", "--k", "3")
    assert _flagged(gmv) == []
    result = gmv("report", "near-copies", "--space", "px")
    assert "0 near-copies in space 'px'" in result.output


def test_evidence_page_marks_near_copies(gmv, conn, tmp_path):
    training = _digits(tmp_path / "training", range(0, 100))
    copies = _planted(tmp_path / "generated", training[:4])
    disjoint = _photo_patches(tmp_path / "generated", 4)
    add_images_from_files(conn, training, [*copies, *disjoint])
    gmv("embed", "--space", "px", "--model", "pixels", "--pixels-mirror", "-q")
    gmv("match", "--space", "px", "--k", "3")
    gmv("value", "refresh")
    page = tmp_path / "evidence.html"
    gmv("report", "evidence", "--space", "px", "--html", page, "--sample", "8")
    text = page.read_text(encoding="utf-8")
    assert text.count('class="cell nearcopy"') == 4  # one per planted copy, none for the photo patches
    assert "4 generated images in this space are near-copies" in text
