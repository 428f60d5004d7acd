-- Attribution quality (gmv_sql.quality): near-copy calibration, consistency audit, quality weights.
-- {training}, {op}: a space's vector table and distance operator (gmv_sql.spaces.render).

-- name: training_nearest_other
-- The distance from a reproducible sample of training images to their nearest OTHER training image,
-- through the space's HNSW index (hnsw.ef_search set by the caller).
SELECT nn.distance
FROM (
    SELECT training_id, embedding FROM {training} ORDER BY md5(training_id::text || 'gmv-near-copy') LIMIT %(n)s
) AS s
CROSS JOIN LATERAL (
    SELECT e.embedding {op} s.embedding AS distance
    FROM {training} AS e
    WHERE e.training_id <> s.training_id
    ORDER BY e.embedding {op} s.embedding
    LIMIT 1
) AS nn

-- name: near_copy_setting
SELECT near_copy_distance, near_copy_source FROM gmv.embedding_space WHERE space_id = %(space_id)s

-- name: calibration_is_stale
-- The threshold's source and how many training vectors it was calibrated on.
SELECT near_copy_source, (near_copy_calibration ->> 'training_vectors')::bigint
FROM gmv.embedding_space WHERE space_id = %(space_id)s

-- name: store_calibration
UPDATE gmv.embedding_space
SET near_copy_distance = %(threshold)s, near_copy_source = 'calibrated', near_copy_calibration = %(calibration)s::jsonb
WHERE space_id = %(space_id)s

-- name: set_near_copy_distance
UPDATE gmv.embedding_space
SET near_copy_distance = %(distance)s, near_copy_source = 'set',
    near_copy_calibration = jsonb_build_object('rule', 'set by hand')
WHERE space_id = %(space_id)s

-- name: near_copies
SELECT space, generated_id, generated_uri, rank, training_id, training_uri, owner, license, distance, threshold,
       threshold_source
FROM report.near_copy
WHERE space = %(space)s
ORDER BY distance, generated_id, rank

-- name: count_near_copies
SELECT count(DISTINCT generated_id) FROM report.near_copy WHERE space = %(space)s

-- name: space_show
SELECT name AS space, model, dim, distance, storage, match_k AS k, near_copy_distance, near_copy_source,
       near_copy_calibration::text AS near_copy_calibration
FROM gmv.embedding_space
WHERE space_id = %(space_id)s

-- name: attribute_presence
-- How many training and generated images carry the attribute (a manifest column).
SELECT (SELECT count(*) FROM gmv.training_image WHERE attributes ? %(attribute)s) AS training,
       (SELECT count(*) FROM gmv.generated_image WHERE attributes ? %(attribute)s) AS generated

-- name: attribute_names
SELECT DISTINCT key
FROM (SELECT jsonb_object_keys(attributes) AS key FROM gmv.training_image
      UNION ALL
      SELECT jsonb_object_keys(attributes) FROM gmv.generated_image) AS k
ORDER BY key

-- name: consistency_by_rank
-- Per rank: matches of generated images that carry the attribute, and how many of their training
-- images carry the same value (values compared as text: 3 and "3" are one value).
SELECT m.rank,
       count(*) AS n,
       count(*) FILTER (WHERE t.attributes ->> %(attribute)s = g.attributes ->> %(attribute)s) AS same
FROM gmv.match AS m
JOIN gmv.generated_image AS g USING (generated_id)
JOIN gmv.training_image AS t USING (training_id)
WHERE m.space_id = %(space_id)s AND g.attributes ? %(attribute)s
GROUP BY m.rank
ORDER BY m.rank

-- name: consistency_chance
-- The chance that a training image drawn at random from those that can be matched (a vector in the
-- space, not opted out, licence not excluded) has the generated image's value, averaged over the
-- matched generated images that carry the attribute.
WITH pool AS (
    SELECT t.attributes ->> %(attribute)s AS value
    FROM {training} AS e
    JOIN gmv.training_image AS t USING (training_id)
    JOIN gmv.license AS l USING (license_id)
    WHERE NOT t.opted_out AND NOT l.excluded
), frequency AS (
    SELECT value, count(*)::double precision / (SELECT count(*) FROM pool) AS p
    FROM pool
    WHERE value IS NOT NULL
    GROUP BY value
)
SELECT coalesce(avg(coalesce(f.p, 0)), 0) AS chance, count(*) AS n_generated
FROM gmv.generated_image AS g
LEFT JOIN frequency AS f ON f.value = g.attributes ->> %(attribute)s
WHERE g.attributes ? %(attribute)s
  AND EXISTS (SELECT 1 FROM gmv.match AS m WHERE m.space_id = %(space_id)s AND m.generated_id = g.generated_id)

-- name: generated_identities
-- Every generated image: how a quality file or a scorer names and finds it.
SELECT generated_id, sha256, uri FROM gmv.generated_image ORDER BY generated_id

-- name: set_quality
-- q_j of GMValuator for many generated images at once (credit = q_j * weight; refresh to see it).
UPDATE gmv.generated_image AS g
SET quality = x.quality
FROM unnest(%(ids)s::bigint[], %(qualities)s::float8[]) AS x(generated_id, quality)
WHERE g.generated_id = x.generated_id

-- name: qualities_of
SELECT generated_id, quality FROM gmv.generated_image WHERE generated_id = ANY (%(ids)s::bigint[])

-- name: count_generated
SELECT count(*) FROM gmv.generated_image
