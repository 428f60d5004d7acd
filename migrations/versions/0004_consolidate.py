"""Derived SQL has one source: sql/derived/ (now also the cascades and the vacuum_truncate settings).

Re-applies sql/derived/ from its frozen copy (0004_consolidate/ beside this file). The copy starts
with 00_drop_derived.sql, which drops every derived object (the report schema; views, materialized
views and functions in gmv, with the triggers calling those functions), so running the folder in
file order re-creates all of them whatever the previous revision left. Tables and rows are untouched;
materialized views are re-filled by the next refresh (`gmv value refresh`).

The pattern for every later migration that changes sql/derived/: copy the whole folder to
versions/<revision>/, then
    upgrade:   _apply(FROZEN_SQL)
    downgrade: _apply(the previous such migration's folder)   # it starts with its own drop
This one's downgrade goes back to 0003, whose derived objects predate the pattern: drop, then
0002's frozen folder and 0003's objects.

Revision ID: 0004_consolidate
Revises: 0003_set_based_cascades
Create Date: 2026-12-01
"""

import importlib.util
from pathlib import Path

from alembic import op

revision = "0004_consolidate"
down_revision = "0003_set_based_cascades"
branch_labels = None
depends_on = None

VERSIONS = Path(__file__).parent
FROZEN_SQL = VERSIONS / "0004_consolidate"


def _execute(statements: str) -> None:
    # Straight to psycopg without parameters, so format()'s %s / %I in the PL/pgSQL are not placeholders.
    op.get_bind().connection.driver_connection.execute(statements)


def _apply(folder: Path) -> None:
    for path in sorted(folder.glob("*.sql")):
        _execute(path.read_text(encoding="utf-8"))


def upgrade() -> None:
    _apply(FROZEN_SQL)


def downgrade() -> None:
    _execute((FROZEN_SQL / "00_drop_derived.sql").read_text(encoding="utf-8"))
    _apply(VERSIONS / "0002_derived")
    spec = importlib.util.spec_from_file_location("m0003", VERSIONS / "0003_set_based_cascades.py")
    m0003 = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(m0003)
    _execute(m0003.DERIVED)
