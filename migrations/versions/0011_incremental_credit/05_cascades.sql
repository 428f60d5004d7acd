-- Statement-level cascades instead of per-row foreign keys on the tables gmv bulk-writes (gmv.match
-- and the per-space vector tables; why: migrations/versions/0003_set_based_cascades.py). Deleting or
-- truncating images or spaces deletes their match rows and vectors in one set-based DELETE per
-- statement and table.

CREATE OR REPLACE FUNCTION gmv.embedding_table(kind text, space_id integer) RETURNS regclass
LANGUAGE sql STABLE AS $$
    SELECT to_regclass(format('gmv.%s_embedding_%s', kind, space_id))
$$;
COMMENT ON FUNCTION gmv.embedding_table(text, integer) IS
    'The vector table of a space: kind training or generated (NULL if it does not exist); gmv_sql.spaces.table_name in Python.';

-- A delete racing a running gmv embed, gmv embed import or gmv match could otherwise leave a row
-- behind for an image deleted after that command read it: the trigger first waits for them. They
-- hold advisory lock (key, space_id) with the keys of gmv_sql/db/locks.py: EMBED = 6647138 ("emb"),
-- MATCH = 7168372 ("mat"); tests/db/test_cascades.py checks that these numbers agree.
CREATE OR REPLACE FUNCTION gmv.cascade_delete() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    s record;
    kind text;
    vectors regclass;
BEGIN
    -- Wait for running gmv embed / embed import / match: the rows they are writing get deleted too.
    PERFORM pg_advisory_xact_lock(6647138, e.space_id), pg_advisory_xact_lock(7168372, e.space_id)
    FROM gmv.embedding_space AS e ORDER BY e.space_id;
    IF TG_TABLE_NAME = 'embedding_space' THEN
        -- Also matches re-ranked by a deleted space (gmv.match.rerank_space_id).
        DELETE FROM gmv.match AS m USING gone
        WHERE m.space_id = gone.space_id OR m.rerank_space_id = gone.space_id;
        RETURN NULL;
    END IF;
    kind := CASE TG_TABLE_NAME WHEN 'training_image' THEN 'training' ELSE 'generated' END;
    EXECUTE format('DELETE FROM gmv.match AS m USING gone WHERE m.%1$I = gone.%1$I', kind || '_id');
    FOR s IN SELECT space_id FROM gmv.embedding_space ORDER BY space_id LOOP
        vectors := gmv.embedding_table(kind, s.space_id);
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
CREATE OR REPLACE FUNCTION gmv.cascade_truncate() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    s record;
    vectors regclass;
BEGIN
    DELETE FROM gmv.match;
    IF TG_TABLE_NAME <> 'embedding_space' THEN
        FOR s IN SELECT space_id FROM gmv.embedding_space ORDER BY space_id LOOP
            vectors := gmv.embedding_table(
                CASE TG_TABLE_NAME WHEN 'training_image' THEN 'training' ELSE 'generated' END, s.space_id);
            IF vectors IS NOT NULL THEN
                EXECUTE format('DELETE FROM %s', vectors);
            END IF;
        END LOOP;
    END IF;
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION gmv.cascade_truncate() IS
    'ON TRUNCATE of images or spaces: empties gmv.match and the vector tables of that kind.';

CREATE OR REPLACE TRIGGER cascade_delete AFTER DELETE ON gmv.training_image
    REFERENCING OLD TABLE AS gone FOR EACH STATEMENT EXECUTE FUNCTION gmv.cascade_delete();
CREATE OR REPLACE TRIGGER cascade_delete AFTER DELETE ON gmv.generated_image
    REFERENCING OLD TABLE AS gone FOR EACH STATEMENT EXECUTE FUNCTION gmv.cascade_delete();
CREATE OR REPLACE TRIGGER cascade_delete AFTER DELETE ON gmv.embedding_space
    REFERENCING OLD TABLE AS gone FOR EACH STATEMENT EXECUTE FUNCTION gmv.cascade_delete();
CREATE OR REPLACE TRIGGER cascade_truncate AFTER TRUNCATE ON gmv.training_image
    FOR EACH STATEMENT EXECUTE FUNCTION gmv.cascade_truncate();
CREATE OR REPLACE TRIGGER cascade_truncate AFTER TRUNCATE ON gmv.generated_image
    FOR EACH STATEMENT EXECUTE FUNCTION gmv.cascade_truncate();
CREATE OR REPLACE TRIGGER cascade_truncate AFTER TRUNCATE ON gmv.embedding_space
    FOR EACH STATEMENT EXECUTE FUNCTION gmv.cascade_truncate();
