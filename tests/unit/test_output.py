"""Formatting of report rows: aligned tables, CSV safe for spreadsheets, JSON."""

import csv
import decimal
import io
import json

import pytest

from gmv_sql.output import neutralise_formula, render
from gmv_sql.resources import SqlFileError, parse_named_blocks


def test_csv_neutralises_formulas_but_keeps_numbers():
    rows = [('=HYPERLINK("http://x")', -1.5, "+1+1", "@SUM(A1)", "-cmd", "ok", "-3.25")]
    out = render(rows, ["a", "b", "c", "d", "e", "f", "g"], "csv")
    parsed = list(csv.reader(io.StringIO(out)))[1]
    assert parsed == ['\'=HYPERLINK("http://x")', "-1.5", "'+1+1", "'@SUM(A1)", "'-cmd", "ok", "-3.25"]
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


@pytest.mark.parametrize(
    ("text", "error"),
    [
        (
            "-- name: one\nSELECT 1\n-- name: one\nSELECT 2\n",
            "q.sql:3: duplicate SQL block name 'one' (first at line 1)",
        ),
        (
            "-- header\n-- name: one\n-- only a comment\n\n-- name: two\nSELECT 2\n",
            "q.sql:2: SQL block 'one' is empty",
        ),
        ("-- header\nSELECT 0;\n-- name: one\nSELECT 1\n", "q.sql:2: SQL before the first '-- name:' line"),
        ("-- name: one\nSELECT 1\n-- name: two-three\nSELECT 2\n", "q.sql:3: bad SQL block name line"),
    ],
)
def test_bad_sql_blocks_name_their_file_and_line(text, error):
    with pytest.raises(SqlFileError) as raised:
        parse_named_blocks(text, source="q.sql")
    assert str(raised.value).startswith(error)


def test_every_sql_file_loads():
    from gmv_sql.resources import _all_queries, sql_dir

    loaded = _all_queries()
    assert set(loaded) == {p.stem for p in (sql_dir() / "queries").glob("*.sql")}
    assert all(loaded.values())
