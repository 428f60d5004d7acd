"""Derived objects: valuation views, materialized credit views, the report schema, gmv_reader grants.

The SQL is a frozen copy of sql/derived/ (in 0002_derived/ beside this file): a migration must
not read a file that later changes. Changing sql/derived/ means a new migration with a new copy;
tests/db/test_migrations.py fails until the newest copy matches sql/derived/.
Downgrading drops only derived objects: no stored row is touched.

Revision ID: 0002_derived
Revises: 0001_tables
Create Date: 2026-11-29
"""

from pathlib import Path

from alembic import op

revision = "0002_derived"
down_revision = "0001_tables"
branch_labels = None
depends_on = None

FROZEN_SQL = Path(__file__).with_name("0002_derived")

DOWNGRADE = r"""
DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'gmv_reader') THEN
        REVOKE ALL ON ALL TABLES IN SCHEMA report FROM gmv_reader;
        REVOKE ALL ON SCHEMA report FROM gmv_reader;
    END IF;
END
$$;
DROP SCHEMA IF EXISTS report CASCADE;
DROP MATERIALIZED VIEW IF EXISTS gmv.training_credit_monthly;
DROP MATERIALIZED VIEW IF EXISTS gmv.training_credit;
DROP VIEW IF EXISTS gmv.match_weight;
"""


def upgrade() -> None:
    for path in sorted(FROZEN_SQL.glob("*.sql")):
        op.get_bind().exec_driver_sql(path.read_text(encoding="utf-8"))


def downgrade() -> None:
    op.get_bind().exec_driver_sql(DOWNGRADE)
