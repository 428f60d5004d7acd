-- Valuation (GMValuator, arXiv 2304.10701): weights per match, credit per training image.
-- Applied by a migration that freezes a copy of this file; edit here, then add a migration.

-- The weight of one match before normalising (DESIGN.md, "The maths"): one definition for the views and
-- for `gmv audit membership --sweep`. temperature: the scheme's own (softmax_distance) or the space's
-- calibrated one (softmax_calibrated, gmv.scheme_calibration).
CREATE FUNCTION gmv.raw_match_weight(
    formula text, k integer, rank integer, distance double precision, min_distance double precision,
    temperature double precision
) RETURNS double precision
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN CASE formula
    WHEN 'rank_linear' THEN (k - rank + 1)::double precision
    WHEN 'reciprocal_rank' THEN 1.0::double precision / rank
    -- Subtract the smallest distance so the nearest match has weight 1 and the sum never underflows;
    -- least(.., 700) keeps exp() inside double precision (PostgreSQL raises on underflow instead of
    -- returning 0).
    WHEN 'softmax_distance' THEN exp(-least((distance - min_distance) / temperature, 700.0))
    WHEN 'softmax_calibrated' THEN exp(-least((distance - min_distance) / temperature, 700.0))
    ELSE 1.0::double precision
END;
COMMENT ON FUNCTION gmv.raw_match_weight(text, integer, integer, double precision, double precision, double precision) IS
    'Weight of a match before normalising per generated image: rank_linear k - r + 1, reciprocal_rank 1 / r, softmax exp(-(d - d_min) / T), uniform 1.';

CREATE VIEW gmv.match_weight AS
WITH schemes AS (
    -- Each scheme with the temperature it has in each space; a softmax_calibrated scheme without a
    -- temperature in a space is left out there (gmv value refresh calibrates it first).
    SELECT sp.space_id, s.scheme_id, s.formula, coalesce(c.temperature, s.temperature) AS temperature
    FROM gmv.embedding_space AS sp
    CROSS JOIN gmv.valuation_scheme AS s
    LEFT JOIN gmv.scheme_calibration AS c ON c.space_id = sp.space_id AND c.scheme_id = s.scheme_id
    WHERE s.formula <> 'softmax_calibrated' OR c.temperature IS NOT NULL
), scored AS (
    SELECT m.space_id,
           s.scheme_id,
           m.generated_id,
           m.rank,
           m.training_id,
           m.distance,
           g.quality,
           -- UTC months: the period must not depend on the TimeZone of whoever refreshes.
           date_trunc('month', g.created_at AT TIME ZONE 'UTC')::date AS period,
           gmv.raw_match_weight(s.formula, m.k, m.rank, m.distance, min(m.distance) OVER per_image,
                                s.temperature) AS raw_weight
    FROM gmv.match AS m
    JOIN gmv.generated_image AS g USING (generated_id)
    JOIN schemes AS s USING (space_id)
    -- period is a function of generated_id, so partitioning by it changes nothing; it lets a filter on
    -- space and period (the slices gmv.refresh_credit() recomputes) reach the scans below the windows.
    WINDOW per_image AS (PARTITION BY m.space_id, s.scheme_id, date_trunc('month', g.created_at AT TIME ZONE 'UTC')::date,
                                      m.generated_id)
)
SELECT space_id,
       scheme_id,
       generated_id,
       rank,
       training_id,
       distance,
       quality,
       period,
       raw_weight / sum(raw_weight) OVER (PARTITION BY space_id, scheme_id, period, generated_id) AS weight
FROM scored;
COMMENT ON VIEW gmv.match_weight IS
    'Each match with its normalised weight w (sums to 1 per generated image and scheme); credit = quality * weight.';

-- The credit tables (gmv.training_credit, gmv.training_credit_monthly, gmv.owner_credit…) are kept by
-- gmv.refresh_credit() in 12_credit.sql.


