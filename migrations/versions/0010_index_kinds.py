"""Index kind and precision per embedding space: HNSW or IVFFlat, on the stored vectors or on halfvec.

gmv.embedding_space gets:
- index_kind: 'hnsw' (the graph, built whenever) or 'ivfflat' (lists whose centroids are fixed by the
  rows present when it is built: build it after loading, rebuild as data grows);
- index_precision: 'full' indexes the stored column as it is; 'half' indexes the expression
  (embedding::halfvec(dim)) of a vector column: half the index size and measured 10-50% faster at
  equal recall (docs/BENCHMARKS.md), while the table keeps full-precision vectors for exact
  searches, re-ranking and stored distances. Spaces that exist keep 'full' (their index is on the
  column); spaces created from now on default to 'half';
- ivfflat_lists: the lists of the space's IVFFlat index (NULL for HNSW);
- index_rows, index_built_at: training vectors the index was built on, and when (NULL: built with the
  space, on an empty table). An IVFFlat index built on far fewer rows than the table now holds is
  reported as stale by `gmv db status` and `gmv match`.

Derived objects: re-applies sql/derived/ from its frozen copy 0010_index_kinds/ (report.space shows
the index kind and its parameters); the downgrade re-applies 0009's.

Revision ID: 0010_index_kinds
Revises: 0009_attribution_quality
Create Date: 2026-12-02
"""

from pathlib import Path

from alembic import op

VERSIONS = Path(__file__).parent
FROZEN_SQL = VERSIONS / "0010_index_kinds"
PREVIOUS_SQL = VERSIONS / "0009_attribution_quality"


def _execute(statements: str) -> None:
    # Straight to psycopg without parameters, so format()'s %I and LIKE's % are not placeholders.
    op.get_bind().connection.driver_connection.execute(statements)


revision = "0010_index_kinds"
down_revision = "0009_attribution_quality"
branch_labels = None
depends_on = None

UPGRADE = r"""
ALTER TABLE gmv.embedding_space
    ADD COLUMN index_kind text NOT NULL DEFAULT 'hnsw' CHECK (index_kind IN ('hnsw', 'ivfflat')),
    ADD COLUMN index_precision text NOT NULL DEFAULT 'full' CHECK (index_precision IN ('full', 'half')),
    ADD COLUMN ivfflat_lists integer CHECK (ivfflat_lists BETWEEN 1 AND 32768),
    ADD COLUMN index_rows bigint CHECK (index_rows >= 0),
    ADD COLUMN index_built_at timestamptz,
    ADD CONSTRAINT embedding_space_ivfflat_lists CHECK ((index_kind = 'ivfflat') = (ivfflat_lists IS NOT NULL));
-- New spaces default to a halfvec index. Existing ones are recorded as their index is: after a
-- downgrade and upgrade, the index left in place (kind, cast to halfvec, lists) is read back. A
-- halfvec column is always 'half'. (index_rows is not known then: NULL.)
ALTER TABLE gmv.embedding_space ALTER COLUMN index_precision SET DEFAULT 'half';
UPDATE gmv.embedding_space AS s
SET index_kind = 'ivfflat',
    ivfflat_lists = coalesce((
        SELECT substring(o.opt FROM '^lists=([0-9]+)$')::integer
        FROM pg_class AS c, unnest(c.reloptions) AS o(opt)
        WHERE c.oid = to_regclass(format('gmv.%I', 'training_embedding_' || s.space_id || '_ivfflat'))
          AND o.opt LIKE 'lists=%'
    ), 100)
WHERE to_regclass(format('gmv.%I', 'training_embedding_' || s.space_id || '_ivfflat')) IS NOT NULL;
UPDATE gmv.embedding_space AS s
SET index_precision = 'half'
WHERE s.storage = 'halfvec'
   OR coalesce(pg_get_indexdef(to_regclass(format('gmv.%I', 'training_embedding_' || s.space_id || '_' || s.index_kind))), '')
      LIKE '%::halfvec(%';
COMMENT ON COLUMN gmv.embedding_space.index_kind IS 'Index of the training vectors: hnsw or ivfflat (gmv index build).';
COMMENT ON COLUMN gmv.embedding_space.index_precision IS 'full: index on the stored column; half: on (embedding::halfvec(dim)), the table keeps full precision.';
COMMENT ON COLUMN gmv.embedding_space.ivfflat_lists IS 'Lists of the IVFFlat index (NULL for HNSW).';
COMMENT ON COLUMN gmv.embedding_space.index_rows IS 'Training vectors the index was built on (NULL: built on the empty table with the space).';
COMMENT ON COLUMN gmv.embedding_space.index_built_at IS 'When the index was last built.';
"""

DOWNGRADE = r"""
ALTER TABLE gmv.embedding_space
    DROP CONSTRAINT embedding_space_ivfflat_lists,
    DROP COLUMN index_built_at,
    DROP COLUMN index_rows,
    DROP COLUMN ivfflat_lists,
    DROP COLUMN index_precision,
    DROP COLUMN index_kind;
"""


def _apply(folder: Path) -> None:
    for path in sorted(folder.glob("*.sql")):
        _execute(path.read_text(encoding="utf-8"))


def upgrade() -> None:
    _execute(UPGRADE)
    _apply(FROZEN_SQL)


def downgrade() -> None:
    # The per-space indexes stay as they are (the upgrade reads them back). Before this revision gmv
    # knew only HNSW on the column: run `gmv index build --precision full --kind hnsw` before
    # downgrading for the old code to use the index.
    _execute((FROZEN_SQL / "00_drop_derived.sql").read_text(encoding="utf-8"))
    _execute(DOWNGRADE)
    _apply(PREVIOUS_SQL)
