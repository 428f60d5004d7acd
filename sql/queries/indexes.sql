-- The training index of an embedding space (gmv_sql.index): size and definition.

-- name: index_size_mb
-- {index} is one of the space's index names (gmv_sql.spaces.index_name); NULL when it does not exist.
SELECT pg_relation_size(to_regclass(format('gmv.%%I', %(index)s::text))) / 1048576.0

-- name: index_definition
SELECT indexdef FROM pg_indexes WHERE schemaname = 'gmv' AND indexname = %(index)s
