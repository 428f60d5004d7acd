"""Formatting of report rows: aligned tables, CSV safe for spreadsheets, JSON."""

import csv
import decimal
import io
import json

from gmv_sql.output import neutralise_formula, render
from gmv_sql.resources import parse_named_blocks


def test_csv_neutralises_formulas_but_keeps_numbers():
    rows = [("=HYPERLINK(\"http://x\")", -1.5, "+1+1", "@SUM(A1)", "-cmd", "ok", "-3.25")]
    out = render(rows, ["a", "b", "c", "d", "e", "f", "g"], "csv")
    parsed = list(csv.reader(io.StringIO(out)))[1]
    assert parsed == ["'=HYPERLINK(\"http://x\")", "-1.5", "'+1+1", "'@SUM(A1)", "'-cmd", "ok", "-3.25"]
    assert neutralise_formula("\t=1") == "'\t=1"


def test_json_keeps_exact_decimals():
    out = json.loads(render([("acme", decimal.Decimal("33.34"))], ["owner", "amount"], "json"))
    assert out == [{"owner": "acme", "amount": "33.34"}]


def test_table_aligns_numbers_right():
    lines = render([("a", 1.5), ("bbbb", 10.0)], ["name", "value"], "table").splitlines()
    assert lines[0].startswith("name")
    assert lines[2].endswith("  1.5") and lines[3].endswith("   10")


def test_named_sql_blocks():
    blocks = parse_named_blocks("-- name: one\nSELECT 1\n\n-- name: two\nSELECT 2;\n")
    assert blocks == {"one": "SELECT 1", "two": "SELECT 2;"}
