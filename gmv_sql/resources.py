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
    raise FileNotFoundError(
        f"gmv_sql resource folder {name!r} not found next to {_PACKAGE_DIR}; reinstall gmv_sql"
    )


def sql_dir() -> Path:
    return _locate("sql")


def migrations_dir() -> Path:
    return _locate("migrations")


_NAME_LINE = re.compile(r"^--\s*name:\s*([A-Za-z_][A-Za-z0-9_]*)\s*$")
_LOOKS_LIKE_NAME = re.compile(r"^--\s*name\s*:")


class SqlFileError(ValueError):
    """A malformed sql/queries file: a packaging bug, reported with its file and line."""


def _is_sql(line: str) -> bool:
    stripped = line.strip()
    return bool(stripped) and not stripped.startswith("--")


def parse_named_blocks(text: str, source: str = "<sql>") -> dict[str, str]:
    """Split an aiosql-style file into {name: sql} at lines `-- name: something`.

    Only comments may come before the first name; a name appears once; a block holds some SQL.
    """
    blocks: dict[str, str] = {}
    lines_of: dict[str, int] = {}
    name: str | None = None
    body: list[str] = []

    def finish() -> None:
        if name is None:
            return
        if not any(_is_sql(line) for line in body):
            raise SqlFileError(f"{source}:{lines_of[name]}: SQL block {name!r} is empty")
        blocks[name] = "\n".join(body).strip()

    for number, line in enumerate(text.splitlines(), start=1):
        match = _NAME_LINE.match(line)
        if match:
            finish()
            name, body = match.group(1), []
            if name in lines_of:
                raise SqlFileError(
                    f"{source}:{number}: duplicate SQL block name {name!r} (first at line {lines_of[name]})"
                )
            lines_of[name] = number
        elif _LOOKS_LIKE_NAME.match(line):
            raise SqlFileError(
                f"{source}:{number}: bad SQL block name line {line.strip()!r}; use letters, digits, _"
            )
        elif name is None:
            if _is_sql(line):
                raise SqlFileError(f"{source}:{number}: SQL before the first '-- name:' line")
        else:
            body.append(line)
    finish()
    return blocks


@cache
def _all_queries() -> dict[str, dict[str, str]]:
    """Every file of sql/queries/, read and checked once (on first use)."""
    folder = sql_dir() / "queries"
    return {
        path.stem: parse_named_blocks(path.read_text(encoding="utf-8"), source=f"sql/queries/{path.name}")
        for path in sorted(folder.glob("*.sql"))
    }


def queries(filename: str) -> dict[str, str]:
    """Named SQL blocks of sql/queries/<filename>.sql."""
    try:
        return _all_queries()[filename]
    except KeyError:
        raise KeyError(f"no SQL file sql/queries/{filename}.sql") from None


def query(filename: str, name: str) -> str:
    blocks = queries(filename)
    try:
        return blocks[name]
    except KeyError:
        raise KeyError(f"no SQL block {name!r} in sql/queries/{filename}.sql") from None
