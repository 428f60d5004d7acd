-- Matching: the k nearest eligible training images of each generated image, in SQL.
-- {training}/{generated} are a space's vector tables and {op} its distance operator, filled in by
-- gmv_sql.spaces.render from fixed identifiers, never from user text. Everything else is a parameter.
-- {top_k} is the block top_k below (gmv_sql.match.matcher.knn_sql): knn_insert and knn_select share it.

-- name: top_k
-- The k nearest eligible training images of generated row g: a LATERAL subquery with the LIMIT inside,
-- so PostgreSQL walks the index once per generated image (hnsw.* / ivfflat.* settings set by the
-- caller for the transaction). {e_key}/{g_key} are the indexed expression of e and g (e.embedding, or
-- (e.embedding::halfvec(dim)) for a half-precision index; the stored columns for exact search), so the
-- index serves the ORDER BY; the distance stored and the ranks come from the full-precision vectors.
CROSS JOIN LATERAL (
    SELECT c.training_id,
           c.distance,
           row_number() OVER (ORDER BY c.distance, c.training_id) AS rank
    FROM (
        SELECT e.training_id, e.embedding {op} g.embedding AS distance
        FROM {training} AS e
        WHERE e.training_id <> ALL (%(ineligible)s::bigint[])
        ORDER BY {e_key} {op} {g_key}
        LIMIT %(k)s
    ) AS c
) AS nn

-- name: ineligible_training
-- Training images that must never be matched: opted out, or under an excluded licence.
SELECT t.training_id
FROM gmv.training_image AS t
JOIN gmv.license AS l USING (license_id)
WHERE t.opted_out OR l.excluded
ORDER BY t.training_id

-- name: count_training_vectors
SELECT count(*) FROM {training}

-- name: pending_generated
-- Generated images with a vector in this space and no match rows yet.
SELECT g.generated_id
FROM {generated} AS g
WHERE NOT EXISTS (
    SELECT 1 FROM gmv.match AS m WHERE m.space_id = %(space_id)s AND m.generated_id = g.generated_id
)
ORDER BY g.generated_id

-- name: count_without_vector
SELECT count(*)
FROM gmv.generated_image AS gi
WHERE NOT EXISTS (SELECT 1 FROM {generated} AS g WHERE g.generated_id = gi.generated_id)

-- name: unmatch_ineligible
-- Matches made before a training image was opted out (or its licence excluded) are dropped for the
-- whole generated image, so that the next run matches it again among eligible images only.
DELETE FROM gmv.match AS m
WHERE m.space_id = %(space_id)s
  AND m.generated_id IN (
      SELECT x.generated_id
      FROM gmv.match AS x
      JOIN gmv.training_image AS t USING (training_id)
      JOIN gmv.license AS l USING (license_id)
      WHERE x.space_id = %(space_id)s AND (t.opted_out OR l.excluded)
  )
RETURNING m.generated_id

-- name: knn_insert
-- One statement per batch: generated ids in [lo, hi] that have no match rows yet.
INSERT INTO gmv.match (space_id, generated_id, rank, training_id, distance, k, exact)
SELECT %(space_id)s, g.generated_id, nn.rank, nn.training_id, nn.distance, %(k)s, %(exact)s
FROM {generated} AS g
{top_k}
WHERE g.generated_id BETWEEN %(lo)s AND %(hi)s
  AND NOT EXISTS (
      SELECT 1 FROM gmv.match AS m WHERE m.space_id = %(space_id)s AND m.generated_id = g.generated_id
  )
RETURNING generated_id

-- name: knn_select
-- The same top-k without writing (recall checks, audits): generated ids given as an array.
SELECT g.generated_id, nn.rank, nn.training_id, nn.distance
FROM {generated} AS g
{top_k}
WHERE g.generated_id = ANY (%(ids)s::bigint[])
ORDER BY g.generated_id, nn.rank

-- name: delete_generated_matches
DELETE FROM gmv.match WHERE space_id = %(space_id)s AND generated_id = ANY (%(ids)s::bigint[])

-- name: delete_space_matches
DELETE FROM gmv.match WHERE space_id = %(space_id)s

-- name: sample_generated
-- A reproducible sample of generated images that have a vector in this space.
SELECT generated_id FROM {generated} ORDER BY md5(generated_id::text || %(salt)s) LIMIT %(n)s

-- name: stored_k
-- The k of a space matched before embedding_space.match_k existed (or by hand).
SELECT DISTINCT k FROM gmv.match WHERE space_id = %(space_id)s

-- name: set_local
-- SET LOCAL (this transaction only) several settings in one round trip: names[i] = values[i].
SELECT set_config(s.name, s.value, true)
FROM unnest(%(names)s::text[], %(values)s::text[]) AS s(name, value)
