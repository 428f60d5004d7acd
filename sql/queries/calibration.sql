-- Temperatures of softmax_calibrated schemes per embedding space (gmv_sql/value/calibration.py).

-- name: statistics
-- The space's own distance scale, from its stored matches: per generated image d1 (nearest), d2
-- (second nearest) and dk (farthest of its k), then medians and means over the generated images.
WITH per_image AS (
    SELECT generated_id,
           max(k) AS k,
           (array_agg(distance ORDER BY distance))[1] AS d1,
           (array_agg(distance ORDER BY distance))[2] AS d2,
           max(distance) AS dk
    FROM gmv.match
    WHERE space_id = %(space_id)s
    GROUP BY generated_id
)
SELECT count(*) AS n_generated,
       max(k) AS k,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY d1) AS median_d1,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY d2 - d1) AS median_gap2,
       -- sum / count, not avg: avg(float8) also sums squares, which overflows past 1e154.
       sum(d2 - d1) / nullif(count(d2 - d1), 0) AS mean_gap2,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY dk - d1) AS median_gapk,
       sum(dk - d1) / nullif(count(dk - d1), 0) AS mean_gapk
FROM per_image

-- name: calibrated_schemes
-- Schemes whose temperature is calibrated per space (optionally one, by name).
SELECT scheme_id, name
FROM gmv.valuation_scheme
WHERE formula = 'softmax_calibrated' AND (%(name)s::text IS NULL OR name = %(name)s)
ORDER BY scheme_id

-- name: scheme
SELECT scheme_id, name, formula FROM gmv.valuation_scheme WHERE name = %(name)s

-- name: scheme_names
SELECT name FROM gmv.valuation_scheme ORDER BY scheme_id

-- name: upsert
INSERT INTO gmv.scheme_calibration (space_id, scheme_id, temperature, rule, statistics, set_by)
VALUES (%(space_id)s, %(scheme_id)s, %(temperature)s, %(rule)s, %(statistics)s, %(set_by)s)
ON CONFLICT (space_id, scheme_id) DO UPDATE
SET temperature = EXCLUDED.temperature,
    rule = EXCLUDED.rule,
    statistics = EXCLUDED.statistics,
    set_by = EXCLUDED.set_by,
    calibrated_at = now()

-- name: insert_missing
-- Calibration of a space that has none yet (a concurrent calibration that got there first wins).
INSERT INTO gmv.scheme_calibration (space_id, scheme_id, temperature, rule, statistics, set_by)
VALUES (%(space_id)s, %(scheme_id)s, %(temperature)s, %(rule)s, %(statistics)s, 'calibrated')
ON CONFLICT (space_id, scheme_id) DO NOTHING

-- name: uncalibrated
-- (space, scheme) pairs of spaces with matches whose calibrated schemes have no temperature yet.
SELECT sp.space_id, sp.name, vs.scheme_id, vs.name
FROM gmv.embedding_space AS sp
CROSS JOIN gmv.valuation_scheme AS vs
WHERE vs.formula = 'softmax_calibrated'
  AND (%(space_id)s::integer IS NULL OR sp.space_id = %(space_id)s)
  AND EXISTS (SELECT FROM gmv.match AS m WHERE m.space_id = sp.space_id)
  AND NOT EXISTS (SELECT FROM gmv.scheme_calibration AS c
                  WHERE c.space_id = sp.space_id AND c.scheme_id = vs.scheme_id)
ORDER BY sp.space_id, vs.scheme_id

-- name: settings
-- What report.scheme_setting shows for one space (or all).
SELECT space, scheme, formula, temperature, temperature_set_by, temperature_rule, is_space_default
FROM report.scheme_setting
WHERE %(space)s::text IS NULL OR space = %(space)s
ORDER BY space, scheme

-- name: set_space_default
UPDATE gmv.embedding_space SET default_scheme_id = %(scheme_id)s WHERE space_id = %(space_id)s

-- name: pin_space_defaults
-- Before the global default changes: spaces that follow it keep the scheme they have now.
UPDATE gmv.embedding_space
SET default_scheme_id = (SELECT scheme_id FROM gmv.valuation_scheme WHERE is_default)
WHERE default_scheme_id IS NULL

-- name: clear_global_default
UPDATE gmv.valuation_scheme SET is_default = false WHERE is_default

-- name: set_global_default
UPDATE gmv.valuation_scheme SET is_default = true WHERE scheme_id = %(scheme_id)s
