"""Rights without SQL: dated opt-outs, the rights log, and which training vectors matches competed with.

- gmv.training_image.opted_out_from: an opt-out with a date applies to generated images created on
  or after that day (UTC); earlier outputs keep their matches, hence the image's credit in their
  period. NULL with opted_out: every output (the flag as it always was). docs/ROYALTIES.md.
- gmv.rights_change: one row per changed rights field of a training image (opted_out,
  opted_out_from) or licence (royalty_bearing, excluded, url), written by triggers
  (sql/derived/40_rights.sql), so changes made with plain SQL are logged too; report.rights_change
  shows it.
- gmv.match_coverage: per space, the training vectors (with their embedded_at) that every current
  match row of the space has competed with. `gmv match` re-matches only the generated images that a
  vector missing here (embedded late, opted in again, licence included again) could enter
  (gmv_sql/match/late.py). Existing matched spaces are taken as covered by their current vectors.

Revision ID: 0007_rights
Revises: 0006_ledger
Create Date: 2026-12-02
"""

from pathlib import Path

from alembic import op

revision = "0007_rights"
down_revision = "0006_ledger"
branch_labels = None
depends_on = None

VERSIONS = Path(__file__).parent
FROZEN_SQL = VERSIONS / "0007_rights"
PREVIOUS_SQL = VERSIONS / "0006_ledger"

TABLES = r"""
ALTER TABLE gmv.training_image
    ADD COLUMN opted_out_from date,
    ADD CONSTRAINT training_image_opted_out_from_check CHECK (opted_out_from IS NULL OR opted_out);
COMMENT ON COLUMN gmv.training_image.opted_out_from IS
    'With opted_out: the opt-out applies to generated images created on or after this day (UTC); NULL: to all of them.';

CREATE TABLE gmv.rights_change (
    change_id     bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    changed_at    timestamptz NOT NULL DEFAULT now(),
    changed_by    text NOT NULL DEFAULT current_user,
    session_user_name text NOT NULL DEFAULT session_user,
    application   text NOT NULL DEFAULT coalesce(current_setting('application_name', true), ''),
    target        text NOT NULL CHECK (target IN ('training_image', 'license')),
    training_id   bigint,
    license_id    bigint,
    target_name   text NOT NULL,
    field         text NOT NULL,
    before        text,
    after         text
);
CREATE INDEX rights_change_training_idx ON gmv.rights_change (training_id);
COMMENT ON TABLE gmv.rights_change IS
    'Log of rights changes (opt-out, opt-in, licence terms), one row per changed field, written by triggers.';

CREATE TABLE gmv.match_coverage (
    space_id     integer NOT NULL REFERENCES gmv.embedding_space ON DELETE CASCADE,
    training_id  bigint NOT NULL,
    embedded_at  timestamptz NOT NULL,
    PRIMARY KEY (space_id, training_id)
);
COMMENT ON TABLE gmv.match_coverage IS
    'Training vectors (id, embedded_at) every match of the space has competed with; others are late and compete at the next gmv match.';

-- Matches made before this revision competed with every vector stored now.
DO $$
DECLARE
    s record;
BEGIN
    FOR s IN SELECT space_id FROM gmv.embedding_space WHERE match_k IS NOT NULL ORDER BY space_id LOOP
        IF to_regclass(format('gmv.training_embedding_%s', s.space_id)) IS NOT NULL THEN
            EXECUTE format('INSERT INTO gmv.match_coverage (space_id, training_id, embedded_at) '
                           'SELECT %s, training_id, embedded_at FROM gmv.training_embedding_%s',
                           s.space_id, s.space_id);
        END IF;
    END LOOP;
END
$$;
"""

DROP_TABLES = r"""
DROP TABLE gmv.match_coverage;
DROP TABLE gmv.rights_change;
ALTER TABLE gmv.training_image DROP COLUMN opted_out_from;
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
    _execute((FROZEN_SQL / "00_drop_derived.sql").read_text(encoding="utf-8"))
    _execute(DROP_TABLES)
    _apply(PREVIOUS_SQL)
