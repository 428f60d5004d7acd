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
-- Training images that must never be matched: opted out (without a date), or under an excluded licence.
SELECT t.training_id
FROM gmv.training_image AS t
JOIN gmv.license AS l USING (license_id)
WHERE (t.opted_out AND t.opted_out_from IS NULL) OR l.excluded
ORDER BY t.training_id

-- name: dated_opt_outs
-- Training images opted out from a day on (licence not excluded): matched only for generated images
-- created before that day (UTC). One row per day: gmv_sql.match.eligibility groups pending images by it.
SELECT t.opted_out_from, array_agg(t.training_id ORDER BY t.training_id)
FROM gmv.training_image AS t
JOIN gmv.license AS l USING (license_id)
WHERE t.opted_out AND t.opted_out_from IS NOT NULL AND NOT l.excluded
GROUP BY t.opted_out_from
ORDER BY t.opted_out_from

-- name: pending_created_at
-- When these pending generated images were created (UTC), to pick the opt-outs that cover them.
SELECT generated_id, created_at AT TIME ZONE 'UTC'
FROM gmv.generated_image
WHERE generated_id = ANY (%(ids)s::bigint[])

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
-- whole generated image, so that the next run matches it again among eligible images only. A dated
-- opt-out covers only generated images created on or after its day (gmv.opted_out_for): earlier
-- ones keep their matches.
DELETE FROM gmv.match AS m
WHERE m.space_id = %(space_id)s
  AND m.generated_id IN (
      SELECT x.generated_id
      FROM gmv.match AS x
      JOIN gmv.training_image AS t USING (training_id)
      JOIN gmv.license AS l USING (license_id)
      JOIN gmv.generated_image AS g ON g.generated_id = x.generated_id
      WHERE x.space_id = %(space_id)s
        AND (l.excluded OR gmv.opted_out_for(t.opted_out, t.opted_out_from, g.created_at))
  )
RETURNING m.generated_id

-- name: knn_insert
-- One statement per batch: generated ids in [lo, hi] that have no match rows yet.
INSERT INTO gmv.match (space_id, generated_id, rank, training_id, distance, k, exact, run_id)
SELECT %(space_id)s, g.generated_id, nn.rank, nn.training_id, nn.distance, %(k)s, %(exact)s, %(run_id)s
FROM {generated} AS g
{top_k}
WHERE g.generated_id BETWEEN %(lo)s AND %(hi)s
  AND g.generated_id = ANY (%(ids)s::bigint[])  -- a batch may skip ids of the range (dated opt-outs)
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

-- name: late_training_exists
-- Whether any training vector of the space is missing from gmv.match_coverage (embedded after the
-- matches were made, opted in again, licence included again, or re-embedded).
SELECT EXISTS (
    SELECT 1 FROM {training} AS e
    WHERE NOT EXISTS (
        SELECT 1 FROM gmv.match_coverage AS c
        WHERE c.space_id = %(space_id)s AND c.training_id = e.training_id AND c.embedded_at = e.embedded_at
    )
)

-- name: unmatch_late
-- Late training vectors compete (gmv_sql/match/late.py): every matched generated image that one of
-- them would enter is unmatched, so the run matches it again among all vectors; the late vectors are
-- then recorded as covered. One statement, hence one snapshot: a vector committed meanwhile is
-- neither compared nor recorded, and competes at the next run. A late vector enters generated image
-- g's top-k when it may be matched to g (licence not excluded, no opt-out covering g) and either g
-- has fewer than k matches or (distance, training_id) is below g's k-th match in the order the
-- matcher ranks by. An exact scan of late vectors x matched images: no index can miss one.
WITH late AS MATERIALIZED (
    SELECT e.training_id, e.embedding, e.embedded_at, t.opted_out, t.opted_out_from, l.excluded
    FROM {training} AS e
    JOIN gmv.training_image AS t USING (training_id)
    JOIN gmv.license AS l USING (license_id)
    WHERE NOT EXISTS (
        SELECT 1 FROM gmv.match_coverage AS c
        WHERE c.space_id = %(space_id)s AND c.training_id = e.training_id AND c.embedded_at = e.embedded_at
    )
), covered AS (
    INSERT INTO gmv.match_coverage (space_id, training_id, embedded_at)
    SELECT %(space_id)s, training_id, embedded_at FROM late
    ON CONFLICT (space_id, training_id) DO UPDATE SET embedded_at = EXCLUDED.embedded_at
), kth AS (
    SELECT m.generated_id,
           count(*) AS n,
           max(m.k) AS k,
           (array_agg(m.distance ORDER BY m.rank DESC))[1] AS distance,
           (array_agg(m.training_id ORDER BY m.rank DESC))[1] AS training_id
    FROM gmv.match AS m
    WHERE m.space_id = %(space_id)s
    GROUP BY m.generated_id
), stale AS (
    SELECT kth.generated_id
    FROM kth
    JOIN {generated} AS g ON g.generated_id = kth.generated_id
    JOIN gmv.generated_image AS gi ON gi.generated_id = kth.generated_id
    WHERE EXISTS (
        SELECT 1
        FROM late AS x
        WHERE NOT x.excluded
          AND NOT gmv.opted_out_for(x.opted_out, x.opted_out_from, gi.created_at)
          AND (kth.n < kth.k OR (x.embedding {op} g.embedding, x.training_id) < (kth.distance, kth.training_id))
          AND NOT EXISTS (  -- already among g's matches: it has competed
              SELECT 1 FROM gmv.match AS m
              WHERE m.space_id = %(space_id)s AND m.generated_id = kth.generated_id AND m.training_id = x.training_id
          )
    )
)
DELETE FROM gmv.match AS m
USING stale
WHERE m.space_id = %(space_id)s AND m.generated_id = stale.generated_id
RETURNING m.generated_id

-- name: exact_bounded
-- Exact top-k of several generated images in one pass over the training vectors (gmv_sql/match/exact.py):
-- each eligible training vector is compared with every image of the chunk while it is in cache, and
-- only rows within the image's bound (the k-th distance of an approximate top-k of eligible vectors,
-- which no exact k-th neighbour exceeds) come back; the caller keeps the k nearest of each image.
WITH s AS MATERIALIZED (
    SELECT g.generated_id, g.embedding, b.bound
    FROM unnest(%(ids)s::bigint[], %(bounds)s::float8[]) AS b(generated_id, bound)
    JOIN {generated} AS g USING (generated_id)
)
SELECT s.generated_id, e.training_id, e.embedding {op} s.embedding AS distance
FROM {training} AS e
CROSS JOIN s
WHERE e.training_id <> ALL (%(ineligible)s::bigint[])
  AND (e.embedding {op} s.embedding) <= s.bound
