-- Credit kept in plain tables (migration 0011_incremental_credit), recomputed only where something changed.
--
-- Why not materialized views: REFRESH … CONCURRENTLY over 1M match rows cost 7.7x the aggregate it
-- stores (it diffs the whole old and new result), and a plain REFRESH blocks readers. Here triggers note
-- which (space, month) slices of the credit a change touches in gmv.credit_dirty, in the writer's own
-- transaction; gmv.refresh_credit() recomputes those slices only (DELETE + INSERT in the refresh's
-- transaction: readers keep seeing the old rows until it commits and never wait), then the totals of the
-- training images, owners and licences the slices touched. The maths stays in gmv.match_weight.
--
-- What marks what (a NULL space or period means every one):
--   gmv.match insert / update / delete            the (space, month) of each changed match
--   gmv.generated_image quality or created_at     the old and the new month, every space
--   gmv.generated_image delete                    its month, every space (its matches go with it)
--   gmv.scheme_calibration change                 the whole space
--   gmv.valuation_scheme formula or temperature    everything (and a new or deleted scheme)
--   gmv.training_image owner or licence change    everything (credit moves between owners)
--   gmv.training_image insert / delete            the image counts per owner and licence, rows of 0
--   gmv.embedding_space first matched or deleted   rows of 0
--   TRUNCATE of images, spaces or matches         everything

CREATE FUNCTION gmv.credit_period(created_at timestamptz) RETURNS date
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN date_trunc('month', created_at AT TIME ZONE 'UTC')::date;
COMMENT ON FUNCTION gmv.credit_period(timestamptz) IS
    'Royalty period of a generated image: the first day of its UTC month (as gmv.match_weight.period).';

CREATE FUNCTION gmv.mark_match_credit() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    -- A match whose generated image is already deleted: that delete marked its month (below).
    INSERT INTO gmv.credit_dirty (kind, space_id, period)
    SELECT DISTINCT 'credit', c.space_id, gmv.credit_period(g.created_at)
    FROM changed AS c
    JOIN gmv.generated_image AS g USING (generated_id);
    IF TG_OP = 'UPDATE' THEN
        INSERT INTO gmv.credit_dirty (kind, space_id, period)
        SELECT DISTINCT 'credit', c.space_id, gmv.credit_period(g.created_at)
        FROM changed_before AS c
        JOIN gmv.generated_image AS g USING (generated_id);
    END IF;
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION gmv.mark_match_credit() IS 'Marks the (space, month) credit slices of changed matches for gmv.refresh_credit().';

CREATE TRIGGER mark_credit_insert AFTER INSERT ON gmv.match
    REFERENCING NEW TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION gmv.mark_match_credit();
CREATE TRIGGER mark_credit_delete AFTER DELETE ON gmv.match
    REFERENCING OLD TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION gmv.mark_match_credit();
CREATE TRIGGER mark_credit_update AFTER UPDATE ON gmv.match
    REFERENCING OLD TABLE AS changed_before NEW TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION gmv.mark_match_credit();

CREATE FUNCTION gmv.mark_generated_credit() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        INSERT INTO gmv.credit_dirty (kind, period)
        SELECT DISTINCT 'credit', gmv.credit_period(b.created_at) FROM changed_before AS b;
    ELSE
        INSERT INTO gmv.credit_dirty (kind, period)
        SELECT DISTINCT 'credit', p.period
        FROM changed_before AS b
        JOIN changed AS a USING (generated_id)
        CROSS JOIN LATERAL (VALUES (gmv.credit_period(b.created_at)), (gmv.credit_period(a.created_at))) AS p(period)
        WHERE (b.quality, b.created_at) IS DISTINCT FROM (a.quality, a.created_at);
    END IF;
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION gmv.mark_generated_credit() IS
    'Marks the months whose credit a change of generated images'' quality or created_at (or a delete) changes.';

CREATE TRIGGER mark_credit_update AFTER UPDATE ON gmv.generated_image
    REFERENCING OLD TABLE AS changed_before NEW TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION gmv.mark_generated_credit();
CREATE TRIGGER mark_credit_delete AFTER DELETE ON gmv.generated_image
    REFERENCING OLD TABLE AS changed_before FOR EACH STATEMENT EXECUTE FUNCTION gmv.mark_generated_credit();

CREATE FUNCTION gmv.mark_training_credit() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' THEN
        IF EXISTS (SELECT FROM changed_before AS b JOIN changed AS a USING (training_id)
                   WHERE (b.owner_id, b.license_id) IS DISTINCT FROM (a.owner_id, a.license_id)) THEN
            INSERT INTO gmv.credit_dirty (kind) VALUES ('credit'), ('images');
        END IF;
    ELSIF EXISTS (SELECT FROM changed) THEN
        INSERT INTO gmv.credit_dirty (kind) VALUES ('images');
    END IF;
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION gmv.mark_training_credit() IS
    'Marks the image counts (insert, delete) or all credit (owner or licence changed) for gmv.refresh_credit().';

CREATE TRIGGER mark_credit_insert AFTER INSERT ON gmv.training_image
    REFERENCING NEW TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION gmv.mark_training_credit();
CREATE TRIGGER mark_credit_delete AFTER DELETE ON gmv.training_image
    REFERENCING OLD TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION gmv.mark_training_credit();
CREATE TRIGGER mark_credit_update AFTER UPDATE ON gmv.training_image
    REFERENCING OLD TABLE AS changed_before NEW TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION gmv.mark_training_credit();

CREATE FUNCTION gmv.mark_calibration_credit() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO gmv.credit_dirty (kind, space_id) SELECT DISTINCT 'credit', c.space_id FROM changed AS c;
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION gmv.mark_calibration_credit() IS 'Marks the whole space whose softmax temperature changed.';

CREATE TRIGGER mark_credit_insert AFTER INSERT ON gmv.scheme_calibration
    REFERENCING NEW TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION gmv.mark_calibration_credit();
CREATE TRIGGER mark_credit_delete AFTER DELETE ON gmv.scheme_calibration
    REFERENCING OLD TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION gmv.mark_calibration_credit();
CREATE TRIGGER mark_credit_update AFTER UPDATE ON gmv.scheme_calibration
    REFERENCING NEW TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION gmv.mark_calibration_credit();

CREATE FUNCTION gmv.mark_space_credit() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    -- A space matched for the first time (match_k set) or deleted: its rows of 0 come or go. Renamed:
    -- gmv.training_credit keeps the name (report.training_value filters and sorts on its index).
    -- (Separate IFs: a DELETE trigger has no transition tables to name.)
    IF TG_OP = 'DELETE' THEN
        INSERT INTO gmv.credit_dirty (kind) VALUES ('images');
        RETURN NULL;
    END IF;
    IF EXISTS (SELECT FROM changed_before AS b JOIN changed AS a USING (space_id)
               WHERE (b.match_k IS NULL) <> (a.match_k IS NULL)) THEN
        INSERT INTO gmv.credit_dirty (kind) VALUES ('images');
    END IF;
    IF EXISTS (SELECT FROM changed_before AS b JOIN changed AS a USING (space_id) WHERE b.name <> a.name) THEN
        INSERT INTO gmv.credit_dirty (kind) VALUES ('credit');
    END IF;
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION gmv.mark_space_credit() IS 'Marks the rows of 0 credit when a space is first matched or deleted.';

CREATE TRIGGER mark_credit_update AFTER UPDATE ON gmv.embedding_space
    REFERENCING OLD TABLE AS changed_before NEW TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION gmv.mark_space_credit();
CREATE TRIGGER mark_credit_delete AFTER DELETE ON gmv.embedding_space
    FOR EACH STATEMENT EXECUTE FUNCTION gmv.mark_space_credit();

CREATE FUNCTION gmv.mark_all_credit() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO gmv.credit_dirty (kind) VALUES ('credit'), ('images');
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION gmv.mark_all_credit() IS 'Marks all credit and the image counts for gmv.refresh_credit().';

CREATE TRIGGER mark_credit_all AFTER INSERT OR DELETE OR TRUNCATE ON gmv.valuation_scheme
    FOR EACH STATEMENT EXECUTE FUNCTION gmv.mark_all_credit();

CREATE FUNCTION gmv.mark_scheme_credit() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    -- The weight formula and temperature change credit (and the name, kept in gmv.training_credit);
    -- the description or the default do not.
    IF EXISTS (SELECT FROM changed_before AS b JOIN changed AS a USING (scheme_id)
               WHERE (b.formula, b.temperature, b.name) IS DISTINCT FROM (a.formula, a.temperature, a.name)) THEN
        INSERT INTO gmv.credit_dirty (kind) VALUES ('credit');
    END IF;
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION gmv.mark_scheme_credit() IS 'Marks all credit when a scheme''s formula or temperature changes.';

CREATE TRIGGER mark_credit_update AFTER UPDATE ON gmv.valuation_scheme
    REFERENCING OLD TABLE AS changed_before NEW TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION gmv.mark_scheme_credit();
CREATE TRIGGER mark_credit_truncate AFTER TRUNCATE ON gmv.match
    FOR EACH STATEMENT EXECUTE FUNCTION gmv.mark_all_credit();
CREATE TRIGGER mark_credit_truncate AFTER TRUNCATE ON gmv.generated_image
    FOR EACH STATEMENT EXECUTE FUNCTION gmv.mark_all_credit();
CREATE TRIGGER mark_credit_truncate AFTER TRUNCATE ON gmv.training_image
    FOR EACH STATEMENT EXECUTE FUNCTION gmv.mark_all_credit();
CREATE TRIGGER mark_credit_truncate AFTER TRUNCATE ON gmv.embedding_space
    FOR EACH STATEMENT EXECUTE FUNCTION gmv.mark_all_credit();

-- Recomputes what gmv.credit_dirty marks, in the caller's transaction (gmv value refresh). One refresh
-- at a time (advisory lock 0x637264 "crd"; gmv_sql/db/locks.py CREDIT): a second one queues, then finds
-- nothing left to do. Marks written by transactions that commit meanwhile stay for the next refresh.
--
-- Per marked slice: the slice's credit is aggregated afresh from gmv.match_weight into a temporary
-- table, and only the rows that differ are written (deleted, inserted): a few changed matches in a month
-- of 100k rewrite a few thousand rows, not the month. Then the totals of the training images whose rows
-- changed are summed again from their months, and the owner and licence totals of the slice again
-- from its rows. Returns: marks processed (slices), whether everything was marked, whether the image
-- counts were recounted, and the training-credit rows written.
CREATE FUNCTION gmv.refresh_credit(
    OUT slices integer, OUT full_recompute boolean, OUT image_counts boolean, OUT credit_rows bigint
)
LANGUAGE plpgsql AS $$
DECLARE
    mark record;
    condition text;
    touched bigint;
    touched_all bigint := 0;
BEGIN
    PERFORM pg_advisory_xact_lock(6517348, 0);
    DROP TABLE IF EXISTS pg_temp.credit_claim, pg_temp.credit_new, pg_temp.credit_touched,
        pg_temp.credit_count_change, pg_temp.owner_credit_before, pg_temp.credit_missing;
    CREATE TEMP TABLE credit_claim ON COMMIT DROP AS
    WITH claimed AS (DELETE FROM gmv.credit_dirty RETURNING kind, space_id, period)
    SELECT DISTINCT kind, space_id, period FROM claimed;
    full_recompute := EXISTS (SELECT FROM credit_claim WHERE kind = 'credit' AND space_id IS NULL AND period IS NULL);
    image_counts := EXISTS (SELECT FROM credit_claim WHERE kind = 'images');
    slices := 0;
    credit_rows := 0;
    CREATE TEMP TABLE credit_touched (space_id integer, scheme_id integer, training_id bigint) ON COMMIT DROP;

    FOR mark IN
        SELECT c.space_id, c.period FROM credit_claim AS c
        WHERE c.kind = 'credit'
          -- A mark inside a wider one is done by the wider one.
          AND NOT (full_recompute AND (c.space_id IS NOT NULL OR c.period IS NOT NULL))
          AND NOT (c.space_id IS NOT NULL AND c.period IS NOT NULL
                   AND EXISTS (SELECT FROM credit_claim AS w
                               WHERE w.kind = 'credit' AND (w.space_id IS NULL) <> (w.period IS NULL)
                                 AND (w.space_id = c.space_id OR w.period = c.period)))
        ORDER BY c.space_id, c.period
    LOOP
        -- Literals, not parameters: the planner then pushes space and period below the windows of
        -- gmv.match_weight (partitioned by both) and reads only the slice.
        condition := concat_ws(' AND ', 'true',
                               'space_id = ' || quote_literal(mark.space_id),
                               'period = ' || quote_literal(mark.period));
        DROP TABLE IF EXISTS pg_temp.credit_new;
        -- same: the slice already holds this row: the same matches, and a value equal up to 1e-12
        -- relative (sums in another order, as another plan adds them, differ in the last bits; rewriting
        -- every row for that would cost a full write). No statement below reads the table it is writing:
        -- an anti-join against rows being inserted would rescan them.
        EXECUTE format(
            'CREATE TEMP TABLE credit_new ON COMMIT DROP AS '
            'SELECT a.space_id, a.scheme_id, a.period, a.training_id, t.owner_id, t.license_id, a.value, a.n_matches, '
            '       coalesce(abs(m.value - a.value) <= 1e-12 * greatest(abs(m.value), abs(a.value)) '
            '                AND m.n_matches = a.n_matches AND m.owner_id = t.owner_id '
            '                AND m.license_id = t.license_id, false) AS same '
            'FROM (SELECT space_id, scheme_id, period, training_id, sum(quality * weight) AS value, count(*) AS n_matches '
            '      FROM gmv.match_weight WHERE %s '
            '      GROUP BY space_id, scheme_id, period, training_id) AS a '
            'JOIN gmv.training_image AS t USING (training_id) '
            'LEFT JOIN gmv.training_credit_monthly AS m '
            '       ON m.space_id = a.space_id AND m.period = a.period AND m.scheme_id = a.scheme_id '
            '      AND m.training_id = a.training_id', condition);
        ANALYZE pg_temp.credit_new;
        -- Rows of the slice that are gone or differ.
        EXECUTE format(
            'WITH gone AS ('
            '  DELETE FROM gmv.training_credit_monthly AS m WHERE %s AND NOT EXISTS ('
            '    SELECT FROM pg_temp.credit_new AS n'
            '    WHERE n.same AND n.space_id = m.space_id AND n.period = m.period AND n.scheme_id = m.scheme_id'
            '      AND n.training_id = m.training_id)'
            '  RETURNING m.space_id, m.scheme_id, m.training_id) '
            'INSERT INTO pg_temp.credit_touched SELECT * FROM gone',
            replace(replace(condition, 'space_id', 'm.space_id'), 'period', 'm.period'));
        GET DIAGNOSTICS touched = ROW_COUNT;
        -- Rows new or changed.
        WITH made AS (
            INSERT INTO gmv.training_credit_monthly
                (space_id, scheme_id, period, training_id, owner_id, license_id, value, n_matches)
            SELECT n.space_id, n.scheme_id, n.period, n.training_id, n.owner_id, n.license_id, n.value, n.n_matches
            FROM pg_temp.credit_new AS n
            WHERE NOT n.same
            RETURNING space_id, scheme_id, training_id
        )
        INSERT INTO pg_temp.credit_touched SELECT * FROM made;
        GET DIAGNOSTICS credit_rows = ROW_COUNT;
        touched := touched + credit_rows;
        touched_all := touched_all + touched;
        IF touched > 0 THEN
            -- The slice's owner and licence credit, summed again from its rows (exact, per month).
            EXECUTE format('DELETE FROM gmv.owner_credit_monthly WHERE %s', condition);
            INSERT INTO gmv.owner_credit_monthly (space_id, scheme_id, owner_id, license_id, period, value, n_matches)
            SELECT space_id, scheme_id, owner_id, license_id, period, sum(value), sum(n_matches)
            FROM pg_temp.credit_new
            GROUP BY space_id, scheme_id, owner_id, license_id, period;
        END IF;
        slices := slices + 1;
    END LOOP;
    DROP TABLE IF EXISTS pg_temp.credit_new;
    credit_rows := 0;

    -- gmv.training_credit holds a row for every training image in every matched space and scheme,
    -- 0 without credit, so that report.training_value is one join the planner can drive from an index
    -- (a top-N by value, one image by id). Everything marked and much changed (a first refresh, a new
    -- scheme): every total again, from the months; else the touched training images only.
    IF full_recompute AND touched_all > 0.2 * greatest((SELECT c.reltuples FROM pg_class AS c
                                                        WHERE c.oid = 'gmv.training_credit_monthly'::regclass), 0) THEN
        DELETE FROM gmv.training_credit;
        INSERT INTO gmv.training_credit
            (space_id, scheme_id, training_id, owner_id, license_id, value, n_matches, space, scheme)
        SELECT sp.space_id, vs.scheme_id, t.training_id, t.owner_id, t.license_id,
               coalesce(m.value, 0), coalesce(m.n_matches, 0), sp.name, vs.name
        FROM gmv.embedding_space AS sp
        CROSS JOIN gmv.valuation_scheme AS vs
        CROSS JOIN gmv.training_image AS t
        LEFT JOIN (SELECT space_id, scheme_id, training_id, sum(value) AS value, sum(n_matches) AS n_matches
                   FROM gmv.training_credit_monthly
                   GROUP BY space_id, scheme_id, training_id) AS m
               ON m.space_id = sp.space_id AND m.scheme_id = vs.scheme_id AND m.training_id = t.training_id
        WHERE sp.match_k IS NOT NULL;
        GET DIAGNOSTICS credit_rows = ROW_COUNT;
        DELETE FROM gmv.owner_credit;
        INSERT INTO gmv.owner_credit (space_id, scheme_id, owner_id, license_id, value, n_matches, n_images)
        SELECT c.space_id, c.scheme_id, c.owner_id, c.license_id, m.value, m.n_matches, c.n_images
        FROM (SELECT space_id, scheme_id, owner_id, license_id, count(*) AS n_images
              FROM gmv.training_credit WHERE n_matches > 0
              GROUP BY space_id, scheme_id, owner_id, license_id) AS c
        JOIN (SELECT space_id, scheme_id, owner_id, license_id, sum(value) AS value, sum(n_matches) AS n_matches
              FROM gmv.owner_credit_monthly GROUP BY space_id, scheme_id, owner_id, license_id) AS m
          USING (space_id, scheme_id, owner_id, license_id);
    ELSE
        IF full_recompute THEN
            -- A space or scheme renamed (the names are kept here for report.training_value's index).
            UPDATE gmv.training_credit AS c
            SET space = sp.name, scheme = vs.name
            FROM gmv.embedding_space AS sp, gmv.valuation_scheme AS vs
            WHERE sp.space_id = c.space_id AND vs.scheme_id = c.scheme_id
              AND (c.space, c.scheme) IS DISTINCT FROM (sp.name, vs.name);
        END IF;
        -- Per owner, licence, space and scheme: credited images gained (+1) or lost (-1).
        CREATE TEMP TABLE credit_count_change (
            space_id integer, scheme_id integer, owner_id bigint, license_id bigint, images integer
        ) ON COMMIT DROP;
        IF image_counts THEN
            -- Images, spaces or schemes came or went: rows for those that have none (0), none for
            -- those gone. First, so that the totals below find a row for every touched image.
            WITH gone AS (
                DELETE FROM gmv.training_credit AS c
                WHERE NOT EXISTS (SELECT FROM gmv.training_image AS t WHERE t.training_id = c.training_id)
                   OR NOT EXISTS (SELECT FROM gmv.embedding_space AS sp
                                  WHERE sp.space_id = c.space_id AND sp.match_k IS NOT NULL)
                   OR NOT EXISTS (SELECT FROM gmv.valuation_scheme AS vs WHERE vs.scheme_id = c.scheme_id)
                RETURNING c.space_id, c.scheme_id, c.owner_id, c.license_id, c.n_matches
            )
            INSERT INTO pg_temp.credit_count_change
            SELECT space_id, scheme_id, owner_id, license_id, -1 FROM gone WHERE n_matches > 0;
            DROP TABLE IF EXISTS pg_temp.credit_missing;
            CREATE TEMP TABLE credit_missing ON COMMIT DROP AS
            SELECT sp.space_id, vs.scheme_id, t.training_id, t.owner_id, t.license_id, sp.name AS space, vs.name AS scheme
            FROM gmv.embedding_space AS sp
            CROSS JOIN gmv.valuation_scheme AS vs
            CROSS JOIN gmv.training_image AS t
            WHERE sp.match_k IS NOT NULL
              AND NOT EXISTS (SELECT FROM gmv.training_credit AS c
                              WHERE c.space_id = sp.space_id AND c.scheme_id = vs.scheme_id
                                AND c.training_id = t.training_id);
            INSERT INTO gmv.training_credit
                (space_id, scheme_id, training_id, owner_id, license_id, value, n_matches, space, scheme)
            SELECT space_id, scheme_id, training_id, owner_id, license_id, 0, 0, space, scheme FROM pg_temp.credit_missing;
        END IF;
        IF EXISTS (SELECT FROM pg_temp.credit_touched) THEN
            -- Totals of the touched training images: the sum of their months, written where it
            -- changed; an image credited before and not now (or the reverse) counts -1 (+1) for its
            -- owner and licence.
            ANALYZE pg_temp.credit_touched;
            WITH touched AS (SELECT DISTINCT space_id, scheme_id, training_id FROM pg_temp.credit_touched),
            summed AS (
                SELECT tt.space_id, tt.scheme_id, tt.training_id,
                       coalesce(sum(m.value), 0) AS value, coalesce(sum(m.n_matches), 0) AS n_matches
                FROM touched AS tt
                LEFT JOIN gmv.training_credit_monthly AS m
                       ON m.space_id = tt.space_id AND m.scheme_id = tt.scheme_id AND m.training_id = tt.training_id
                GROUP BY tt.space_id, tt.scheme_id, tt.training_id
            ),
            changed AS (
                UPDATE gmv.training_credit AS c
                SET value = s.value, n_matches = s.n_matches, owner_id = t.owner_id, license_id = t.license_id
                FROM summed AS s
                JOIN gmv.training_image AS t ON t.training_id = s.training_id
                WHERE c.space_id = s.space_id AND c.scheme_id = s.scheme_id AND c.training_id = s.training_id
                  AND (c.value, c.n_matches, c.owner_id, c.license_id)
                      IS DISTINCT FROM (s.value, s.n_matches, t.owner_id, t.license_id)
                RETURNING c.space_id, c.scheme_id, old.owner_id AS old_owner, old.license_id AS old_license,
                          old.n_matches AS old_n, new.owner_id AS new_owner, new.license_id AS new_license,
                          new.n_matches AS new_n
            )
            INSERT INTO pg_temp.credit_count_change
            SELECT space_id, scheme_id, old_owner, old_license, -1 FROM changed WHERE old_n > 0
            UNION ALL
            SELECT space_id, scheme_id, new_owner, new_license, 1 FROM changed WHERE new_n > 0;
            GET DIAGNOSTICS credit_rows = ROW_COUNT;
        END IF;
        IF EXISTS (SELECT FROM pg_temp.credit_count_change) THEN

            -- Owner and licence totals of the groups touched: value from their months, images counted on.
            CREATE TEMP TABLE owner_credit_before ON COMMIT DROP AS
            WITH groups AS (SELECT DISTINCT space_id, scheme_id, owner_id, license_id FROM pg_temp.credit_count_change),
            gone AS (
                DELETE FROM gmv.owner_credit AS o USING groups AS g
                WHERE o.space_id = g.space_id AND o.scheme_id = g.scheme_id AND o.owner_id = g.owner_id
                  AND o.license_id = g.license_id
                RETURNING o.space_id, o.scheme_id, o.owner_id, o.license_id, o.n_images
            )
            SELECT * FROM gone;
            INSERT INTO gmv.owner_credit (space_id, scheme_id, owner_id, license_id, value, n_matches, n_images)
            SELECT g.space_id, g.scheme_id, g.owner_id, g.license_id, v.value, v.n_matches,
                   coalesce(b.n_images, 0) + g.images
            FROM (SELECT space_id, scheme_id, owner_id, license_id, sum(images) AS images
                  FROM pg_temp.credit_count_change GROUP BY space_id, scheme_id, owner_id, license_id) AS g
            LEFT JOIN pg_temp.owner_credit_before AS b
                   ON b.space_id = g.space_id AND b.scheme_id = g.scheme_id AND b.owner_id = g.owner_id
                  AND b.license_id = g.license_id
            CROSS JOIN LATERAL (
                SELECT sum(m.value) AS value, sum(m.n_matches) AS n_matches
                FROM gmv.owner_credit_monthly AS m
                WHERE m.space_id = g.space_id AND m.scheme_id = g.scheme_id AND m.owner_id = g.owner_id
                  AND m.license_id = g.license_id
            ) AS v
            WHERE coalesce(b.n_images, 0) + g.images > 0;
        END IF;
    END IF;

    IF image_counts OR full_recompute THEN
        -- (One GROUP BY over the training images: fractions of a second per million.)
        DELETE FROM gmv.training_image_count;
        INSERT INTO gmv.training_image_count (owner_id, license_id, n_training_images)
        SELECT owner_id, license_id, count(*) FROM gmv.training_image GROUP BY owner_id, license_id;
    END IF;

    -- Fresh statistics when much changed (autovacuum comes later): a never-analyzed training_credit
    -- looks empty to the planner, which then plans report.training_value's anti-join as a nested loop
    -- over it (seconds instead of milliseconds). ANALYZE does not block readers or writers.
    IF credit_rows > 0.1 * greatest((SELECT c.reltuples FROM pg_class AS c
                                     WHERE c.oid = 'gmv.training_credit'::regclass), 0) THEN
        ANALYZE gmv.training_credit_monthly, gmv.training_credit, gmv.owner_credit_monthly, gmv.owner_credit,
            gmv.training_image_count;
    END IF;
    IF full_recompute THEN
        slices := NULL;
    END IF;
END
$$;
COMMENT ON FUNCTION gmv.refresh_credit() IS
    'Recomputes the credit slices gmv.credit_dirty marks (everything when marked so), writing only the rows that changed, and the totals they touch; run by gmv value refresh.';
