"""Printing rows as an aligned table, CSV or JSON (`--format table|csv|json` on every report command)."""

from __future__ import annotations

import csv
import datetime as dt
import decimal
import functools
import io
import json
import sys
from collections.abc import Sequence
from typing import Any

import click

FORMATS = ("table", "csv", "json")

# Spreadsheets execute cells that start with these; a leading apostrophe makes them text.
_FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def format_option(func):
    """The shared --format option of report commands."""

    @click.option(
        "--format", "fmt", type=click.Choice(FORMATS), default="table", show_default=True, help="Output format."
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
        return json.dumps([{c: _plain(v) for c, v in zip(columns, row)} for row in rows], ensure_ascii=False, indent=2)
    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(columns)
        for row in rows:
            writer.writerow(
                [neutralise_formula(v) if isinstance(v, str) else ("" if v is None else _plain(v)) for v in row]
            )
        return buf.getvalue().rstrip("\n")
    if fmt != "table":
        raise ValueError(f"unknown format {fmt!r}")
    cells = [[_cell(v).replace("\n", "\\n") for v in row] for row in rows]
    widths = [len(c) for c in columns]
    for row in cells:
        widths = [max(w, len(c)) for w, c in zip(widths, row)]
    numeric = [
        all(isinstance(row[i], (int, float, decimal.Decimal)) or row[i] is None for row in rows) and bool(rows)
        for i in range(len(columns))
    ]

    def fmt_row(values: Sequence[str]) -> str:
        return "  ".join(v.rjust(w) if num else v.ljust(w) for v, w, num in zip(values, widths, numeric)).rstrip()

    lines = [fmt_row(list(columns)), "  ".join("-" * w for w in widths)]
    lines += [fmt_row(row) for row in cells]
    return "\n".join(lines)


def emit(rows: Sequence[Sequence[Any]], columns: Sequence[str], fmt: str, *, file=None) -> None:
    click.echo(render(rows, columns, fmt), file=file or sys.stdout)
