"""Calibrated softmax weighting: a temperature per embedding space, and a default scheme per space.

Tables and columns:
  * gmv.valuation_scheme accepts formula 'softmax_calibrated' (exp(-(d - d_min) / T) with T taken from
    gmv.scheme_calibration of the space) and gets the scheme `softmax_calibrated`;
  * gmv.scheme_calibration (space, scheme) -> temperature, the rule and the statistics it came from,
    set_by 'calibrated' (`gmv value calibrate`) or 'explicit' (`gmv value set-temperature`);
  * gmv.embedding_space.default_scheme_id: the scheme reports use when none is named. Spaces that exist
    now keep what they had (the default scheme at upgrade time); later spaces take the default scheme
    at creation (sql/queries/spaces.sql), which becomes softmax_calibrated (measured best on two
    datasets, docs/VALUATION.md) unless an operator had chosen another default than rank_linear.

Derived objects: re-applies sql/derived/ from its frozen copy 0005_calibrated_weighting/ (the weight
function gmv.raw_match_weight, gmv.match_weight using calibrated temperatures, report.scheme_setting).
Downgrade: the previous frozen folder (0004), then the tables and columns go.

Revision ID: 0005_calibrated_weighting
Revises: 0004_consolidate
Create Date: 2026-12-02
"""

from pathlib import Path

from alembic import op

revision = "0005_calibrated_weighting"
down_revision = "0004_consolidate"
branch_labels = None
depends_on = None

VERSIONS = Path(__file__).parent
FROZEN_SQL = VERSIONS / "0005_calibrated_weighting"
PREVIOUS_SQL = VERSIONS / "0004_consolidate"

UPGRADE = r"""
ALTER TABLE gmv.valuation_scheme DROP CONSTRAINT valuation_scheme_formula_check;
ALTER TABLE gmv.valuation_scheme ADD CONSTRAINT valuation_scheme_formula_check CHECK (
    formula IN ('rank_linear', 'reciprocal_rank', 'softmax_distance', 'softmax_calibrated', 'uniform'));
INSERT INTO gmv.valuation_scheme (name, formula, temperature, is_default, description)
VALUES ('softmax_calibrated', 'softmax_calibrated', NULL, false,
        'weight exp(-(d - d_min) / T), T calibrated per embedding space from its own match distances (report.scheme_setting)')
ON CONFLICT (name) DO NOTHING;

CREATE TABLE gmv.scheme_calibration (
    space_id       integer NOT NULL REFERENCES gmv.embedding_space ON DELETE CASCADE,
    scheme_id      integer NOT NULL REFERENCES gmv.valuation_scheme ON DELETE CASCADE,
    temperature    double precision NOT NULL CHECK (temperature > 0 AND temperature < 'Infinity'),
    rule           text NOT NULL,
    statistics     jsonb NOT NULL DEFAULT '{}'::jsonb,
    set_by         text NOT NULL CHECK (set_by IN ('calibrated', 'explicit')),
    calibrated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (space_id, scheme_id)
);
CREATE INDEX scheme_calibration_scheme_idx ON gmv.scheme_calibration (scheme_id);
COMMENT ON TABLE gmv.scheme_calibration IS
    'Temperature of a softmax_calibrated scheme in one embedding space: computed by a rule from the space''s match distances (set_by calibrated, with the statistics used) or set explicitly.';

ALTER TABLE gmv.embedding_space
    ADD COLUMN default_scheme_id integer REFERENCES gmv.valuation_scheme ON DELETE SET NULL;
CREATE INDEX embedding_space_default_scheme_idx ON gmv.embedding_space (default_scheme_id);
COMMENT ON COLUMN gmv.embedding_space.default_scheme_id IS
    'The valuation scheme reports use for this space when none is named (NULL: the global default scheme).';
UPDATE gmv.embedding_space
SET default_scheme_id = (SELECT scheme_id FROM gmv.valuation_scheme WHERE is_default)
WHERE default_scheme_id IS NULL;

-- The default for spaces created from now on: softmax_calibrated, the weighting that carried the
-- membership signal best on both datasets measured (docs/VALUATION.md). Only when the default is still
-- the one 0001 shipped (an operator's own choice stays).
UPDATE gmv.valuation_scheme SET is_default = false WHERE is_default AND name = 'rank_linear';
UPDATE gmv.valuation_scheme SET is_default = true
WHERE name = 'softmax_calibrated' AND NOT EXISTS (SELECT FROM gmv.valuation_scheme WHERE is_default);
"""

DOWNGRADE = r"""
ALTER TABLE gmv.embedding_space DROP COLUMN default_scheme_id;
DROP TABLE gmv.scheme_calibration;
DELETE FROM gmv.revenue_pool
WHERE scheme_id IN (SELECT scheme_id FROM gmv.valuation_scheme WHERE formula = 'softmax_calibrated');
UPDATE gmv.valuation_scheme SET is_default = false WHERE is_default AND formula = 'softmax_calibrated';
UPDATE gmv.valuation_scheme SET is_default = true
WHERE name = 'rank_linear' AND NOT EXISTS (SELECT FROM gmv.valuation_scheme WHERE is_default);
DELETE FROM gmv.valuation_scheme WHERE formula = 'softmax_calibrated';
ALTER TABLE gmv.valuation_scheme DROP CONSTRAINT valuation_scheme_formula_check;
ALTER TABLE gmv.valuation_scheme ADD CONSTRAINT valuation_scheme_formula_check CHECK (
    formula IN ('rank_linear', 'reciprocal_rank', 'softmax_distance', 'uniform'));
"""


def _execute(statements: str) -> None:
    # Straight to psycopg without parameters, so format()'s %s / %I in the PL/pgSQL are not placeholders.
    op.get_bind().connection.driver_connection.execute(statements)


def _apply(folder: Path) -> None:
    for path in sorted(folder.glob("*.sql")):
        _execute(path.read_text(encoding="utf-8"))


def upgrade() -> None:
    _execute((PREVIOUS_SQL / "00_drop_derived.sql").read_text(encoding="utf-8"))
    _execute(UPGRADE)
    _apply(FROZEN_SQL)


def downgrade() -> None:
    _execute((FROZEN_SQL / "00_drop_derived.sql").read_text(encoding="utf-8"))
    _execute(DOWNGRADE)
    _apply(PREVIOUS_SQL)
