-- The report schema: what analysts, BI tools and royalty statements read. Public surface:
-- columns may be added, never renamed (see DESIGN.md).

CREATE SCHEMA report;
COMMENT ON SCHEMA report IS 'gmv_sql results for analysts and BI tools (read-only role gmv_reader).';

-- Every training image appears for every matched space and scheme, with value 0 when nothing
-- matched it: a zero is an answer (and the membership audit needs it). gmv.training_credit holds
-- those rows of 0 too (gmv.refresh_credit()), so that this is one join: a filter on training_id, space
-- or scheme and an ORDER BY value … LIMIT reach its indexes (it keeps the space's and scheme's names
-- for that). share divides by the stored total of the space and scheme (no window over every image).
CREATE VIEW report.training_value AS
SELECT c.space,
       c.scheme,
       t.training_id,
       t.uri,
       t.sha256,
       o.name AS owner,
       l.name AS license,
       c.value,
       c.n_matches,
       coalesce(c.value / nullif(total.value, 0), 0) AS share,
       l.royalty_bearing,
       t.opted_out,
       t.attributes
FROM gmv.training_credit AS c
JOIN gmv.embedding_space AS sp ON sp.space_id = c.space_id
JOIN gmv.training_image AS t ON t.training_id = c.training_id
JOIN gmv.owner AS o ON o.owner_id = t.owner_id
JOIN gmv.license AS l ON l.license_id = t.license_id
LEFT JOIN (SELECT oc.space_id, oc.scheme_id, sum(oc.value) AS value
           FROM gmv.owner_credit AS oc
           GROUP BY oc.space_id, oc.scheme_id) AS total ON total.space_id = c.space_id AND total.scheme_id = c.scheme_id
WHERE sp.match_k IS NOT NULL;
COMMENT ON VIEW report.training_value IS
    'Value (GMValuator credit) of each training image per embedding space and valuation scheme; share = value / total of the space and scheme. Values add up to the sum of generated images'' quality.';

-- Owner and licence totals come from gmv.owner_credit (per space, scheme, owner and licence, kept by
-- gmv.refresh_credit()) and the image counts from gmv.training_image_count: a few rows per owner, not
-- one per image. report.owner_value and report.license_value group this one view.
CREATE VIEW gmv.owner_license_value AS
SELECT sp.space_id, sp.name AS space, vs.scheme_id, vs.name AS scheme, n.owner_id, n.license_id,
       coalesce(oc.value, 0) AS value,
       coalesce(oc.n_images, 0) AS n_images,
       n.n_training_images
FROM gmv.embedding_space AS sp
CROSS JOIN gmv.valuation_scheme AS vs
CROSS JOIN gmv.training_image_count AS n
LEFT JOIN gmv.owner_credit AS oc
       ON oc.space_id = sp.space_id AND oc.scheme_id = vs.scheme_id AND oc.owner_id = n.owner_id
      AND oc.license_id = n.license_id
WHERE sp.match_k IS NOT NULL;
COMMENT ON VIEW gmv.owner_license_value IS
    'Credit, matched images and all images per matched space, scheme, owner and licence (0 where nothing matched): what report.owner_value and report.license_value group.';

CREATE VIEW report.owner_value AS
WITH credit AS (
    SELECT space_id, space, scheme_id, scheme, owner_id,
           sum(value) AS value,
           sum(n_images)::bigint AS n_images,
           sum(n_training_images)::bigint AS n_training_images
    FROM gmv.owner_license_value
    GROUP BY space_id, space, scheme_id, scheme, owner_id
)
SELECT c.space,
       c.scheme,
       o.name AS owner,
       c.value,
       coalesce(c.value / nullif((SELECT sum(oc.value) FROM gmv.owner_credit AS oc
                                  WHERE oc.space_id = c.space_id AND oc.scheme_id = c.scheme_id), 0), 0) AS share,
       c.n_images,
       c.n_training_images
FROM credit AS c
JOIN gmv.owner AS o ON o.owner_id = c.owner_id;
COMMENT ON VIEW report.owner_value IS
    'Value per owner: n_images = images of the owner that were matched at least once, n_training_images = all of the owner''s images.';

CREATE VIEW report.license_value AS
WITH credit AS (
    SELECT space_id, space, scheme_id, scheme, license_id,
           sum(value) AS value,
           sum(n_images)::bigint AS n_images,
           sum(n_training_images)::bigint AS n_training_images
    FROM gmv.owner_license_value
    GROUP BY space_id, space, scheme_id, scheme, license_id
)
SELECT c.space,
       c.scheme,
       l.name AS license,
       l.royalty_bearing,
       c.value,
       coalesce(c.value / nullif((SELECT sum(oc.value) FROM gmv.owner_credit AS oc
                                  WHERE oc.space_id = c.space_id AND oc.scheme_id = c.scheme_id), 0), 0) AS share,
       c.n_images,
       c.n_training_images
FROM credit AS c
JOIN gmv.license AS l ON l.license_id = c.license_id;
COMMENT ON VIEW report.license_value IS 'Value per licence; credit under non-royalty-bearing licences is shown here but never paid.';

CREATE VIEW report.attribution AS
SELECT sp.name AS space,
       vs.name AS scheme,
       w.generated_id,
       g.uri AS generated_uri,
       gen.name AS generator,
       run.name AS run,
       w.rank,
       w.training_id,
       t.uri AS training_uri,
       o.name AS owner,
       l.name AS license,
       w.distance,
       w.weight,
       w.quality * w.weight AS credit,
       g.created_at AS generated_at
FROM gmv.match_weight AS w
JOIN gmv.embedding_space AS sp USING (space_id)
JOIN gmv.valuation_scheme AS vs USING (scheme_id)
JOIN gmv.generated_image AS g USING (generated_id)
JOIN gmv.generation_run AS run USING (run_id)
JOIN gmv.generator AS gen USING (generator_id)
JOIN gmv.training_image AS t USING (training_id)
JOIN gmv.owner AS o USING (owner_id)
JOIN gmv.license AS l USING (license_id);
COMMENT ON VIEW report.attribution IS
    'Which training images each generated image came from: its top-k matches with distance and normalised weight (evidence).';

-- Largest-remainder split in integer cents: floor every owner's exact share, then give the
-- leftover cents one each to the largest fractional parts (ties by owner name), so amounts add
-- up to the pool exactly.
CREATE VIEW report.royalty_statement AS
WITH owner_credit AS (
    SELECT p.pool_id,
           c.owner_id,
           coalesce(sum(c.value) FILTER (WHERE l.royalty_bearing), 0) AS credit,
           coalesce(sum(c.value) FILTER (WHERE NOT l.royalty_bearing), 0) AS unpaid_credit
    FROM gmv.revenue_pool AS p
    -- Per owner and licence, summed by gmv.refresh_credit() from gmv.training_credit_monthly.
    JOIN gmv.owner_credit_monthly AS c
      ON c.space_id = p.space_id AND c.scheme_id = p.scheme_id AND c.period = p.period
    JOIN gmv.license AS l USING (license_id)
    -- Pools scoped to a generator (or run) are split by the ledger (gmv_sql/ledger), per generated image.
    WHERE p.generator_id IS NULL
    GROUP BY p.pool_id, c.owner_id
), exact AS (
    SELECT oc.*,
           o.name AS owner,
           round(p.amount * 100)::bigint AS pool_cents,
           CASE WHEN sum(oc.credit::numeric) OVER pool > 0
                THEN round(p.amount * 100) * oc.credit::numeric / sum(oc.credit::numeric) OVER pool
                ELSE 0 END AS exact_cents,
           oc.credit / nullif(sum(oc.credit) OVER pool, 0) AS share
    FROM owner_credit AS oc
    JOIN gmv.revenue_pool AS p USING (pool_id)
    JOIN gmv.owner AS o USING (owner_id)
    WINDOW pool AS (PARTITION BY oc.pool_id)
), floored AS (
    SELECT e.*,
           floor(e.exact_cents)::bigint AS base_cents,
           e.pool_cents - sum(floor(e.exact_cents)) OVER (PARTITION BY e.pool_id) AS leftover_cents,
           row_number() OVER (PARTITION BY e.pool_id
                              ORDER BY e.exact_cents - floor(e.exact_cents) DESC, e.owner) AS remainder_rank
    FROM exact AS e
)
SELECT to_char(p.period, 'YYYY-MM') AS period,
       sp.name AS space,
       vs.name AS scheme,
       f.owner,
       f.credit,
       f.unpaid_credit,
       coalesce(f.share, 0) AS share,
       ((f.base_cents + CASE WHEN f.credit > 0 AND f.remainder_rank <= f.leftover_cents THEN 1 ELSE 0 END)
           / 100.0)::numeric(18, 2) AS amount,
       p.currency,
       p.amount AS pool_amount
FROM floored AS f
JOIN gmv.revenue_pool AS p USING (pool_id)
JOIN gmv.embedding_space AS sp ON sp.space_id = p.space_id
JOIN gmv.valuation_scheme AS vs ON vs.scheme_id = p.scheme_id;
COMMENT ON VIEW report.royalty_statement IS
    'Per-owner royalty draft for each unscoped revenue pool (month, space, scheme): the pool is split pro rata to credit of royalty-bearing images, in cents that add up exactly to the pool; unpaid_credit is credit under non-royalty-bearing licences (shown, not paid).';
