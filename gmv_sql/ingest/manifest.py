"""Manifests (CSV or JSONL) and the rows of an ingest: which file, whose, under which licence.

Training manifests need `path` (and `owner`, `license` unless --owner/--license give defaults) and
may carry `opted_out` (the image is opted out of every generated image) and `royalty_bearing` (the
licence's term: a licence is created with it, and a stored licence must agree);
generated manifests need `path` and may carry `quality`, `created_at`, `prompt`. Every other
column lands in the image's `attributes` (jsonb). Broken rows become one-line reasons
("manifest.csv:7: quality '-1' must be a finite number >= 0"), never exceptions.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from gmv_sql.errors import InputError
from gmv_sql.textfile import read_user_text

Kind = Literal["training", "generated"]

MANIFEST_SUFFIXES = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl"}
TRAINING_COLUMNS = ("path", "owner", "license", "opted_out", "royalty_bearing")
GENERATED_COLUMNS = ("path", "quality", "created_at", "prompt")


@dataclass
class Row:
    """One file to ingest and what the manifest (or the command line) says about it."""

    path: str  # absolute
    owner: str | None = None
    license: str | None = None
    quality: float = 1.0
    created_at: dt.datetime | None = None
    prompt: str | None = None
    opted_out: bool = False  # training: opted out of every generated image from ingest on
    royalty_bearing: bool | None = None  # training: the licence's term, if the manifest gives it
    attributes: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class BadRow:
    where: str  # "manifest.csv:7"
    reason: str

    def line(self) -> str:
        return f"{self.where}: {self.reason}"


def manifest_format(path: Path) -> str:
    fmt = MANIFEST_SUFFIXES.get(path.suffix.lower())
    if fmt is None:
        raise InputError(f"manifest {str(path)!r} must end in .csv or .jsonl; rename it or convert it")
    return fmt


def _raw_records(path: Path) -> list[tuple[int, dict[str, Any] | None, str | None]]:
    """(line number, record or None, reason if broken) for every data line of the manifest."""
    fmt = manifest_format(path)
    # Newlines verbatim: CSV quoted fields keep their \r and \n (the csv module splits records).
    text = read_user_text(
        path, "manifest", encoding_hint="save it as UTF-8", missing_hint="check the --manifest path"
    )
    records: list[tuple[int, dict[str, Any] | None, str | None]] = []
    if fmt == "jsonl":
        # Split on \n only: str.splitlines() would also split inside strings at U+2028, \x1c, \x85, ...
        for number, line in enumerate(text.split("\n"), start=1):
            line = line.removesuffix("\r")
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                records.append((number, None, f"invalid JSON: {exc.msg} at column {exc.colno}"))
                continue
            if not isinstance(record, dict):
                records.append((number, None, f"expected a JSON object, got {type(record).__name__}"))
                continue
            records.append((number, record, None))
        return records
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
    except StopIteration:
        raise InputError(
            f"manifest {str(path)!r} is empty; it needs a header line with at least 'path'"
        ) from None
    header = [h.strip() for h in header]
    if "path" not in header:
        raise InputError(
            f"manifest {str(path)!r} has no 'path' column (header: {', '.join(header)}); add one"
        )
    duplicates = sorted({h for h in header if header.count(h) > 1})
    if duplicates:
        raise InputError(
            f"manifest {str(path)!r} repeats column(s) {', '.join(duplicates)}; make names unique"
        )
    for values in reader:
        number = reader.line_num
        if not any(v.strip() for v in values):
            continue
        if len(values) != len(header):
            records.append((number, None, f"{len(values)} fields, the header has {len(header)}"))
            continue
        records.append((number, dict(zip(header, values, strict=True)), None))
    return records


def _text(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def parse_quality(value: Any) -> float:
    if value is None or (isinstance(value, str) and not value.strip()):
        return 1.0
    if isinstance(value, bool):
        raise ValueError(f"quality {value!r} must be a finite number >= 0")
    try:
        quality = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"quality {value!r} must be a finite number >= 0") from None
    if not math.isfinite(quality) or quality < 0:
        raise ValueError(f"quality {value!r} must be a finite number >= 0")
    return quality


_TRUE = {"true", "t", "yes", "y", "1"}
_FALSE = {"false", "f", "no", "n", "0"}


def parse_flag(value: Any, column: str) -> bool | None:
    """true/false, yes/no, 1/0 (any case) or a JSON boolean; empty is None."""
    if isinstance(value, bool):
        return value
    text = _text(value)
    if text is None:
        return None
    if text.lower() in _TRUE:
        return True
    if text.lower() in _FALSE:
        return False
    raise ValueError(f"{column} {text!r} must be true or false")


def parse_created_at(value: Any) -> dt.datetime | None:
    """ISO 8601; a time without offset is taken as UTC, a bare date as midnight UTC."""
    text = _text(value)
    if text is None:
        return None
    try:
        stamp = dt.datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise ValueError(
            f"created_at {text!r} is not an ISO 8601 date/time (e.g. 2026-01-31T12:00:00Z)"
        ) from None
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=dt.timezone.utc)
    return stamp


def read_manifest(
    path: Path,
    kind: Kind,
    *,
    base: Path,
    default_owner: str | None = None,
    default_license: str | None = None,
) -> tuple[list[Row], list[BadRow]]:
    """Rows of the manifest (relative paths resolved against base) and the broken ones."""
    rows: list[Row] = []
    bad: list[BadRow] = []
    name = path.name
    known = TRAINING_COLUMNS if kind == "training" else GENERATED_COLUMNS
    for number, record, reason in _raw_records(path):
        where = f"{name}:{number}"
        if record is None:
            bad.append(BadRow(where, reason or "unreadable row"))
            continue
        file_text = _text(record.get("path"))
        if file_text is None:
            bad.append(BadRow(where, "no path"))
            continue
        file_path = Path(os.path.expanduser(file_text))
        if not file_path.is_absolute():
            file_path = base / file_path
        row = Row(path=os.path.abspath(file_path))
        row.attributes = {k: v for k, v in record.items() if k not in known and v not in (None, "")}
        if kind == "training":
            row.owner = _text(record.get("owner")) or default_owner
            row.license = _text(record.get("license")) or default_license
            if row.owner is None:
                bad.append(BadRow(where, "no owner (fill the owner column or pass --owner)"))
                continue
            if row.license is None:
                bad.append(BadRow(where, "no license (fill the license column or pass --license)"))
                continue
            try:
                row.opted_out = bool(parse_flag(record.get("opted_out"), "opted_out"))
                row.royalty_bearing = parse_flag(record.get("royalty_bearing"), "royalty_bearing")
            except ValueError as exc:
                bad.append(BadRow(where, str(exc)))
                continue
        else:
            try:
                row.quality = parse_quality(record.get("quality"))
                row.created_at = parse_created_at(record.get("created_at"))
            except ValueError as exc:
                bad.append(BadRow(where, str(exc)))
                continue
            prompt = record.get("prompt")
            row.prompt = None if prompt in (None, "") else str(prompt)
        rows.append(row)
    return rows, bad
