-- Audits (gmv_sql.audit): values of listed training images.

-- name: training_values
-- Every training image with its value in the space and scheme (NULL when it has none), and whether
-- it can be matched at all (not opted out, licence not excluded): the audit tests only those.
SELECT t.training_id, t.sha256, t.uri, v.value, NOT t.opted_out AND NOT l.excluded AS matchable
FROM gmv.training_image AS t
JOIN gmv.license AS l USING (license_id)
LEFT JOIN report.training_value AS v
       ON v.training_id = t.training_id AND v.space = %(space)s AND v.scheme = %(scheme)s

-- name: training_identities
-- Every training image's id, sha256 and uri (to resolve member / non-member lists).
SELECT training_id, sha256, uri FROM gmv.training_image

-- name: stored_k
-- The k the space was matched with (NULL: no matches).
SELECT max(k) FROM gmv.match WHERE space_id = %(space_id)s

-- name: space_matched_exactly
SELECT coalesce(bool_and(exact), false) FROM gmv.match WHERE space_id = %(space_id)s

-- name: matched_generated
SELECT DISTINCT generated_id FROM gmv.match WHERE space_id = %(space_id)s ORDER BY generated_id

-- name: sweep_schemes
-- Every scheme with its own temperature and its temperature in the space (softmax_calibrated).
SELECT s.name, s.formula, s.temperature, c.temperature
FROM gmv.valuation_scheme AS s
LEFT JOIN gmv.scheme_calibration AS c ON c.scheme_id = s.scheme_id AND c.space_id = %(space_id)s
ORDER BY s.scheme_id

-- name: shared_attributes
-- Attribute keys present on matched training images and on matched generated images of the space.
SELECT key FROM (
    SELECT DISTINCT jsonb_object_keys(t.attributes) AS key
    FROM gmv.match AS m JOIN gmv.training_image AS t USING (training_id)
    WHERE m.space_id = %(space_id)s
) AS training_keys
INTERSECT
SELECT key FROM (
    SELECT DISTINCT jsonb_object_keys(g.attributes) AS key
    FROM gmv.match AS m JOIN gmv.generated_image AS g USING (generated_id)
    WHERE m.space_id = %(space_id)s
) AS generated_keys

-- name: create_sweep_match
-- Matches at a larger k than stored, for one sweep (dropped at its end; never in gmv.match).
CREATE TEMPORARY TABLE IF NOT EXISTS sweep_match (
    space_id integer, generated_id bigint, rank integer, training_id bigint, distance double precision
) ON COMMIT DROP

-- name: insert_sweep_match
INSERT INTO pg_temp.sweep_match (space_id, generated_id, rank, training_id, distance) VALUES (%s, %s, %s, %s, %s)

-- name: drop_sweep_match
DROP TABLE IF EXISTS pg_temp.sweep_match

-- name: sweep_credit
-- Credit per training image for every sweep setting (scheme formula, temperature, k) at once, the
-- maths of gmv.match_weight: matches of rank <= k, gmv.raw_match_weight, normalised per generated
-- image, times quality. With a class attribute, each row also carries the part of that credit going
-- to training images of the generated image's class, and the part where both images have a class.
WITH setting AS (
    SELECT *
    FROM unnest(%(setting)s::integer[], %(formula)s::text[], %(temperature)s::double precision[], %(k)s::integer[])
        AS s(setting, formula, temperature, k)
), ranked AS (
    SELECT s.setting,
           m.generated_id,
           m.training_id,
           gmv.raw_match_weight(s.formula, s.k, m.rank, m.distance,
                                min(m.distance) OVER (PARTITION BY s.setting, m.generated_id),
                                s.temperature) AS raw_weight
    FROM {matches} AS m
    JOIN setting AS s ON m.rank <= s.k
    WHERE m.space_id = %(space_id)s
), credit AS (
    SELECT r.setting,
           r.training_id,
           g.quality * r.raw_weight / sum(r.raw_weight) OVER (PARTITION BY r.setting, r.generated_id) AS credit,
           t.attributes ->> %(attribute)s::text AS training_class,
           g.attributes ->> %(attribute)s::text AS generated_class
    FROM ranked AS r
    JOIN gmv.generated_image AS g USING (generated_id)
    JOIN gmv.training_image AS t USING (training_id)
)
SELECT setting,
       training_id,
       sum(credit) AS value,
       sum(credit) FILTER (WHERE training_class = generated_class) AS same_class_credit,
       sum(credit) FILTER (WHERE training_class IS NOT NULL AND generated_class IS NOT NULL) AS classified_credit
FROM credit
GROUP BY setting, training_id
