"""Hostile owner and licence names through the whole read side: stored verbatim, read back verbatim
by gmv_reader, exported by `gmv report … --format csv|json|table` with spreadsheet formulas
neutralised; hostile space/scheme names on the command line are one-line refusals."""

from __future__ import annotations

import csv
import decimal
import io
import json

import numpy as np
import psycopg
import pytest

from gmv_sql.value.refresh import refresh
from tests.factories import HOSTILE_NAMES, reader_url, refused, relations, seed

pytestmark = pytest.mark.timeout(60)

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
LICENSES = ["=1+1", "cc-by; DROP TABLE gmv.license; --", 'l\'icence "quoted"\nsecond line']


@pytest.fixture
def hostile_world(conn):
    seed(
        conn,
        n_training=len(HOSTILE_NAMES) * 4,
        n_generated=40,
        dim=8,
        space="rel",
        k=4,
        owners=HOSTILE_NAMES,
        licenses=LICENSES,
        pool="1000.00",
    )
    refresh(conn)
    return relations(conn, "gmv", "rvm")


def test_names_are_stored_and_read_back_verbatim(db_url, conn, hostile_world):
    assert {r[0] for r in conn.execute("SELECT name FROM gmv.owner")} == set(HOSTILE_NAMES)
    with psycopg.connect(reader_url(db_url), autocommit=True) as reader:
        owners = {
            r[0] for r in reader.execute("SELECT owner FROM report.owner_value WHERE scheme = 'rank_linear'")
        }
        licenses = {r[0] for r in reader.execute("SELECT license FROM report.license_value")}
        # A name used as a search value is just a value.
        for name in HOSTILE_NAMES:
            n = reader.execute(
                "SELECT count(*) FROM report.training_value WHERE owner = %s AND scheme = 'uniform'", (name,)
            ).fetchone()[0]
            assert n == 4, name
    assert owners == set(HOSTILE_NAMES)
    assert licenses == set(LICENSES)
    assert relations(conn, "gmv", "rvm") == hostile_world  # nothing dropped


def _csv(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def _expected_cell(name: str) -> str:
    return "'" + name if name.startswith(FORMULA_START) else name


def test_report_owners_exports(gmv, hostile_world):
    rows = _csv(gmv("report", "owners", "--format", "csv").stdout)
    assert sorted(r["owner"] for r in rows) == sorted(_expected_cell(n) for n in HOSTILE_NAMES)
    assert not any(r["owner"].startswith(FORMULA_START) for r in rows)
    data = json.loads(gmv("report", "owners", "--format", "json").stdout)
    assert sorted(r["owner"] for r in data) == sorted(HOSTILE_NAMES)  # JSON keeps the text as it is
    table = gmv("report", "owners", "--format", "table").stdout
    assert len(table.strip("\n").splitlines()) == 2 + len(HOSTILE_NAMES)  # one line per owner
    assert not any(ch in table for ch in "\x1b\r\t\u202e")


def test_report_top_and_royalties_exports(gmv, hostile_world):
    top = _csv(gmv("report", "top", "--limit", "50", "--format", "csv").stdout)
    assert top and not any(r[c].startswith(FORMULA_START) for r in top for c in ("owner", "license", "uri"))
    statement = _csv(
        gmv("report", "royalties", "--period", "2026-01", "--pool", "1000.00", "--format", "csv").stdout
    )
    assert statement
    assert sum(decimal.Decimal(r["amount"]) for r in statement) == decimal.Decimal("1000.00")
    assert not any(r["owner"].startswith(FORMULA_START) for r in statement)


def _vectors_file(conn, tmp_path) -> str:
    """A valid import file (one vector for a stored image), so `embed import` reaches its --space."""
    sha = conn.execute("SELECT sha256 FROM gmv.training_image ORDER BY training_id LIMIT 1").fetchone()[0]
    path = tmp_path / "vectors.npz"
    np.savez(path, vectors=np.ones((1, 8), dtype=np.float32), sha256=np.array([sha]))
    return str(path)


# name -> (arguments for a hostile value, the reason the refusal must give)
COMMANDS = {
    "match --space": (lambda v, f: ("match", "--space", v), "no embedding space"),
    "report owners --scheme": (lambda v, f: ("report", "owners", "--scheme", v), "no valuation scheme"),
    "report top --space": (lambda v, f: ("report", "top", "--space", v), "no embedding space"),
    "royalties --period": (
        lambda v, f: ("report", "royalties", "--period", v, "--pool", "10"),
        "is not a month",
    ),
    "royalties --pool": (
        lambda v, f: ("report", "royalties", "--period", "2026-01", "--pool", v or "x"),
        "is not a number",
    ),
    "royalties --currency": (
        lambda v, f: ("report", "royalties", "--period", "2026-01", "--pool", "10", "--currency", v or "x"),
        "is not a three-letter code",
    ),
    "embed import --space": (lambda v, f: ("embed", "import", f, "--space", v), "no embedding space"),
    # With --model the name reaches the space-name check that creating a space applies.
    "embed import --space --model": (
        lambda v, f: ("embed", "import", f, "--space", v, "--model", "m"),
        "invalid embedding space",
    ),
}


@pytest.mark.parametrize(
    "value",
    ["'; DROP TABLE gmv.match; --", "x\ny", "ü" * 70, "$(id)", ""],
    ids=["sql", "newline", "long-unicode", "shell", "empty"],
)
def test_hostile_names_on_the_command_line_are_refused(gmv, conn, hostile_world, tmp_path, value):
    vectors_file = _vectors_file(conn, tmp_path)
    failures = {}
    for command, (args, reason) in COMMANDS.items():
        if command == "match --space" and value == "":
            reason = "needs --space"
        try:
            line = refused(gmv, *args(value, vectors_file), reason=reason)
            # The refusal names the bad value (quoted, so a newline in it stays on one line).
            assert repr(value) in line or not value, line
        except AssertionError as exc:
            failures[command] = str(exc).splitlines()[:2]
    assert failures == {}
    assert relations(conn, "gmv", "rvm") == hostile_world
    assert conn.execute("SELECT count(*) FROM gmv.embedding_space").fetchone() == (1,)
    assert conn.execute("SELECT count(*) FROM gmv.revenue_pool").fetchone() == (1,)
