"""Statement-level cascades instead of per-row foreign keys on the tables gmv bulk-writes.

`gmv match` inserts k rows per generated image into gmv.match and `gmv embed` COPYs vectors into
the per-space tables gmv.{training,generated}_embedding_<space_id>. Each foreign key there ran a
row-locking lookup per inserted row (docs/BENCHMARKS.md, 200k x 512-d on 2 cores): gmv.match's three
keys cost ~25% of the matching rate (1,250 -> 1,570 matched/s without them), the vector tables' key
~35% of the COPY rate. Nothing those keys check on insert can fail: match rows are built from the
vector tables, and vectors are stored for ids just read from the image tables. What the keys also
did, ON DELETE CASCADE, is kept by statement-level triggers (one set-based DELETE per statement and
table, TRUNCATE included) on gmv.training_image, gmv.generated_image and gmv.embedding_space.

A delete racing a running `gmv embed`, `gmv embed import` or `gmv match` could otherwise leave a row
behind for an image deleted after that command read it: the trigger first waits for them (each
holds advisory lock (key, space_id), keys below), so their rows are committed and deleted too.

Also: the two credit materialized views get `vacuum_truncate = false`. REFRESH … CONCURRENTLY
deletes and inserts rows in them, autovacuum then may truncate their empty tail pages, and that
truncation takes an ACCESS EXCLUSIVE lock for a moment: the one way a report reader could still
wait on a lock during refreshes (seen once in tests/reliability/test_refresh_under_load.py). Without
truncation the freed pages are simply reused by the next refresh.

Revision ID: 0003_set_based_cascades
Revises: 0002_derived
Create Date: 2026-11-29
"""

from alembic import op

revision = "0003_set_based_cascades"
down_revision = "0002_derived"
branch_labels = None
depends_on = None

# gmv_sql.embed.pipeline._LOCK_KEY and gmv_sql.match.matcher._LOCK_KEY; a test checks they agree.
EMBED_LOCK_KEY = 6647138
MATCH_LOCK_KEY = 7168372

# Data-table DDL (this migration only), then the derived objects (re-created by 0004_consolidate's
# downgrade; their source is sql/derived/ since 0004).
FOREIGN_KEYS = r"""
ALTER TABLE gmv.match
    DROP CONSTRAINT match_space_id_fkey,
    DROP CONSTRAINT match_generated_id_fkey,
    DROP CONSTRAINT match_training_id_fkey;

-- Existing vector tables lose their foreign keys too (new ones are created without: sql/queries/embedding.sql).
DO $$
DECLARE
    fk record;
BEGIN
    FOR fk IN
        SELECT c.conrelid::regclass AS tbl, c.conname
        FROM pg_constraint AS c
        JOIN gmv.embedding_space AS s
          ON c.conrelid IN (to_regclass(format('gmv.training_embedding_%s', s.space_id)),
                            to_regclass(format('gmv.generated_embedding_%s', s.space_id)))
        WHERE c.contype = 'f'
    LOOP
        EXECUTE format('ALTER TABLE %s DROP CONSTRAINT %I', fk.tbl, fk.conname);
    END LOOP;
END
$$;
"""

DERIVED = rf"""
CREATE FUNCTION gmv.cascade_delete() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    s record;
    kind text;
    vectors regclass;
BEGIN
    -- Wait for running gmv embed / embed import / match: the rows they are writing get deleted too.
    PERFORM pg_advisory_xact_lock({EMBED_LOCK_KEY}, e.space_id), pg_advisory_xact_lock({MATCH_LOCK_KEY}, e.space_id)
    FROM gmv.embedding_space AS e ORDER BY e.space_id;
    IF TG_TABLE_NAME = 'embedding_space' THEN
        DELETE FROM gmv.match AS m USING gone WHERE m.space_id = gone.space_id;
        RETURN NULL;
    END IF;
    kind := CASE TG_TABLE_NAME WHEN 'training_image' THEN 'training' ELSE 'generated' END;
    EXECUTE format('DELETE FROM gmv.match AS m USING gone WHERE m.%1$I = gone.%1$I', kind || '_id');
    FOR s IN SELECT space_id FROM gmv.embedding_space ORDER BY space_id LOOP
        vectors := to_regclass(format('gmv.%s_embedding_%s', kind, s.space_id));
        IF vectors IS NOT NULL THEN
            EXECUTE format('DELETE FROM %s AS v USING gone WHERE v.%2$I = gone.%2$I', vectors, kind || '_id');
        END IF;
    END LOOP;
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION gmv.cascade_delete() IS
    'ON DELETE CASCADE from images and spaces into gmv.match and the per-space vector tables, one set-based DELETE per statement.';

-- DELETE, not TRUNCATE: a TRUNCATE naming gmv.match too (… CASCADE) would refuse a nested TRUNCATE of it.
CREATE FUNCTION gmv.cascade_truncate() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    s record;
    vectors regclass;
BEGIN
    DELETE FROM gmv.match;
    IF TG_TABLE_NAME <> 'embedding_space' THEN
        FOR s IN SELECT space_id FROM gmv.embedding_space ORDER BY space_id LOOP
            vectors := to_regclass(format('gmv.%s_embedding_%s',
                                          CASE TG_TABLE_NAME WHEN 'training_image' THEN 'training' ELSE 'generated' END,
                                          s.space_id));
            IF vectors IS NOT NULL THEN
                EXECUTE format('DELETE FROM %s', vectors);
            END IF;
        END LOOP;
    END IF;
    RETURN NULL;
END
$$;

ALTER MATERIALIZED VIEW gmv.training_credit SET (vacuum_truncate = false);
ALTER MATERIALIZED VIEW gmv.training_credit_monthly SET (vacuum_truncate = false);

CREATE TRIGGER cascade_delete AFTER DELETE ON gmv.training_image
    REFERENCING OLD TABLE AS gone FOR EACH STATEMENT EXECUTE FUNCTION gmv.cascade_delete();
CREATE TRIGGER cascade_delete AFTER DELETE ON gmv.generated_image
    REFERENCING OLD TABLE AS gone FOR EACH STATEMENT EXECUTE FUNCTION gmv.cascade_delete();
CREATE TRIGGER cascade_delete AFTER DELETE ON gmv.embedding_space
    REFERENCING OLD TABLE AS gone FOR EACH STATEMENT EXECUTE FUNCTION gmv.cascade_delete();
CREATE TRIGGER cascade_truncate AFTER TRUNCATE ON gmv.training_image
    FOR EACH STATEMENT EXECUTE FUNCTION gmv.cascade_truncate();
CREATE TRIGGER cascade_truncate AFTER TRUNCATE ON gmv.generated_image
    FOR EACH STATEMENT EXECUTE FUNCTION gmv.cascade_truncate();
CREATE TRIGGER cascade_truncate AFTER TRUNCATE ON gmv.embedding_space
    FOR EACH STATEMENT EXECUTE FUNCTION gmv.cascade_truncate();
"""

UPGRADE = FOREIGN_KEYS + DERIVED

DOWNGRADE = r"""
ALTER MATERIALIZED VIEW gmv.training_credit RESET (vacuum_truncate);
ALTER MATERIALIZED VIEW gmv.training_credit_monthly RESET (vacuum_truncate);
DROP TRIGGER cascade_delete ON gmv.training_image;
DROP TRIGGER cascade_delete ON gmv.generated_image;
DROP TRIGGER cascade_delete ON gmv.embedding_space;
DROP TRIGGER cascade_truncate ON gmv.training_image;
DROP TRIGGER cascade_truncate ON gmv.generated_image;
DROP TRIGGER cascade_truncate ON gmv.embedding_space;
DROP FUNCTION gmv.cascade_delete();
DROP FUNCTION gmv.cascade_truncate();
-- Rows the keys would refuse cannot exist (the triggers delete them), but a hand-made row might.
DELETE FROM gmv.match AS m
WHERE NOT EXISTS (SELECT 1 FROM gmv.embedding_space AS s WHERE s.space_id = m.space_id)
   OR NOT EXISTS (SELECT 1 FROM gmv.generated_image AS g WHERE g.generated_id = m.generated_id)
   OR NOT EXISTS (SELECT 1 FROM gmv.training_image AS t WHERE t.training_id = m.training_id);
ALTER TABLE gmv.match
    ADD CONSTRAINT match_space_id_fkey FOREIGN KEY (space_id) REFERENCES gmv.embedding_space ON DELETE CASCADE,
    ADD CONSTRAINT match_generated_id_fkey FOREIGN KEY (generated_id) REFERENCES gmv.generated_image ON DELETE CASCADE,
    ADD CONSTRAINT match_training_id_fkey FOREIGN KEY (training_id) REFERENCES gmv.training_image ON DELETE CASCADE;
DO $$
DECLARE
    s record;
    kind text;
    vectors regclass;
BEGIN
    FOR s IN SELECT space_id FROM gmv.embedding_space LOOP
        FOREACH kind IN ARRAY ARRAY['training', 'generated'] LOOP
            vectors := to_regclass(format('gmv.%s_embedding_%s', kind, s.space_id));
            CONTINUE WHEN vectors IS NULL;
            EXECUTE format('DELETE FROM %s AS v WHERE NOT EXISTS (SELECT 1 FROM gmv.%2$I AS i WHERE i.%3$I = v.%3$I)',
                           vectors, kind || '_image', kind || '_id');
            EXECUTE format('ALTER TABLE %s ADD FOREIGN KEY (%2$I) REFERENCES gmv.%3$I ON DELETE CASCADE',
                           vectors, kind || '_id', kind || '_image');
        END LOOP;
    END LOOP;
END
$$;
"""


def _execute(statements: str) -> None:
    # Straight to psycopg without parameters, so format()'s %s / %I in the PL/pgSQL are not placeholders.
    op.get_bind().connection.driver_connection.execute(statements)


def upgrade() -> None:
    _execute(UPGRADE)


def downgrade() -> None:
    _execute(DOWNGRADE)
