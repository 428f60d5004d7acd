-- Embedding spaces (gmv_sql.spaces): the rows of gmv.embedding_space, in EmbeddingSpace field order.

-- name: list
SELECT space_id, name, model, weights_sha256, preprocessing, dim, storage, distance, hnsw_m,
       hnsw_ef_construction, match_k, near_copy_distance, near_copy_source, index_kind, index_precision,
       ivfflat_lists, index_rows, index_built_at
FROM gmv.embedding_space
ORDER BY space_id

-- name: by_name
SELECT space_id, name, model, weights_sha256, preprocessing, dim, storage, distance, hnsw_m,
       hnsw_ef_construction, match_k, near_copy_distance, near_copy_source, index_kind, index_precision,
       ivfflat_lists, index_rows, index_built_at
FROM gmv.embedding_space
WHERE name = %(name)s

-- name: create
-- A new space takes the default scheme of the moment (spaces that existed before keep theirs).
INSERT INTO gmv.embedding_space (name, model, weights_sha256, preprocessing, dim, storage, distance,
                                 hnsw_m, hnsw_ef_construction, default_scheme_id, index_precision)
VALUES (%(name)s, %(model)s, %(weights_sha256)s, %(preprocessing)s, %(dim)s, %(storage)s, %(distance)s,
        %(hnsw_m)s, %(hnsw_ef_construction)s, (SELECT scheme_id FROM gmv.valuation_scheme WHERE is_default),
        %(index_precision)s)
RETURNING space_id, name, model, weights_sha256, preprocessing, dim, storage, distance, hnsw_m,
          hnsw_ef_construction, match_k, near_copy_distance, near_copy_source, index_kind, index_precision,
          ivfflat_lists, index_rows, index_built_at

-- name: set_match_k
UPDATE gmv.embedding_space SET match_k = %(k)s WHERE space_id = %(space_id)s

-- name: set_index
-- The space's index as just built (gmv_sql.index.builder): kind, precision, parameters, rows it saw.
UPDATE gmv.embedding_space
SET index_kind = %(index_kind)s, index_precision = %(index_precision)s, hnsw_m = %(hnsw_m)s,
    hnsw_ef_construction = %(hnsw_ef_construction)s, ivfflat_lists = %(ivfflat_lists)s,
    index_rows = %(index_rows)s, index_built_at = now()
WHERE space_id = %(space_id)s
RETURNING space_id, name, model, weights_sha256, preprocessing, dim, storage, distance, hnsw_m,
          hnsw_ef_construction, match_k, near_copy_distance, near_copy_source, index_kind, index_precision,
          ivfflat_lists, index_rows, index_built_at

-- name: set_preprocessing
UPDATE gmv.embedding_space SET preprocessing = %(preprocessing)s WHERE space_id = %(space_id)s
RETURNING space_id, name, model, weights_sha256, preprocessing, dim, storage, distance, hnsw_m,
          hnsw_ef_construction, match_k, near_copy_distance, near_copy_source, index_kind, index_precision,
          ivfflat_lists, index_rows, index_built_at
