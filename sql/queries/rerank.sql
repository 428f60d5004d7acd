-- Re-ranking (gmv match --space A --rerank-space B --candidates N): N candidates from A's index,
-- the final top-k by B's distance, in one SQL statement per batch. {training}/{generated}/{op} are
-- space A's (gmv_sql.spaces.render), {rerank_training}/{rerank_generated}/{rerank_op} space B's.

-- name: top_k
-- The N nearest eligible training images of generated row g in A (the LATERAL LIMIT walks A's HNSW
-- index), then those candidates ordered by B's distance to g's B vector, the first k kept.
CROSS JOIN LATERAL (
    SELECT c.training_id,
           c.distance,
           row_number() OVER (ORDER BY c.distance, c.training_id) AS rank
    FROM (
        SELECT r.training_id, r.embedding {rerank_op} gb.embedding AS distance
        FROM (
            SELECT e.training_id
            FROM {training} AS e
            WHERE e.training_id <> ALL (%(ineligible)s::bigint[])
            ORDER BY {e_key} {op} {g_key}  -- the index's expression (gmv_sql.match.rerank.render)
            LIMIT %(candidates)s
        ) AS candidate
        JOIN {rerank_training} AS r USING (training_id)
        JOIN {rerank_generated} AS gb ON gb.generated_id = g.generated_id
        ORDER BY r.embedding {rerank_op} gb.embedding, r.training_id
        LIMIT %(k)s
    ) AS c
) AS nn

-- name: knn_insert
-- As match.sql's knn_insert, recording the re-ranking space and the number of candidates.
INSERT INTO gmv.match (space_id, generated_id, rank, training_id, distance, k, exact, run_id, rerank_space_id,
                       candidates)
SELECT %(space_id)s, g.generated_id, nn.rank, nn.training_id, nn.distance, %(k)s, %(exact)s, %(run_id)s,
       %(rerank_space_id)s, %(candidates)s
FROM {generated} AS g
{top_k}
WHERE g.generated_id BETWEEN %(lo)s AND %(hi)s
  AND g.generated_id = ANY (%(ids)s::bigint[])  -- a batch may skip ids of the range (dated opt-outs)
  AND NOT EXISTS (
      SELECT 1 FROM gmv.match AS m WHERE m.space_id = %(space_id)s AND m.generated_id = g.generated_id
  )
RETURNING generated_id

-- name: knn_select
SELECT g.generated_id, nn.rank, nn.training_id, nn.distance
FROM {generated} AS g
{top_k}
WHERE g.generated_id = ANY (%(ids)s::bigint[])
ORDER BY g.generated_id, nn.rank

-- name: pending_generated
-- Generated images with a vector in both spaces and no match rows in A yet.
SELECT g.generated_id
FROM {generated} AS g
JOIN {rerank_generated} AS gb USING (generated_id)
WHERE NOT EXISTS (
    SELECT 1 FROM gmv.match AS m WHERE m.space_id = %(space_id)s AND m.generated_id = g.generated_id
)
ORDER BY g.generated_id

-- name: count_training_without_rerank_vector
SELECT count(*)
FROM {training} AS e
WHERE NOT EXISTS (SELECT 1 FROM {rerank_training} AS r WHERE r.training_id = e.training_id)

-- name: count_generated_without_rerank_vector
SELECT count(*)
FROM {generated} AS g
WHERE NOT EXISTS (SELECT 1 FROM {rerank_generated} AS r WHERE r.generated_id = g.generated_id)

-- name: stored_setting
-- How the space's existing matches were made: (rerank space, candidates), one row per setting.
SELECT DISTINCT m.rerank_space_id, m.candidates, sp.name
FROM gmv.match AS m
LEFT JOIN gmv.embedding_space AS sp ON sp.space_id = m.rerank_space_id
WHERE m.space_id = %(space_id)s
