"""Credit in plain tables kept incrementally, instead of materialized views refreshed CONCURRENTLY.

gmv.training_credit and gmv.training_credit_monthly become tables (same names and columns, plus the
image's owner_id and license_id; training_credit also the space's and scheme's names, and a row of 0
for every training image never matched), with three more kept beside them:
- gmv.owner_credit_monthly, gmv.owner_credit: credit per owner and licence (per month, in total; n_images
  counts the owner's credited images), so report.owner_value, report.license_value and
  report.royalty_statement read a few rows per owner instead of one per training image;
- gmv.training_image_count: training images per owner and licence;
- gmv.credit_dirty: which (space, month) slices changed since the last refresh, written by triggers in
  the writers' own transactions (sql/derived/12_credit.sql).

gmv value refresh (gmv.refresh_credit()) recomputes only the marked slices and the totals they touch:
over 1M match rows REFRESH … CONCURRENTLY cost 7.7x the plain aggregate (docs/BENCHMARKS.md). The
upgrade fills the tables from the kept matches.

Derived objects: re-applies sql/derived/ from its frozen copy 0011_incremental_credit/; the downgrade
drops the tables and re-applies 0010's (which re-creates the materialized views, filled).

Revision ID: 0011_incremental_credit
Revises: 0010_index_kinds
Create Date: 2026-12-02
"""

from pathlib import Path

from alembic import op

VERSIONS = Path(__file__).parent
FROZEN_SQL = VERSIONS / "0011_incremental_credit"
PREVIOUS_SQL = VERSIONS / "0010_index_kinds"


def _execute(statements: str) -> None:
    # Straight to psycopg without parameters, so format()'s %I and LIKE's % are not placeholders.
    op.get_bind().connection.driver_connection.execute(statements)


revision = "0011_incremental_credit"
down_revision = "0010_index_kinds"
branch_labels = None
depends_on = None

# No foreign keys: these rows are derived, and a deleted image, space or scheme marks the slices that
# held its credit (the next refresh removes them). vacuum_truncate = false: truncating empty tail pages
# takes ACCESS EXCLUSIVE for a moment, the one way a report reader could wait on a refresh.
UPGRADE = r"""
CREATE TABLE gmv.training_credit_monthly (
    space_id     integer NOT NULL,
    scheme_id    integer NOT NULL,
    period       date NOT NULL,
    training_id  bigint NOT NULL,
    owner_id     bigint NOT NULL,
    license_id   bigint NOT NULL,
    value        double precision NOT NULL,
    n_matches    bigint NOT NULL,
    PRIMARY KEY (space_id, period, scheme_id, training_id)
) WITH (vacuum_truncate = false);
CREATE INDEX training_credit_monthly_training_idx ON gmv.training_credit_monthly (space_id, scheme_id, training_id);
COMMENT ON TABLE gmv.training_credit_monthly IS
    'Credit per training image for generated images created in each month (period = first day of the UTC month); kept by gmv value refresh.';

CREATE TABLE gmv.training_credit (
    space_id     integer NOT NULL,
    scheme_id    integer NOT NULL,
    training_id  bigint NOT NULL,
    owner_id     bigint NOT NULL,
    license_id   bigint NOT NULL,
    value        double precision NOT NULL,
    n_matches    bigint NOT NULL,
    space        text NOT NULL,
    scheme       text NOT NULL,
    PRIMARY KEY (space_id, scheme_id, training_id)
) WITH (vacuum_truncate = false);
-- Top-N by value, of one space and scheme (the names, as report.training_value is filtered) or of all.
CREATE INDEX training_credit_top_idx ON gmv.training_credit (space, scheme, value DESC);
CREATE INDEX training_credit_value_idx ON gmv.training_credit (value DESC);
COMMENT ON TABLE gmv.training_credit IS
    'value_i = sum over generated j of q_j * w(rank of i in j), per space and scheme (the sum of its months), 0 for every training image never matched; space, scheme: the names, for report.training_value. Kept by gmv value refresh.';

CREATE TABLE gmv.owner_credit_monthly (
    space_id    integer NOT NULL,
    scheme_id   integer NOT NULL,
    owner_id    bigint NOT NULL,
    license_id  bigint NOT NULL,
    period      date NOT NULL,
    value       double precision NOT NULL,
    n_matches   bigint NOT NULL,
    PRIMARY KEY (space_id, scheme_id, owner_id, license_id, period)
) WITH (vacuum_truncate = false);
CREATE INDEX owner_credit_monthly_period_idx ON gmv.owner_credit_monthly (space_id, period);
COMMENT ON TABLE gmv.owner_credit_monthly IS
    'Credit per owner and licence of the training images, per month (royalty statements). Kept by gmv value refresh.';

CREATE TABLE gmv.owner_credit (
    space_id    integer NOT NULL,
    scheme_id   integer NOT NULL,
    owner_id    bigint NOT NULL,
    license_id  bigint NOT NULL,
    value       double precision NOT NULL,
    n_matches   bigint NOT NULL,
    n_images    bigint NOT NULL,
    PRIMARY KEY (space_id, scheme_id, owner_id, license_id)
) WITH (vacuum_truncate = false);
COMMENT ON TABLE gmv.owner_credit IS
    'Credit per owner and licence (n_images: their training images with credit). Kept by gmv value refresh.';

CREATE TABLE gmv.training_image_count (
    owner_id           bigint NOT NULL,
    license_id         bigint NOT NULL,
    n_training_images  bigint NOT NULL,
    PRIMARY KEY (owner_id, license_id)
) WITH (vacuum_truncate = false);
COMMENT ON TABLE gmv.training_image_count IS 'Training images per owner and licence, as of the last gmv value refresh.';

CREATE TABLE gmv.credit_dirty (
    kind       text NOT NULL CHECK (kind IN ('credit', 'images')),
    space_id   integer,
    period     date,
    marked_at  timestamptz NOT NULL DEFAULT now()
) WITH (vacuum_truncate = false);
COMMENT ON TABLE gmv.credit_dirty IS
    'What changed since the last gmv value refresh: credit of a (space, month) slice (NULL: every space or month) or the image counts. Written by triggers, emptied by the refresh.';
INSERT INTO gmv.credit_dirty (kind) VALUES ('credit'), ('images');
"""

DOWNGRADE = r"""
DROP TABLE gmv.credit_dirty, gmv.training_image_count, gmv.owner_credit, gmv.owner_credit_monthly,
    gmv.training_credit, gmv.training_credit_monthly;
"""


def _apply(folder: Path) -> None:
    for path in sorted(folder.glob("*.sql")):
        _execute(path.read_text(encoding="utf-8"))


def upgrade() -> None:
    _execute((FROZEN_SQL / "00_drop_derived.sql").read_text(encoding="utf-8"))  # the materialized views
    _execute(UPGRADE)
    _apply(FROZEN_SQL)
    _execute("SELECT gmv.refresh_credit()")


def downgrade() -> None:
    _execute((FROZEN_SQL / "00_drop_derived.sql").read_text(encoding="utf-8"))
    _execute(DOWNGRADE)
    _apply(PREVIOUS_SQL)
