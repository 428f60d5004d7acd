"""Hostile text in exports: CSV cells a spreadsheet would execute are neutralised, JSON keeps text
verbatim, tables never pass control characters to the terminal. No database needed."""

from __future__ import annotations

import csv
import decimal
import io
import json

import pytest

from gmv_sql.output import render, visible
from tests.factories import HOSTILE_NAMES

pytestmark = pytest.mark.timeout(30)

FORMULAS = [
    "=1+1",
    '=HYPERLINK("http://evil.example","x")',
    "+1+1",
    "-1+1",
    "-cmd|' /C calc'!A0",
    "@SUM(A1:A2)",
    "\t=1+1",
    "\r=1+1",
    "\uff1d1+1",  # full-width equals sign
    "=",
    "-",
    "+",
    "@",
]
HARMLESS = [
    "alice",
    "1+1",
    "a=b",
    "cc-by-4.0",
    "O'Brien",
    "",
    " =1+1 is text in every spreadsheet",
    "12",
    "3.5",
]
NUMBERS = ["-1", "-12.50", "-1e-9", "-0"]


def _parse_csv(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text)))


def test_every_formula_cell_is_neutralised():
    out = render([(f, f) for f in FORMULAS], ("owner", "license"), "csv")
    rows = _parse_csv(out)[1:]
    assert len(rows) == len(FORMULAS)
    for original, (owner, license_) in zip(FORMULAS, rows, strict=True):
        assert owner == license_ == "'" + original, (original, owner)
        assert not owner.startswith(("=", "+", "-", "@", "\t", "\r"))


def test_harmless_text_and_negative_numbers_are_untouched():
    rows = _parse_csv(render([(v,) for v in HARMLESS + NUMBERS], ("v",), "csv"))[1:]
    assert [r[0] for r in rows] == HARMLESS + NUMBERS
    # Real numbers (not strings) stay numbers, negative or not.
    rows = _parse_csv(render([(decimal.Decimal("-3.10"), -2, -0.5)], ("a", "b", "c"), "csv"))[1:]
    assert rows == [["-3.10", "-2", "-0.5"]]


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_hostile_names_survive_csv_json_and_table(name):
    row = (name, decimal.Decimal("1.50"), {"note": name})
    parsed = _parse_csv(render([row], ("owner", "amount", "attributes"), "csv"))
    assert len(parsed) == 2 and len(parsed[1]) == 3  # quotes, commas and newlines cannot split a row
    owner, amount, attributes = parsed[1]
    if name.startswith(("=", "+", "-", "@", "\t", "\r")):
        assert owner == "'" + name
    else:
        assert owner == name
    assert amount == "1.50"
    assert json.loads(attributes) == {"note": name}  # JSON, not Python's repr
    assert json.loads(render([row], ("owner", "amount", "attributes"), "json")) == [
        {"owner": name, "amount": "1.50", "attributes": {"note": name}}
    ]
    table = render([row], ("owner", "amount", "attributes"), "table")
    assert len(table.splitlines()) == 3  # header, rule, one line per row
    assert not any(ch in table for ch in "\x1b\r\t\u202e")


def test_table_escapes_terminal_control_sequences():
    assert visible("ansi \x1b[31mred") == "ansi \\u001b[31mred"
    assert visible("a\nb\tc\rd") == "a\\nb\\tc\\rd"
    assert visible("\u202eevil") == "\\u202eevil"
    assert visible("Zoë 東京 🎨") == "Zoë 東京 🎨"


@pytest.mark.parametrize("name", ["evil\r=cmd|' /C calc'!A0", "evil\n=1+1", "evil\r\n@SUM(1)", 'a,"b"\r\n,c'])
def test_line_breaks_inside_a_cell_cannot_start_a_new_row(name):
    """A bare CR inside a name once ended the row in CSV readers, letting '=cmd' start a fresh cell."""
    out = render([(name, "x")], ("owner", "license"), "csv")
    assert _parse_csv(out)[1:] == [[name, "x"]]


def test_emit_keeps_csv_bytes_in_files_and_escapes_them_on_terminals(tmp_path):
    from gmv_sql.output import emit

    name = "ansi \x1b[31mred\x1b[0m"
    with open(tmp_path / "out.csv", "w", encoding="utf-8", newline="") as fh:
        emit([(name,)], ("owner",), "csv", file=fh)
    assert _parse_csv((tmp_path / "out.csv").read_text(encoding="utf-8"))[1] == [name]

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    terminal = Terminal()
    emit([(name,)], ("owner",), "csv", file=terminal)
    assert "\x1b" not in terminal.getvalue()
