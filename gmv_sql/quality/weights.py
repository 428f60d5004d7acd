"""Quality weights q_j (GMValuator, arXiv 2304.10701 v2): each generated image's credit is multiplied
by its quality, so a poor output passes on less value than a good one.

q_j is gmv.generated_image.quality (default 1; `gmv ingest generated` reads a `quality` column).
Here: `gmv quality import FILE` (a CSV naming images by sha256 or path, with a quality column) and
`gmv quality score --scorer MODULE:FUNCTION` (a user function called on every generated image).
Both check every value first and write all of them in one transaction, or nothing: a bad line or
a bad score is a one-line error naming it. Credit views show new weights after `gmv value refresh`
(royalty statements refresh them themselves).
"""

from __future__ import annotations

import csv
import importlib
import math
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

import psycopg

from gmv_sql.errors import ConfigError, InputError, NotFoundError
from gmv_sql.ingest.files import sha256_file
from gmv_sql.resources import query
from gmv_sql.textfile import read_user_text

_SHA256 = re.compile(r"^[0-9a-fA-F]{64}$")


@dataclass(frozen=True)
class QualityUpdate:
    changed: int  # images whose quality changed
    unchanged: int  # named with the quality they already had
    total: int


def parse_quality(text: str, where: str) -> float:
    """A quality value: a finite number >= 0, or a one-line error naming where it was."""
    try:
        value = float(text)
    except (TypeError, ValueError):
        raise InputError(
            f"{where}: quality {text!r} is not a number; give a number >= 0 (1 = default)"
        ) from None
    if not math.isfinite(value) or value < 0:
        raise InputError(f"{where}: quality {text!r} must be a finite number >= 0 (1 = default)")
    return value


def _identities(conn: psycopg.Connection) -> tuple[dict[str, int], dict[str, int], dict[int, str]]:
    rows = conn.execute(query("quality", "generated_identities")).fetchall()
    return (
        {sha: gid for gid, sha, _ in rows},
        {uri: gid for gid, _, uri in rows},
        {gid: uri for gid, _, uri in rows},
    )


def read_quality_file(conn: psycopg.Connection, path: Path) -> dict[int, float]:
    """{generated_id: quality} from a CSV with a quality column and a sha256 or path column."""
    text = read_user_text(path, "quality file", encoding_hint="give a CSV (sha256 or path, quality)")
    name = Path(path).name
    base = Path(path).resolve().parent
    reader = csv.reader(text.splitlines())
    header = [h.strip().lower() for h in next(reader, [])]
    if "quality" not in header or not ({"sha256", "path"} & set(header)):
        raise InputError(
            f"{name}:1: the header needs a quality column and a sha256 or path column (got {', '.join(header) or 'nothing'}); "
            "e.g. sha256,quality"
        )
    key = header.index("sha256") if "sha256" in header else header.index("path")
    column = header.index("quality")
    by_sha, by_uri, _ = _identities(conn)
    qualities: dict[int, float] = {}
    seen_at: dict[int, str] = {}
    for number, values in enumerate(reader, start=2):
        where = f"{name}:{number}"
        if not any(v.strip() for v in values):
            continue
        if max(key, column) >= len(values):
            raise InputError(f"{where}: missing {header[key]} or quality value; fill it or delete the row")
        ident = values[key].strip()
        quality = parse_quality(values[column].strip(), where)
        generated_id = _find(ident, base, by_sha, by_uri)
        if generated_id is None:
            raise NotFoundError(
                f"{where}: {ident!r} is not a generated image gmv knows; ingest it with `gmv ingest generated` "
                "or remove the row"
            )
        if generated_id in qualities and qualities[generated_id] != quality:
            raise InputError(
                f"{where}: generated image {generated_id} already got quality {qualities[generated_id]:g} at "
                f"{seen_at[generated_id]}; give each image one quality"
            )
        qualities[generated_id] = quality
        seen_at[generated_id] = where
    if not qualities:
        raise InputError(
            f"quality file {str(path)!r} names no images; give one row per image (sha256,quality)"
        )
    return qualities


def _find(ident: str, base: Path, by_sha: dict[str, int], by_uri: dict[str, int]) -> int | None:
    if _SHA256.match(ident):
        return by_sha.get(ident.lower())
    found = by_uri.get(ident)
    if found is not None:
        return found
    candidate = Path(ident).expanduser()
    if not candidate.is_absolute():
        candidate = base / candidate
    if candidate.is_file():
        return by_sha.get(sha256_file(candidate)) or by_uri.get(str(candidate.resolve()))
    return by_uri.get(str(candidate.resolve()))


def store(conn: psycopg.Connection, qualities: dict[int, float]) -> QualityUpdate:
    """Write every quality in one transaction."""
    ids = sorted(qualities)
    with conn.transaction():
        before = dict(conn.execute(query("quality", "qualities_of"), {"ids": ids}).fetchall())
        conn.execute(query("quality", "set_quality"), {"ids": ids, "qualities": [qualities[i] for i in ids]})
    changed = sum(1 for i in ids if before.get(i) != qualities[i])
    return QualityUpdate(changed=changed, unchanged=len(ids) - changed, total=len(ids))


def load_scorer(spec: str) -> Callable:
    """MODULE:FUNCTION (the current folder is importable, as for `python -m`)."""
    module_name, sep, function_name = spec.partition(":")
    if not sep or not module_name or not function_name:
        raise ConfigError(
            f"--scorer {spec!r} must be MODULE:FUNCTION, e.g. gmv_sql.quality.scorers:sharpness"
        )
    if "" not in sys.path and str(Path.cwd()) not in sys.path:
        sys.path.insert(0, str(Path.cwd()))
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # noqa: BLE001 - whatever the import raised, one line
        raise ConfigError(
            f"--scorer {spec!r}: cannot import {module_name!r} ({type(exc).__name__}: {exc})"
        ) from None
    function = getattr(module, function_name, None)
    if not callable(function):
        raise ConfigError(f"--scorer {spec!r}: {module_name!r} has no function {function_name!r}")
    return function


def local_path(uri: str) -> Path | None:
    if uri.startswith("file://"):
        return Path(unquote(urlparse(uri).path))
    if "://" in uri:
        return None
    return Path(uri)


def score_all(
    conn: psycopg.Connection, scorer: Callable, spec: str, *, on_progress: Callable[[int], None] | None = None
) -> dict[int, float]:
    """scorer(PIL image) for every generated image; every result checked before anything is written."""
    from PIL import Image, ImageOps

    _, _, uri_of = _identities(conn)
    scores: dict[int, float] = {}
    for generated_id, uri in uri_of.items():
        path = local_path(uri)
        if path is None or not path.is_file():
            raise NotFoundError(
                f"generated image {generated_id}: file {uri!r} is not readable here; restore it, or set its quality "
                "with `gmv quality import`"
            )
        try:
            with Image.open(path) as opened:
                image = ImageOps.exif_transpose(opened).convert("RGB")
        except Exception as exc:  # noqa: BLE001 - an unreadable image is one line
            raise InputError(f"generated image {generated_id}: cannot decode {uri!r} ({exc})") from None
        try:
            value = scorer(image)
        except Exception as exc:  # noqa: BLE001 - the user's function failed: say where
            raise InputError(
                f"--scorer {spec!r} failed on generated image {generated_id} ({uri}): {type(exc).__name__}: {exc}"
            ) from None
        scores[generated_id] = parse_quality(
            str(value) if not isinstance(value, int | float) else repr(float(value)),
            f"--scorer {spec!r} on generated image {generated_id}",
        )
        if on_progress:
            on_progress(1)
    return scores
