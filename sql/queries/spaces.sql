-- Embedding spaces (gmv_sql.spaces): the rows of gmv.embedding_space, in EmbeddingSpace field order.

-- name: list
SELECT space_id, name, model, weights_sha256, preprocessing, dim, storage, distance, hnsw_m,
       hnsw_ef_construction, match_k, near_copy_distance, near_copy_source
FROM gmv.embedding_space
ORDER BY space_id

-- name: by_name
SELECT space_id, name, model, weights_sha256, preprocessing, dim, storage, distance, hnsw_m,
       hnsw_ef_construction, match_k, near_copy_distance, near_copy_source
FROM gmv.embedding_space
WHERE name = %(name)s

-- name: create
-- A new space takes the default scheme of the moment (spaces that existed before keep theirs).
INSERT INTO gmv.embedding_space (name, model, weights_sha256, preprocessing, dim, storage, distance,
                                 hnsw_m, hnsw_ef_construction, default_scheme_id)
VALUES (%(name)s, %(model)s, %(weights_sha256)s, %(preprocessing)s, %(dim)s, %(storage)s, %(distance)s,
        %(hnsw_m)s, %(hnsw_ef_construction)s, (SELECT scheme_id FROM gmv.valuation_scheme WHERE is_default))
RETURNING space_id, name, model, weights_sha256, preprocessing, dim, storage, distance, hnsw_m,
          hnsw_ef_construction, match_k, near_copy_distance, near_copy_source

-- name: set_match_k
UPDATE gmv.embedding_space SET match_k = %(k)s WHERE space_id = %(space_id)s
