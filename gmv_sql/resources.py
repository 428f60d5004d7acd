"""Locates sql/ and migrations/ both in a checkout (top level) and in an installed wheel (inside the package)."""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parent


def _locate(name: str) -> Path:
    for candidate in (_PACKAGE_DIR / name, _PACKAGE_DIR.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"gmv_sql resource folder {name!r} not found next to {_PACKAGE_DIR}; reinstall gmv_sql")


def sql_dir() -> Path:
    return _locate("sql")


def migrations_dir() -> Path:
    return _locate("migrations")


_NAME_LINE = re.compile(r"^--\s*name:\s*([A-Za-z_][A-Za-z0-9_]*)\s*$", re.MULTILINE)


def parse_named_blocks(text: str) -> dict[str, str]:
    """Split an aiosql-style file into {name: sql} at lines `-- name: something`."""
    parts = _NAME_LINE.split(text)
    blocks: dict[str, str] = {}
    for name, body in zip(parts[1::2], parts[2::2], strict=True):
        if name in blocks:
            raise ValueError(f"duplicate SQL block name {name!r}")
        blocks[name] = body.strip()
    return blocks


@cache
def queries(filename: str) -> dict[str, str]:
    """Named SQL blocks of sql/queries/<filename>.sql."""
    path = sql_dir() / "queries" / f"{filename}.sql"
    return parse_named_blocks(path.read_text(encoding="utf-8"))


def query(filename: str, name: str) -> str:
    blocks = queries(filename)
    try:
        return blocks[name]
    except KeyError:
        raise KeyError(f"no SQL block {name!r} in sql/queries/{filename}.sql") from None
