"""Near-copies: generated images (almost) identical to a training image, a privacy and licensing risk.

GMValuator (arXiv 2304.10701) notes that matching also exposes memorisation. A generated image is a
near-copy when a matched training image is at most the space's near_copy_distance away
(report.near_copy). The threshold is calibrated from the space's own training data: distinct training
images are rarely closer to each other than the PERCENTILE-th percentile of their nearest-other-
training distances, so a generated image closer than that to a training image is closer than almost
any two different training images are (rule and measurements: docs/NEAR_COPIES.md). Duplicates inside
the training set (closer than DUPLICATE_FRACTION of the median nearest-other distance, e.g. the same
digit twice, or two patches of empty sky) are left out of the sample: they are copies of each other,
not distinct images, and would pull the threshold to zero.
A threshold set by hand (`gmv space set NAME --near-copy-distance D`) is kept until calibrated again.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import psycopg

from gmv_sql import spaces
from gmv_sql.errors import InputError
from gmv_sql.resources import query
from gmv_sql.spaces import EmbeddingSpace

PERCENTILE = 1.0  # of the nearest-other-training distances (docs/NEAR_COPIES.md)
SAMPLE = 5000  # training images whose nearest other training image is looked up
DUPLICATE_FRACTION = 0.01  # of the median: closer pairs are duplicates inside the training set
MIN_SAMPLE = 10  # fewer distinct distances than this calibrate nothing
# A copy is at distance 0 in these; the negative inner product has no such zero.
CALIBRATED_DISTANCES = ("cosine", "l2")


def distinct(distances: np.ndarray) -> np.ndarray:
    """The nearest-other-training distances that are not duplicates (see DUPLICATE_FRACTION)."""
    d = np.asarray(distances, dtype=np.float64)
    d = d[np.isfinite(d)]
    if len(d) == 0:
        return d
    return d[d > max(DUPLICATE_FRACTION * float(np.median(d)), 1e-9)]


def threshold_from(distances: np.ndarray, percentile: float = PERCENTILE) -> float:
    """The calibration rule on a sample of nearest-other-training distances (duplicates left out)."""
    d = distinct(distances)
    if len(d) == 0:
        return 0.0
    return float(np.percentile(d, percentile))


def nearest_other_distances(vectors: np.ndarray) -> np.ndarray:
    """Cosine distance of each unit row to its nearest other row (numpy; for measurements and tests)."""
    v = np.asarray(vectors, dtype=np.float64)
    d = 1.0 - v @ v.T
    np.fill_diagonal(d, np.inf)
    return d.min(axis=1)


@dataclass(frozen=True)
class Calibration:
    space: str
    threshold: float | None
    source: str | None  # calibrated / set (kept) / None (too little data)
    sampled: int  # training images whose nearest other was looked up
    duplicates: int  # of those, closer than DUPLICATE_FRACTION x median to another training image (left out)
    percentiles: dict[str, float]
    changed: bool  # the stored threshold was written


def calibrate(
    conn: psycopg.Connection,
    space: EmbeddingSpace,
    *,
    percentile: float = PERCENTILE,
    sample: int = SAMPLE,
    override: bool = False,
) -> Calibration:
    """Calibrate the space's near-copy distance from its training vectors and store it.

    A threshold set by hand is kept unless override (gmv space calibrate does override)."""
    if not 0 < percentile < 100:
        raise InputError(f"--percentile {percentile} is outside (0, 100); use e.g. {PERCENTILE}")
    if space.distance not in CALIBRATED_DISTANCES:
        raise InputError(
            f"space {space.name!r} uses {space.distance} distance; near-copy calibration needs cosine or l2 "
            f"(a distance that is 0 for a copy); embed a cosine space for near-copies"
        )
    with conn.transaction():
        conn.execute(
            query("match", "set_local"), {"names": ["hnsw.ef_search", "jit"], "values": ["100", "off"]}
        )
        rows = conn.execute(
            spaces.render("quality", "training_nearest_other", space), {"n": int(sample)}
        ).fetchall()
    distances = np.array([r[0] for r in rows], dtype=np.float64)
    kept = distinct(distances)
    shown = {f"p{p:g}": float(np.percentile(kept, p)) for p in (0.5, 1, 2, 5, 50)} if len(kept) else {}
    current = conn.execute(query("quality", "near_copy_setting"), {"space_id": space.space_id}).fetchone()
    if len(kept) < MIN_SAMPLE:
        return Calibration(
            space.name, current[0], current[1], len(distances), len(distances) - len(kept), shown, False
        )
    if current[1] == "set" and not override:
        return Calibration(
            space.name, current[0], "set", len(distances), len(distances) - len(kept), shown, False
        )
    threshold = threshold_from(distances, percentile)
    record = {
        "rule": f"percentile {percentile:g} of nearest-other-training distances, duplicates (below "
        f"{DUPLICATE_FRACTION:g} x median) left out",
        "percentile": percentile,
        "sampled": len(distances),
        "duplicates": int(len(distances) - len(kept)),
        "training_vectors": int(
            conn.execute(spaces.render("match", "count_training_vectors", space)).fetchone()[0]
        ),
        "distances": shown,
    }
    conn.execute(
        query("quality", "store_calibration"),
        {"space_id": space.space_id, "threshold": threshold, "calibration": json.dumps(record)},
    )
    return Calibration(space.name, threshold, "calibrated", len(distances), record["duplicates"], shown, True)


def calibrate_if_needed(conn: psycopg.Connection, space: EmbeddingSpace) -> Calibration | None:
    """Calibrate when the space has no threshold yet or its training vectors changed since (not when set by hand)."""
    row = conn.execute(query("quality", "calibration_is_stale"), {"space_id": space.space_id}).fetchone()
    source, calibrated_on = row
    if source == "set" or space.distance not in CALIBRATED_DISTANCES:
        return None
    n = int(conn.execute(spaces.render("match", "count_training_vectors", space)).fetchone()[0])
    if source == "calibrated" and calibrated_on == n:
        return None
    return calibrate(conn, space)


def set_distance(conn: psycopg.Connection, space: EmbeddingSpace, distance: float) -> None:
    """A hand-set threshold (kept by automatic calibration)."""
    if not np.isfinite(distance) or distance < 0:
        raise InputError(f"--near-copy-distance {distance} must be a finite number >= 0, e.g. 0.02")
    conn.execute(
        query("quality", "set_near_copy_distance"), {"space_id": space.space_id, "distance": distance}
    )
