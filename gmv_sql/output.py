"""Printing rows as an aligned table, CSV or JSON (`--format table|csv|json` on every report command)."""

from __future__ import annotations

import csv
import datetime as dt
import decimal
import functools
import io
import json
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import click
import psycopg
from psycopg.rows import namedtuple_row

FORMATS = ("table", "csv", "json")

# Spreadsheets execute cells that start with these (OWASP "CSV injection", plus the full-width
# forms some spreadsheets also accept); a leading apostrophe makes them text.
_FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r", "\uff1d", "\uff0b", "\uff0d", "\uff20")

# Shown escaped in tables: control characters (a name holding ESC sequences could rewrite the
# user's terminal) and bidi overrides (which reorder what is displayed).
_INVISIBLE = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


@dataclass(frozen=True)
class Rows:
    """What a query returned: its column names (from the query itself) and rows readable by name (row.owner)."""

    columns: list[str]
    rows: list[Any]


def read(conn: psycopg.Connection, statement, params=None) -> Rows:
    """Run a query; its rows as named tuples, its column names as the query named them."""
    with conn.cursor(row_factory=namedtuple_row) as cur:
        cur.execute(statement, params)
        return Rows([column.name for column in cur.description], cur.fetchall())


def format_option(func):
    """The shared --format option of report commands."""

    @click.option(
        "--format",
        "fmt",
        type=click.Choice(FORMATS),
        default="table",
        show_default=True,
        help="Output format.",
    )
    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        return func(*args, **kwargs)

    return wrapper


def neutralise_formula(value: str) -> str:
    """Make a CSV cell safe to open in a spreadsheet (CSV/formula injection)."""
    if value.startswith(_FORMULA_PREFIXES):
        # Plain negative numbers stay numbers.
        if value.startswith("-"):
            try:
                float(value)
                return value
            except ValueError:
                pass
        return "'" + value
    return value


def visible(text: str) -> str:
    """Text safe to print on a terminal: control and bidi characters shown as escapes."""
    return _INVISIBLE.sub(lambda m: _ESCAPES.get(m.group(), f"\\u{ord(m.group()):04x}"), text)


def _csv_cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, (dict, list)):
        value = json.dumps(value, ensure_ascii=False)  # JSON, not Python's repr
    value = _plain(value)
    return neutralise_formula(value) if isinstance(value, str) else value


def _plain(value: Any) -> Any:
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, (dt.datetime, dt.date)):
        return value.isoformat()
    if isinstance(value, float):
        return value
    return value


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}" if abs(value) < 1e6 else f"{value:,.0f}"
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, (dt.datetime, dt.date)):
        return value.isoformat()
    return str(value)


def render(rows: Sequence[Sequence[Any]], columns: Sequence[str], fmt: str) -> str:
    if fmt == "json":
        return json.dumps(
            [{c: _plain(v) for c, v in zip(columns, row, strict=False)} for row in rows],
            ensure_ascii=False,
            indent=2,
        )
    if fmt == "csv":
        # The csv module quotes a field only for the characters of its line terminator, so with "\n"
        # a bare "\r" inside a name would end the row for most readers (and the text after it could
        # start a new, un-neutralised cell). Write with "\r\n", then join the rows with "\n".
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\r\n")
        lines = []
        for row in [list(columns), *([_csv_cell(v) for v in row] for row in rows)]:
            buf.seek(0)
            buf.truncate()
            writer.writerow(row)
            lines.append(buf.getvalue()[:-2])
        return "\n".join(lines)
    if fmt != "table":
        raise ValueError(f"unknown format {fmt!r}")
    columns = [visible(c) for c in columns]
    cells = [[visible(_cell(v)) for v in row] for row in rows]
    widths = [len(c) for c in columns]
    for row in cells:
        widths = [max(w, len(c)) for w, c in zip(widths, row, strict=False)]
    numeric = [
        all(isinstance(row[i], (int, float, decimal.Decimal)) or row[i] is None for row in rows)
        and bool(rows)
        for i in range(len(columns))
    ]

    def fmt_row(values: Sequence[str]) -> str:
        return "  ".join(
            v.rjust(w) if num else v.ljust(w) for v, w, num in zip(values, widths, numeric, strict=False)
        ).rstrip()

    lines = [fmt_row(list(columns)), "  ".join("-" * w for w in widths)]
    lines += [fmt_row(row) for row in cells]
    return "\n".join(lines)


def emit(rows: Sequence[Sequence[Any]], columns: Sequence[str], fmt: str, *, file=None) -> None:
    out = file or sys.stdout
    text = render(rows, columns, fmt)
    if fmt == "csv" and _isatty(out):
        # On a terminal, escape sequences inside names must not reach it (tables and JSON escape already).
        text = "\n".join(visible(line) for line in text.split("\n"))
    # color=True: click would otherwise strip ANSI-looking bytes from files and pipes, silently
    # changing data (a name holding ESC[31m would not match the database).
    click.echo(text, file=out, color=True)


def _isatty(stream) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
