-- Report commands: thin reads of the report.* views (sql/derived/20_report.sql) plus revenue pools.

-- name: scheme_by_name
SELECT scheme_id, name FROM gmv.valuation_scheme WHERE name = %(name)s

-- name: default_scheme
-- The space's default scheme, else the global default (a space created before it had one).
SELECT scheme_id, name
FROM gmv.valuation_scheme
WHERE scheme_id = coalesce(
    (SELECT default_scheme_id FROM gmv.embedding_space WHERE space_id = %(space_id)s),
    (SELECT scheme_id FROM gmv.valuation_scheme WHERE is_default))

-- name: scheme_names
SELECT name FROM gmv.valuation_scheme ORDER BY scheme_id

-- name: credit_lag
-- Match rows of the space now, and match rows the credit views counted at their last refresh.
SELECT (SELECT count(*) FROM gmv.match WHERE space_id = %(space_id)s) AS matches,
       (SELECT coalesce(sum(n_matches), 0) FROM gmv.training_credit
        WHERE space_id = %(space_id)s AND scheme_id = %(scheme_id)s) AS credited

-- name: upsert_pool
INSERT INTO gmv.revenue_pool (period, amount, currency, space_id, scheme_id)
VALUES (%(period)s, %(amount)s, %(currency)s, %(space_id)s, %(scheme_id)s)
ON CONFLICT (period, space_id, scheme_id, generator_id, run_id)  -- unscoped: both NULL (NULLS NOT DISTINCT)
DO UPDATE SET amount = EXCLUDED.amount, currency = EXCLUDED.currency, created_at = now()

-- name: royalty_statement
SELECT period, owner, credit, unpaid_credit, share, amount, currency
FROM report.royalty_statement
WHERE period = %(period)s AND space = %(space)s AND scheme = %(scheme)s
ORDER BY amount DESC, credit DESC, owner

-- name: owners
SELECT owner, value, share, n_images, n_training_images
FROM report.owner_value
WHERE space = %(space)s AND scheme = %(scheme)s
ORDER BY value DESC, owner

-- name: top
SELECT training_id, uri, owner, license, value, n_matches, share
FROM report.training_value
WHERE space = %(space)s AND scheme = %(scheme)s
ORDER BY value DESC, training_id
LIMIT %(limit)s

-- name: generated_known
SELECT generated_id FROM gmv.generated_image WHERE generated_id = ANY (%(ids)s::bigint[])

-- name: evidence
SELECT generated_id, rank, training_id, training_uri, owner, license, distance, weight, credit
FROM report.attribution
WHERE space = %(space)s AND scheme = %(scheme)s AND generated_id = ANY (%(ids)s::bigint[])
ORDER BY generated_id, rank

-- name: ineligible_matches
-- Matches kept from before a training image was opted out or its licence excluded (gmv match re-matches them).
-- A dated opt-out does not cover generated images created before its day: their matches stay.
SELECT count(*)
FROM gmv.match AS m
JOIN gmv.training_image AS t USING (training_id)
JOIN gmv.license AS l USING (license_id)
JOIN gmv.generated_image AS g ON g.generated_id = m.generated_id
WHERE m.space_id = %(space_id)s AND (l.excluded OR gmv.opted_out_for(t.opted_out, t.opted_out_from, g.created_at))
