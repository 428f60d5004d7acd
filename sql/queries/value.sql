-- Valuation: keeping the credit tables of sql/derived/12_credit.sql current.

-- name: refresh_credit
-- Recomputes the slices marked in gmv.credit_dirty (readers keep the old rows until commit).
SELECT slices, full_recompute, image_counts, credit_rows FROM gmv.refresh_credit()

-- name: pending_matches
-- Whether everything is marked, all match rows, and the match rows of the marked (space, month) slices.
WITH marks AS (SELECT DISTINCT space_id, period FROM gmv.credit_dirty WHERE kind = 'credit')
SELECT EXISTS (SELECT FROM marks WHERE space_id IS NULL AND period IS NULL) AS everything,
       (SELECT count(*) FROM gmv.match) AS all_matches,
       (SELECT count(*)
        FROM gmv.match AS m
        JOIN gmv.generated_image AS g USING (generated_id)
        WHERE EXISTS (SELECT FROM marks AS d
                      WHERE (d.space_id IS NULL OR d.space_id = m.space_id)
                        AND (d.period IS NULL OR d.period = gmv.credit_period(g.created_at)))) AS matches

-- name: credit_marks
-- Slices of the space marked since the last refresh (a NULL space marks every space).
SELECT count(*) FROM gmv.credit_dirty
WHERE kind = 'credit' AND (space_id IS NULL OR space_id = %(space_id)s)

-- name: image_marks
-- Training images added or removed since the last refresh (the per-owner counts are behind).
SELECT EXISTS (SELECT FROM gmv.credit_dirty WHERE kind = 'images')

-- name: credit_summary
-- What the refresh produced, per space and scheme: images credited and total credit (= sum of q_j).
SELECT sp.name AS space, vs.name AS scheme, count(*) FILTER (WHERE c.n_matches > 0) AS training_images,
       sum(c.value) AS total_credit
FROM gmv.training_credit AS c
JOIN gmv.embedding_space AS sp USING (space_id)
JOIN gmv.valuation_scheme AS vs USING (scheme_id)
GROUP BY sp.name, vs.name
ORDER BY sp.name, vs.name

-- name: refresh_settings
-- For the refresh transaction: JIT only costs time on these plans.
SELECT set_config('jit', 'off', true)
