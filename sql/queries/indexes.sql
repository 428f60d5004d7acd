-- The training index of an embedding space (gmv_sql.index): size and definition.

-- name: index_size_mb
-- {index} is one of the space's index names (gmv_sql.spaces.index_name); NULL when it does not exist.
SELECT pg_relation_size(to_regclass(format('gmv.%%I', %(index)s::text))) / 1048576.0

-- name: index_definition
SELECT indexdef FROM pg_indexes WHERE schemaname = 'gmv' AND indexname = %(index)s

-- name: copy_training_sample
-- gmv index advise: a reproducible sample of the space's training vectors into the scratch space's table.
INSERT INTO {scratch_training} (training_id, embedding)
SELECT training_id, embedding FROM {training} ORDER BY md5(training_id::text || 'gmv-advise') LIMIT %(n)s

-- name: copy_generated_sample
INSERT INTO {scratch_generated} (generated_id, embedding)
SELECT generated_id, embedding FROM {generated} ORDER BY md5(generated_id::text || 'gmv-advise') LIMIT %(n)s

-- name: scratch_generated_ids
SELECT generated_id FROM {generated} ORDER BY generated_id
