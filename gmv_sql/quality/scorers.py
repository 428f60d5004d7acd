"""Quality scorers for `gmv quality score --scorer gmv_sql.quality.scorers:NAME`: offline, no weights.

A scorer takes a PIL image (RGB, EXIF orientation applied) and returns a number >= 0, stored as the
image's quality weight q_j. Only the ratios between images matter for how credit is shared
(royalties are pro rata); the scale sets the total credit, which is the sum of q_j.
"""

from __future__ import annotations

import numpy as np


def sharpness(image) -> float:
    """Mean absolute Laplacian of the grey image (0..1 pixel scale) x 10: blurred or flat images score
    low, crisp ones high (a crisp 32x32 digit ~1, the same blurred ~0.3; a constant image 0)."""
    grey = np.asarray(image.convert("L"), dtype=np.float64) / 255.0
    if min(grey.shape) < 3:
        return 0.0
    laplacian = grey[:-2, 1:-1] + grey[2:, 1:-1] + grey[1:-1, :-2] + grey[1:-1, 2:] - 4.0 * grey[1:-1, 1:-1]
    return float(10.0 * np.abs(laplacian).mean())


def contrast(image) -> float:
    """Standard deviation of the grey image (0..1 scale) x 4: a flat image 0, a crisp black-on-white ~1-2."""
    grey = np.asarray(image.convert("L"), dtype=np.float64) / 255.0
    return float(4.0 * grey.std())
