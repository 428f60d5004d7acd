-- Valuation: refreshing the materialized views of sql/derived/10_valuation.sql.
-- CONCURRENTLY keeps them readable during a refresh (each has the unique index this needs).

-- name: refresh_training_credit
REFRESH MATERIALIZED VIEW CONCURRENTLY gmv.training_credit

-- name: refresh_training_credit_monthly
REFRESH MATERIALIZED VIEW CONCURRENTLY gmv.training_credit_monthly

-- name: credit_summary
-- What the refresh produced, per space and scheme: images credited and total credit (= sum of q_j).
SELECT sp.name AS space, vs.name AS scheme, count(*) AS training_images, sum(c.value) AS total_credit
FROM gmv.training_credit AS c
JOIN gmv.embedding_space AS sp USING (space_id)
JOIN gmv.valuation_scheme AS vs USING (scheme_id)
GROUP BY sp.name, vs.name
ORDER BY sp.name, vs.name

-- name: refresh_settings
-- For the refresh transaction: JIT only costs time on these plans.
SELECT set_config('jit', 'off', true)
