"""Attribution quality: near-copy thresholds per space, re-ranked matches, report.near_copy.

Columns only (no new tables):
- gmv.embedding_space.near_copy_distance: a generated image whose matched training image is at most
  this far (in the space's own distance) is a near-copy (report.near_copy). near_copy_source says
  where it came from: 'calibrated' (from the space's own training data, gmv_sql.quality.near_copy;
  re-calibrated as data grows) or 'set' (by `gmv space set NAME --near-copy-distance D`; kept).
  near_copy_calibration records the calibration's inputs and result (rule, sample size, percentiles).
- gmv.match.rerank_space_id / candidates: the match was re-ranked (`gmv match --rerank-space B
  --candidates N`): N candidates from the space's own index, final top-k and distance by space B.

Derived objects: re-applies sql/derived/ from its frozen copy (0009_attribution_quality/ beside this
file), which adds sql/derived/35_quality.sql (report.near_copy). Downgrade re-applies 0008's frozen
folder and keeps the columns and their values (an upgrade adds them only if missing).

Revision ID: 0009_attribution_quality
Revises: 0008_access
Create Date: 2026-12-02
"""

from pathlib import Path

from alembic import op

revision = "0009_attribution_quality"
down_revision = "0008_access"
branch_labels = None
depends_on = None

VERSIONS = Path(__file__).parent
FROZEN_SQL = VERSIONS / "0009_attribution_quality"
PREVIOUS_SQL = VERSIONS / "0008_access"

COLUMNS = r"""
ALTER TABLE gmv.embedding_space
    ADD COLUMN IF NOT EXISTS near_copy_distance double precision
        CHECK (near_copy_distance >= 0 AND near_copy_distance < 'Infinity'::double precision),
    ADD COLUMN IF NOT EXISTS near_copy_source text CHECK (near_copy_source IN ('calibrated', 'set')),
    ADD COLUMN IF NOT EXISTS near_copy_calibration jsonb,
    DROP CONSTRAINT IF EXISTS embedding_space_near_copy_source,
    ADD CONSTRAINT embedding_space_near_copy_source
        CHECK ((near_copy_distance IS NULL) = (near_copy_source IS NULL));
COMMENT ON COLUMN gmv.embedding_space.near_copy_distance IS
    'A generated image at most this far from a matched training image (in this space''s distance) is a near-copy (report.near_copy).';
COMMENT ON COLUMN gmv.embedding_space.near_copy_source IS
    'calibrated: from the space''s own training data (docs/NEAR_COPIES.md), refreshed as data grows; set: by gmv space set, kept.';
COMMENT ON COLUMN gmv.embedding_space.near_copy_calibration IS
    'Inputs and result of the last calibration: rule, percentile, training images sampled, distance percentiles.';

ALTER TABLE gmv.match
    -- No foreign key (none on gmv.match since 0003): deleting the space deletes these rows through
    -- gmv.cascade_delete() (sql/derived/05_cascades.sql).
    ADD COLUMN IF NOT EXISTS rerank_space_id integer,
    ADD COLUMN IF NOT EXISTS candidates integer CHECK (candidates BETWEEN k AND 1000),
    DROP CONSTRAINT IF EXISTS match_rerank_candidates,
    ADD CONSTRAINT match_rerank_candidates CHECK ((rerank_space_id IS NULL) = (candidates IS NULL));
COMMENT ON COLUMN gmv.match.rerank_space_id IS
    'Re-ranked match: candidates came from space_id''s index, rank and distance are those of this space.';
COMMENT ON COLUMN gmv.match.candidates IS 'Candidates taken from space_id''s index before re-ranking.';
"""


def _execute(statements: str) -> None:
    # Straight to psycopg without parameters, so format()'s %s / %I in the PL/pgSQL are not placeholders.
    op.get_bind().connection.driver_connection.execute(statements)


def _apply(folder: Path) -> None:
    for path in sorted(folder.glob("*.sql")):
        _execute(path.read_text(encoding="utf-8"))


def upgrade() -> None:
    _execute(COLUMNS)
    _apply(FROZEN_SQL)


def downgrade() -> None:
    # The previous folder starts by dropping every derived object (report.near_copy with them). The
    # columns stay, with their values: a downgrade keeps every row (tests/reliability/
    # test_migrations_populated.py), older code names the columns it reads, and upgrade adds them
    # only if missing.
    _apply(PREVIOUS_SQL)
