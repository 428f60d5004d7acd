"""Access: owners' own logins (gmv.owner_login, schema owner_report), column comments on every report view.

Adds the table gmv.owner_login (login role -> owner, filled by `gmv db grant-owner`) and re-applies
sql/derived/ from its frozen copy (0008_access/ beside this file): 21_report_comments.sql (COMMENT ON
COLUMN for every report view column) and 40_owner_report.sql (group role gmv_owners, schema owner_report
with one security-barrier view per report view that has an owner column). Downgrade re-applies
0007_rights's folder (its 00_drop_derived.sql does not know owner_report, so that schema is dropped
first) and drops the table; the roles stay (they are cluster-wide).

Revision ID: 0008_access
Revises: 0007_rights
Create Date: 2026-12-02
"""

from pathlib import Path

from alembic import op

revision = "0008_access"
down_revision = "0007_rights"
branch_labels = None
depends_on = None

VERSIONS = Path(__file__).parent
FROZEN_SQL = VERSIONS / "0008_access"
PREVIOUS_SQL = VERSIONS / "0007_rights"

TABLES = """
CREATE TABLE gmv.owner_login (
    role_name   text PRIMARY KEY,
    owner_id    bigint NOT NULL REFERENCES gmv.owner,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX owner_login_owner_idx ON gmv.owner_login (owner_id);
COMMENT ON TABLE gmv.owner_login IS
    'Owners'' own login roles (gmv db grant-owner): a role listed here sees only its owner''s rows in schema owner_report.';
"""


def _execute(statements: str) -> None:
    # Straight to psycopg without parameters, so format()'s %s / %I in the PL/pgSQL are not placeholders.
    op.get_bind().connection.driver_connection.execute(statements)


def _apply(folder: Path) -> None:
    for path in sorted(folder.glob("*.sql")):
        _execute(path.read_text(encoding="utf-8"))


def upgrade() -> None:
    _execute(TABLES)
    _apply(FROZEN_SQL)


def downgrade() -> None:
    _execute("DROP SCHEMA IF EXISTS owner_report CASCADE")
    _apply(PREVIOUS_SQL)
    _execute("DROP TABLE gmv.owner_login")
