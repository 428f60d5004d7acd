"""One self-contained HTML page of evidence: which training images each generated image came from.

Like Figures 3-4 of GMValuator (arXiv 2304.10701): for a sample of generated images, their top-k
training images with owner, licence, distance and weight; then the highest- and lowest-valued
training images and two plots (value distribution per `split` attribute, credit per owner).
Images and plots are inlined as data: URIs, so the file can be mailed or archived alone. Every
piece of text comes from the database and is HTML-escaped; a Content-Security-Policy forbids
scripts and outside requests as a second line of defence.
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import io
import os
import tempfile
from collections import defaultdict
from pathlib import Path
from urllib.parse import unquote, urlparse

import numpy as np
import psycopg

from gmv_sql import __version__
from gmv_sql.errors import InputError
from gmv_sql.output import read
from gmv_sql.report import plots
from gmv_sql.resources import query
from gmv_sql.spaces import DISTANCE_NAMES

THUMBNAIL = 96  # pixels, longer side
EXTREMES = 8  # highest- and lowest-valued training images shown

_CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"

_STYLE = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 24px; color: #222;
       background: #fff; max-width: 1400px; }
h1 { font-size: 22px; margin-bottom: 4px; } h2 { font-size: 18px; margin-top: 32px; border-bottom: 1px solid #ddd; }
.meta { color: #555; font-size: 13px; } .plots img { max-width: 640px; margin: 8px 16px 8px 0; vertical-align: top; }
.row { display: flex; flex-wrap: wrap; align-items: flex-start; gap: 10px; margin: 14px 0; padding: 10px; border: 1px solid #e4e4e4;
       border-radius: 6px; }
.generated { background: #f3f7ff; padding: 6px; border-radius: 4px; min-width: 112px; }
.cell { width: 112px; font-size: 11px; line-height: 1.35; overflow-wrap: anywhere; }
.cell img, .generated img { width: 96px; height: 96px; object-fit: contain; image-rendering: pixelated;
       background: #000; display: block; margin-bottom: 3px; }
.grid { display: flex; flex-wrap: wrap; gap: 10px; }
.missing { width: 96px; height: 96px; background: #eee; color: #888; font-size: 11px; display: flex;
       align-items: center; justify-content: center; text-align: center; margin-bottom: 3px; }
.nearcopy { outline: 3px solid #c0392b; } .nearcopy-label { color: #c0392b; font-weight: bold; }
.paid { color: #176b1c; } .unpaid { color: #9a3b00; }
"""


def _e(value: object) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _local_path(uri: str) -> Path | None:
    if uri.startswith("file://"):
        return Path(unquote(urlparse(uri).path))
    if "://" in uri:
        return None  # remote images are not fetched: the page must build offline
    return Path(uri)


class _Thumbnails:
    """data: URIs of small versions of image files, each file read once."""

    def __init__(self, size: int = THUMBNAIL):
        self.size = size
        self._cache: dict[str, str | None] = {}

    def __call__(self, uri: str) -> str | None:
        if uri not in self._cache:
            self._cache[uri] = self._make(uri)
        return self._cache[uri]

    def _make(self, uri: str) -> str | None:
        from PIL import Image, ImageOps, UnidentifiedImageError

        path = _local_path(uri)
        if path is None or not path.is_file():
            return None
        try:
            with Image.open(path) as image:
                image.seek(0)
                image = ImageOps.exif_transpose(image)  # as the embedder sees it: phone photos upright
                image = image.convert("RGBA" if "A" in image.getbands() else "RGB")
        except (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError):
            return None
        scale = self.size / max(image.size)
        if scale < 1:
            image.thumbnail((self.size, self.size), Image.Resampling.LANCZOS)
        elif image.size[0] * 2 <= self.size:
            # Tiny images (8x8 digits) are enlarged with hard pixel edges, as they are.
            factor = max(1, int(scale))
            image = image.resize((image.size[0] * factor, image.size[1] * factor), Image.Resampling.NEAREST)
        buffer = io.BytesIO()
        photo = image.mode == "RGB" and max(image.size) >= 64 and _colourful(image)
        if photo:
            image.save(buffer, format="JPEG", quality=85)
            return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")
        image.save(buffer, format="PNG", optimize=True)
        return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _colourful(image) -> bool:
    """Photos compress better as JPEG; flat or few-colour images (digits, drawings) stay PNG."""
    colours = image.getcolors(maxcolors=256)
    return colours is None


def _img(src: str | None, alt: str) -> str:
    if src is None:
        return f'<div class="missing">{_e(alt)}<br>(file not found)</div>'
    return f'<img src="{src}" alt="{_e(alt)}">'


def _png_uri(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def pick_sample(ids: list[int], sample: int) -> list[int]:
    """`sample` ids spread evenly over the sorted list (the same page for the same data)."""
    if len(ids) <= sample:
        return list(ids)
    positions = np.linspace(0, len(ids) - 1, sample).round().astype(int)
    return [ids[i] for i in sorted(set(positions.tolist()))]


def write_evidence_page(
    conn: psycopg.Connection,
    path: Path,
    *,
    space: str,
    scheme: str,
    generated_ids: list[int] | None,
    sample: int = 12,
    title: str | None = None,
) -> Path:
    """Write the evidence page for `generated_ids` (or a spread sample of matched ones); returns its path."""
    path = Path(path)
    folder = path.resolve().parent
    if not folder.is_dir():
        raise InputError(
            f"folder {str(folder)!r} for the HTML page does not exist; create it or pick another --html path"
        )
    params = {"space": space, "scheme": scheme}
    if generated_ids is None:
        matched = read(conn, query("evidence_html", "matched_generated"), params).rows
        generated_ids = pick_sample([r.generated_id for r in matched], sample)
    attribution = read(
        conn, query("evidence_html", "attribution"), {**params, "ids": list(generated_ids)}
    ).rows
    highest = read(conn, query("evidence_html", "highest_valued"), {**params, "limit": EXTREMES}).rows
    lowest = read(conn, query("evidence_html", "lowest_valued"), {**params, "limit": EXTREMES}).rows
    split_rows = read(conn, query("evidence_html", "values_by_split"), params).rows
    owner_rows = read(conn, query("evidence_html", "owner_credit"), params).rows
    totals = read(conn, query("evidence_html", "totals"), params).rows[0]
    never_matched = read(conn, query("evidence_html", "never_matched")).rows[0].n
    k = totals.k

    groups: dict[str, list[float]] = defaultdict(list)
    for r in split_rows:
        groups[r.split if r.split is not None else "all training images"].append(float(r.value))
    groups = dict(sorted(groups.items(), key=lambda item: _split_order(item[0])))
    distribution_png = plots.value_distribution_png(
        groups, title=f"Value of training images ({space} / {scheme})"
    )
    owner_png = plots.owner_credit_png([r.owner for r in owner_rows], [float(r.value) for r in owner_rows])

    thumbs = _Thumbnails()
    by_generated: dict[int, list] = defaultdict(list)
    for row in attribution:
        by_generated[row.generated_id].append(row)

    parts: list[str] = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">',
        f"<title>{_e(title or 'gmv evidence: ' + space + ' / ' + scheme)}</title>",
        f"<style>{_STYLE}</style></head><body>",
        f"<h1>{_e(title or 'Which training images did the generated images come from?')}</h1>",
        '<p class="meta">'
        f"GMValuator (arXiv 2304.10701) in PostgreSQL + pgvector &middot; embedding space <b>{_e(space)}</b> &middot; "
        f"scheme <b>{_e(scheme)}</b> &middot; k = {_e(k)} &middot; {_e(totals.n_training)} training images &middot; "
        f"{_e(totals.n_generated)} matched generated images &middot; gmv_sql {_e(__version__)} &middot; "
        f"written {_e(dt.datetime.now(dt.timezone.utc).strftime('%Y-%m-%d %H:%M UTC'))}</p>",
        '<div class="plots">',
        f'<img src="{_png_uri(distribution_png)}" alt="value distribution">',
        f'<img src="{_png_uri(owner_png)}" alt="credit per owner">',
        "</div>",
        _population_note(groups, never_matched),
        f"<h2>Generated images and their top-{_e(k)} training images</h2>",
        '<p class="meta">Each row: a generated image, then the training images nearest to it (rank 1 = nearest), '
        f"with owner, licence, {_e(DISTANCE_NAMES.get(totals.distance, totals.distance))} d and the weight w its "
        "credit gives each (weights sum to 1).</p>",
        _near_copy_note(totals),
    ]
    for generated_id in generated_ids:
        rows = by_generated.get(generated_id)
        if not rows:
            parts.append(
                f'<div class="row"><div class="generated">generated #{_e(generated_id)}: '
                f"no matches in space {_e(space)}</div></div>"
            )
            continue
        first = rows[0]
        parts.append('<div class="row">')
        parts.append(
            f'<div class="generated">{_img(thumbs(first.generated_uri), f"generated {generated_id}")}'
            f"<b>generated #{_e(generated_id)}</b><br>{_e(first.generator)} / {_e(first.run)}</div>"
        )
        for r in rows:
            marked = " nearcopy" if r.near_copy else ""
            label = '<br><span class="nearcopy-label">near-copy</span>' if r.near_copy else ""
            parts.append(
                f'<div class="cell{marked}">{_img(thumbs(r.training_uri), f"training {r.training_id}")}'
                f"#{_e(r.rank)} &middot; training {_e(r.training_id)}<br>{_e(r.owner)}<br><i>{_e(r.license)}</i><br>"
                f"d = {float(r.distance):.4f} &middot; w = {float(r.weight):.3f}{label}</div>"
            )
        parts.append("</div>")

    for heading, rows in (
        ("Highest-valued training images", highest),
        ("Lowest-valued training images", lowest),
    ):
        parts.append(f"<h2>{_e(heading)}</h2>")
        parts.append('<div class="grid">')
        for r in rows:
            note = " &middot; opted out" if r.opted_out else ""
            parts.append(
                f'<div class="cell">{_img(thumbs(r.uri), f"training {r.training_id}")}'
                f"training {_e(r.training_id)}<br>{_e(r.owner)}<br><i>{_e(r.license)}</i><br>"
                f"value {float(r.value):.4g} &middot; {_e(r.n_matches)} matches{note}</div>"
            )
        parts.append("</div>")
    parts.append("</body></html>")
    _write_atomically(path, "\n".join(parts))
    return path


def _population_note(groups: dict[str, list[float]], never_matched: int) -> str:
    """Which training images the value distribution counts: the membership audit's definition."""
    counts = ", ".join(
        f"{_e(name)} n = {len(values)} (mean {np.mean(values):.4g})"
        for name, values in groups.items()
        if values
    )
    return (
        '<p class="meta">Value distribution: training images that can be matched (not opted out, licence not '
        f"excluded), by their <code>split</code> attribute: {counts}. {_e(never_matched)} opted-out or excluded "
        "images are left out (never matched, their value says nothing); <code>gmv audit membership</code> tests "
        "the same population.</p>"
    )


def _near_copy_note(totals) -> str:
    """What a red frame means, and how many near-copies the space has (report.near_copy)."""
    if totals.near_copy_distance is None:
        return '<p class="meta">No near-copy distance for this space yet (too few training images to calibrate).</p>'
    return (
        f'<p class="meta"><span class="nearcopy-label">near-copy</span> (red frame): the training image is at most '
        f"d = {float(totals.near_copy_distance):.4g} away, closer than almost any two distinct training images; "
        f"{_e(totals.n_near_copies)} generated images in this space are near-copies "
        "(<code>gmv report near-copies</code>).</p>"
    )


def _split_order(name: str) -> tuple[int, str]:
    lowered = name.lower().replace("-", "").replace("_", "")
    return (0 if lowered.startswith("member") else 1 if "nonmember" in lowered else 2, name)


def _write_atomically(path: Path, text: str) -> None:
    """A reader never sees half a page: write a temporary file beside it, then rename."""
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.resolve().parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(text)
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise
