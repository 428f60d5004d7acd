-- Valuation (GMValuator, arXiv 2304.10701): weights per match, credit per training image.
-- Applied by a migration that freezes a copy of this file; edit here, then add a migration.

CREATE VIEW gmv.match_weight AS
WITH scored AS (
    SELECT m.space_id,
           s.scheme_id,
           m.generated_id,
           m.rank,
           m.training_id,
           m.distance,
           g.quality,
           -- UTC months: the period must not depend on the TimeZone of whoever refreshes.
           date_trunc('month', g.created_at AT TIME ZONE 'UTC')::date AS period,
           CASE s.formula
               WHEN 'rank_linear' THEN (m.k - m.rank + 1)::double precision
               WHEN 'reciprocal_rank' THEN 1.0::double precision / m.rank
               -- Subtract the smallest distance so the nearest match has weight 1 and the sum never
               -- underflows; least(.., 700) keeps exp() inside double precision (PostgreSQL raises
               -- on underflow instead of returning 0).
               WHEN 'softmax_distance' THEN
                   exp(-least((m.distance - min(m.distance) OVER per_image) / s.temperature, 700.0))
               ELSE 1.0::double precision
           END AS raw_weight
    FROM gmv.match AS m
    JOIN gmv.generated_image AS g USING (generated_id)
    CROSS JOIN gmv.valuation_scheme AS s
    WINDOW per_image AS (PARTITION BY m.space_id, s.scheme_id, m.generated_id)
)
SELECT space_id,
       scheme_id,
       generated_id,
       rank,
       training_id,
       distance,
       quality,
       period,
       raw_weight / sum(raw_weight) OVER (PARTITION BY space_id, scheme_id, generated_id) AS weight
FROM scored;
COMMENT ON VIEW gmv.match_weight IS
    'Each match with its normalised weight w (sums to 1 per generated image and scheme); credit = quality * weight.';

-- vacuum_truncate = false: REFRESH … CONCURRENTLY deletes and inserts rows, autovacuum may then truncate
-- the empty tail pages, and that truncation takes an ACCESS EXCLUSIVE lock for a moment: the one way a
-- report reader could still wait during refreshes. The freed pages are reused by the next refresh.
CREATE MATERIALIZED VIEW gmv.training_credit WITH (vacuum_truncate = false) AS
SELECT space_id,
       scheme_id,
       training_id,
       sum(quality * weight) AS value,
       count(*) AS n_matches
FROM gmv.match_weight
GROUP BY space_id, scheme_id, training_id;
CREATE UNIQUE INDEX training_credit_key ON gmv.training_credit (space_id, scheme_id, training_id);
COMMENT ON MATERIALIZED VIEW gmv.training_credit IS
    'value_i = sum over generated j of q_j * w(rank of i in j), per space and scheme. Refresh with gmv value refresh.';

CREATE MATERIALIZED VIEW gmv.training_credit_monthly WITH (vacuum_truncate = false) AS
SELECT space_id,
       scheme_id,
       period,
       training_id,
       sum(quality * weight) AS value,
       count(*) AS n_matches
FROM gmv.match_weight
GROUP BY space_id, scheme_id, period, training_id;
CREATE UNIQUE INDEX training_credit_monthly_key
    ON gmv.training_credit_monthly (space_id, scheme_id, period, training_id);
COMMENT ON MATERIALIZED VIEW gmv.training_credit_monthly IS
    'Credit per training image for generated images created in each month (period = first day of month).';
