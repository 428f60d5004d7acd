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
