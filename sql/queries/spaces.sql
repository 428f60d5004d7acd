-- Embedding spaces (gmv_sql.spaces): the rows of gmv.embedding_space, in EmbeddingSpace field order.

-- name: list
SELECT space_id, name, model, weights_sha256, preprocessing, dim, storage, distance, hnsw_m,
       hnsw_ef_construction, match_k
FROM gmv.embedding_space
ORDER BY space_id

-- name: by_name
SELECT space_id, name, model, weights_sha256, preprocessing, dim, storage, distance, hnsw_m,
       hnsw_ef_construction, match_k
FROM gmv.embedding_space
WHERE name = %(name)s

-- name: create
INSERT INTO gmv.embedding_space (name, model, weights_sha256, preprocessing, dim, storage, distance,
                                 hnsw_m, hnsw_ef_construction)
VALUES (%(name)s, %(model)s, %(weights_sha256)s, %(preprocessing)s, %(dim)s, %(storage)s, %(distance)s,
        %(hnsw_m)s, %(hnsw_ef_construction)s)
RETURNING space_id, name, model, weights_sha256, preprocessing, dim, storage, distance, hnsw_m,
          hnsw_ef_construction, match_k

-- name: set_match_k
UPDATE gmv.embedding_space SET match_k = %(k)s WHERE space_id = %(space_id)s

-- name: set_preprocessing
UPDATE gmv.embedding_space SET preprocessing = %(preprocessing)s WHERE space_id = %(space_id)s
RETURNING space_id, name, model, weights_sha256, preprocessing, dim, storage, distance, hnsw_m,
          hnsw_ef_construction, match_k
