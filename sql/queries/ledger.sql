-- The ledger (gmv_sql/ledger): drafts, issued statements, adjustments, reversals and verification.
-- A computation reads its match rows from the temporary table pg_temp.ledger_rows, filled either from
-- the live gmv.match (draft, issue) or from a statement's stored rows (verify): one credit query for both.

-- name: scheme
-- The temperature the views use in this space: the space's calibrated or explicit one, else the scheme's.
SELECT s.scheme_id, s.name, s.formula, coalesce(c.temperature, s.temperature) AS temperature
FROM gmv.valuation_scheme AS s
LEFT JOIN gmv.scheme_calibration AS c ON c.scheme_id = s.scheme_id AND c.space_id = %(space_id)s
WHERE s.scheme_id = %(scheme_id)s

-- name: generator_by_name
SELECT generator_id, name FROM gmv.generator WHERE name = %(name)s

-- name: generator_names
SELECT name FROM gmv.generator ORDER BY name

-- name: run_by_name
SELECT run_id, name FROM gmv.generation_run WHERE generator_id = %(generator_id)s AND name = %(name)s

-- name: run_names
SELECT name FROM gmv.generation_run WHERE generator_id = %(generator_id)s ORDER BY name

-- name: pool
SELECT pool_id, amount, currency
FROM gmv.revenue_pool
WHERE period = %(period)s AND space_id = %(space_id)s AND scheme_id = %(scheme_id)s
  AND generator_id IS NOT DISTINCT FROM %(generator_id)s AND run_id IS NOT DISTINCT FROM %(run_id)s

-- name: upsert_pool
INSERT INTO gmv.revenue_pool (period, amount, currency, space_id, scheme_id, generator_id, run_id)
VALUES (%(period)s, %(amount)s, %(currency)s, %(space_id)s, %(scheme_id)s, %(generator_id)s, %(run_id)s)
ON CONFLICT (period, space_id, scheme_id, generator_id, run_id)
DO UPDATE SET amount = EXCLUDED.amount, currency = EXCLUDED.currency, created_at = now()

-- name: create_rows
CREATE TEMPORARY TABLE IF NOT EXISTS ledger_rows (
    generated_id  bigint NOT NULL,
    rank          integer NOT NULL,
    training_id   bigint NOT NULL,
    distance      double precision NOT NULL,
    k             integer NOT NULL,
    quality       double precision NOT NULL,
    match_run_id  bigint
) ON COMMIT DROP

-- name: clear_rows
TRUNCATE pg_temp.ledger_rows

-- name: fill_live_rows
-- The match rows a statement of (period, space, scope) is computed from now: generated images created
-- in the UTC month, of the scope's generator / run.
INSERT INTO pg_temp.ledger_rows
SELECT m.generated_id, m.rank, m.training_id, m.distance, m.k, g.quality, m.run_id
FROM gmv.match AS m
JOIN gmv.generated_image AS g USING (generated_id)
JOIN gmv.generation_run AS gr ON gr.run_id = g.run_id
WHERE m.space_id = %(space_id)s
  AND g.created_at >= (%(period)s::date::timestamp AT TIME ZONE 'UTC')
  AND g.created_at < ((%(period)s::date + 1 * interval '1 month')::timestamp AT TIME ZONE 'UTC')
  AND (%(generator_id)s::bigint IS NULL OR gr.generator_id = %(generator_id)s)
  AND (%(run_id)s::bigint IS NULL OR g.run_id = %(run_id)s)

-- name: analyze_rows
ANALYZE pg_temp.ledger_rows

-- name: fill_stored_rows
INSERT INTO pg_temp.ledger_rows
SELECT generated_id, rank, training_id, distance, k, quality, match_run_id
FROM gmv.statement_match
WHERE statement_id = %(statement_id)s

-- name: credit
-- Credit per training image: sum over its rows of quality x weight, the weights of each generated image
-- normalised to 1 (gmv.raw_match_weight, as in gmv.match_weight). Sums run in a fixed order and credit is rounded to
-- 9 decimals, so the same rows always give the same cents (equal credits stay equal: ties are real ties).
WITH raw AS (
    SELECT r.generated_id,
           r.rank,
           r.training_id,
           r.quality,
           gmv.raw_match_weight(%(formula)s, r.k, r.rank, r.distance,
                                min(r.distance) OVER (PARTITION BY r.generated_id),
                                %(temperature)s::double precision) AS raw_weight
    FROM pg_temp.ledger_rows AS r
), total AS (
    SELECT generated_id, sum(raw_weight ORDER BY rank) AS total
    FROM raw
    GROUP BY generated_id
)
SELECT raw.training_id,
       round(sum(raw.quality * raw.raw_weight / total.total ORDER BY raw.generated_id, raw.rank)::numeric, 9)
           AS credit,
       count(*)::integer AS n_matches
FROM raw
JOIN total USING (generated_id)
GROUP BY raw.training_id
ORDER BY raw.training_id

-- name: live_images
-- Who owns the credited training images now, and under which licence.
SELECT t.training_id, t.owner_id, o.name AS owner, t.sha256, t.uri, l.name AS license, l.royalty_bearing
FROM gmv.training_image AS t
JOIN gmv.owner AS o USING (owner_id)
JOIN gmv.license AS l USING (license_id)
WHERE t.training_id = ANY (%(ids)s::bigint[])

-- name: row_counts
SELECT count(DISTINCT generated_id) AS generated_images, count(*) AS match_rows,
       count(DISTINCT training_id) AS training_images, count(*) FILTER (WHERE match_run_id IS NULL) AS unrecorded
FROM pg_temp.ledger_rows

-- name: runs_used
-- The match runs behind the rows, with the recall each measured.
SELECT r.run_id, r.exact, r.index_kind, r.index_params, r.ef_search, r.probes, r.recall_at_k, r.recall_sample,
       r.recall_status, r.started_at, r.finished_at, r.gmv_sql_version, r.postgres_version, r.pgvector_version,
       u.images
FROM (SELECT match_run_id, count(DISTINCT generated_id) AS images
      FROM pg_temp.ledger_rows WHERE match_run_id IS NOT NULL GROUP BY match_run_id) AS u
JOIN gmv.match_run AS r ON r.run_id = u.match_run_id
ORDER BY r.run_id

-- name: distinct_k
SELECT DISTINCT k FROM pg_temp.ledger_rows ORDER BY k

-- name: versions
SELECT current_setting('server_version') AS postgres,
       (SELECT extversion FROM pg_extension WHERE extname = 'vector') AS pgvector

-- name: issued_lines
-- Per owner: what the earlier statements of this month and scope issued (statement_id < before).
SELECT l.owner_id, sum(l.amount) AS issued, (array_agg(l.owner ORDER BY l.statement_id DESC))[1] AS owner
FROM gmv.statement_line AS l
JOIN gmv.statement AS s USING (statement_id)
WHERE s.period = %(period)s AND s.space_id = %(space_id)s AND s.scheme_id = %(scheme_id)s
  AND s.scope = %(scope)s AND s.statement_id < %(before)s
GROUP BY l.owner_id

-- name: issued_credits
-- Per training image and owner: what the earlier statements of this month and scope issued, with the
-- latest stored description of the image.
SELECT c.training_id, c.owner_id, sum(c.amount) AS issued,
       (array_agg(c.owner ORDER BY c.statement_id DESC))[1] AS owner,
       (array_agg(c.sha256 ORDER BY c.statement_id DESC))[1] AS sha256,
       (array_agg(c.uri ORDER BY c.statement_id DESC))[1] AS uri,
       (array_agg(c.license ORDER BY c.statement_id DESC))[1] AS license,
       (array_agg(c.royalty_bearing ORDER BY c.statement_id DESC))[1] AS royalty_bearing
FROM gmv.statement_credit AS c
JOIN gmv.statement AS s USING (statement_id)
WHERE s.period = %(period)s AND s.space_id = %(space_id)s AND s.scheme_id = %(scheme_id)s
  AND s.scope = %(scope)s AND s.statement_id < %(before)s
GROUP BY c.training_id, c.owner_id

-- name: scope_statements
SELECT statement_id, kind
FROM gmv.statement
WHERE period = %(period)s AND space_id = %(space_id)s AND scheme_id = %(scheme_id)s AND scope = %(scope)s
ORDER BY statement_id

-- name: insert_statement
INSERT INTO gmv.statement (kind, period, space_id, space, scheme_id, scheme, generator, run, scope, pool,
                           amount, currency, reason, reverses, provenance)
VALUES (%(kind)s, %(period)s, %(space_id)s, %(space)s, %(scheme_id)s, %(scheme)s, %(generator)s, %(run)s,
        %(scope)s, %(pool)s, %(amount)s, %(currency)s, %(reason)s, %(reverses)s, %(provenance)s)
RETURNING statement_id, issued_at, issued_by

-- name: copy_lines
COPY gmv.statement_line (statement_id, owner_id, owner, credit, unpaid_credit, share, due, issued_before, amount)
FROM STDIN

-- name: copy_credits
COPY gmv.statement_credit (statement_id, training_id, owner_id, sha256, uri, owner, license, royalty_bearing,
                           credit, n_matches, due, issued_before, amount)
FROM STDIN

-- name: store_rows
INSERT INTO gmv.statement_match (statement_id, generated_id, rank, training_id, distance, k, quality, match_run_id)
SELECT %(statement_id)s, generated_id, rank, training_id, distance, k, quality, match_run_id
FROM pg_temp.ledger_rows

-- name: statement
SELECT statement_id, kind, to_char(period, 'YYYY-MM') AS period, period AS period_date, space_id, space,
       scheme_id, scheme, generator, run, scope, pool, amount, currency, reason, reverses, issued_at, issued_by,
       provenance
FROM gmv.statement
WHERE statement_id = %(statement_id)s

-- name: last_statement_id
SELECT max(statement_id) FROM gmv.statement

-- name: reversed_by
SELECT statement_id FROM gmv.statement WHERE reverses = %(statement_id)s

-- name: lines
SELECT owner_id, owner, credit, unpaid_credit, share, due, issued_before, amount
FROM gmv.statement_line
WHERE statement_id = %(statement_id)s
ORDER BY amount DESC, owner

-- name: credits
SELECT training_id, owner_id, sha256, uri, owner, license, royalty_bearing, credit, n_matches, due,
       issued_before, amount
FROM gmv.statement_credit
WHERE statement_id = %(statement_id)s
ORDER BY owner, training_id

-- name: list
SELECT statement_id AS id, kind, to_char(period, 'YYYY-MM') AS period, space, scheme, scope, pool, amount,
       currency, issued_at, issued_by, reverses, reason
FROM gmv.statement
WHERE (%(period)s::date IS NULL OR period = %(period)s::date)
ORDER BY statement_id

-- name: changes
-- What differs between a statement's stored rows and the live rows now in pg_temp.ledger_rows. Each
-- generated image's matches are compared as one signature (training ids, distances, k in rank order).
WITH stored AS (
    SELECT generated_id, max(quality) AS quality,
           array_agg(training_id ORDER BY rank) AS training, array_agg(distance ORDER BY rank) AS distance,
           max(k) AS k
    FROM gmv.statement_match WHERE statement_id = %(statement_id)s
    GROUP BY generated_id
), live AS (
    SELECT generated_id, max(quality) AS quality,
           array_agg(training_id ORDER BY rank) AS training, array_agg(distance ORDER BY rank) AS distance,
           max(k) AS k
    FROM pg_temp.ledger_rows
    GROUP BY generated_id
), paired AS (
    SELECT s.generated_id AS stored_id, l.generated_id AS live_id,
           s.quality AS stored_quality, l.quality AS live_quality,
           (s.training, s.distance, s.k) IS DISTINCT FROM (l.training, l.distance, l.k) AS differs
    FROM stored AS s FULL JOIN live AS l USING (generated_id)
), stored_training AS (
    SELECT DISTINCT training_id FROM gmv.statement_match WHERE statement_id = %(statement_id)s
)
SELECT
    (SELECT count(*) FROM paired WHERE stored_id IS NULL) AS generated_added,
    (SELECT count(*) FROM paired AS p WHERE live_id IS NULL
       AND NOT EXISTS (SELECT FROM gmv.generated_image AS g WHERE g.generated_id = p.stored_id))
        AS generated_deleted,
    (SELECT count(*) FROM paired AS p WHERE live_id IS NULL
       AND EXISTS (SELECT FROM gmv.generated_image AS g WHERE g.generated_id = p.stored_id))
        AS generated_left,
    (SELECT count(*) FROM paired WHERE stored_id IS NOT NULL AND live_id IS NOT NULL AND differs) AS rematched,
    (SELECT count(*) FROM paired WHERE stored_quality IS DISTINCT FROM live_quality
       AND stored_id IS NOT NULL AND live_id IS NOT NULL) AS quality_changed,
    (SELECT count(*) FROM stored_training AS s JOIN gmv.training_image AS t USING (training_id) WHERE t.opted_out)
        AS opted_out,
    (SELECT count(*) FROM stored_training AS s JOIN gmv.training_image AS t USING (training_id)
     JOIN gmv.license AS l USING (license_id) WHERE l.excluded AND NOT t.opted_out)
        AS excluded,
    (SELECT count(*) FROM stored_training AS s
     WHERE NOT EXISTS (SELECT FROM gmv.training_image AS t WHERE t.training_id = s.training_id))
        AS training_deleted,
    (SELECT count(*) FROM gmv.statement_credit AS c JOIN gmv.training_image AS t USING (training_id)
     JOIN gmv.license AS l USING (license_id)
     WHERE c.statement_id = %(statement_id)s AND c.royalty_bearing IS DISTINCT FROM l.royalty_bearing)
        AS royalty_changed,
    (SELECT count(*) FROM gmv.statement_credit AS c JOIN gmv.training_image AS t USING (training_id)
     WHERE c.statement_id = %(statement_id)s AND c.owner_id <> t.owner_id AND c.credit > 0)
        AS owner_changed
