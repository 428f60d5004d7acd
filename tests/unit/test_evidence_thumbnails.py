"""Evidence-page thumbnails show images the way the embedder sees them."""

from __future__ import annotations

import base64
import io

from PIL import Image

from gmv_sql.report.evidence_html import _Thumbnails


def test_thumbnail_applies_exif_orientation(tmp_path):
    # Stored 120 wide x 60 high with EXIF Orientation 6 ("rotate 90° clockwise to view"): shown 60 x 120.
    sideways = tmp_path / "phone.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.new("RGB", (120, 60), (200, 30, 30)).save(sideways, format="JPEG", exif=exif.tobytes())
    uri = _Thumbnails(size=240)(str(sideways))
    data = base64.b64decode(uri.split(",", 1)[1])
    with Image.open(io.BytesIO(data)) as shown:
        assert shown.size[0] < shown.size[1], shown.size
