-- The HTML evidence page (gmv_sql/report/evidence_html.py): reads of the report.* views only.

-- name: matched_generated
SELECT DISTINCT m.generated_id
FROM gmv.match AS m
JOIN gmv.embedding_space AS sp USING (space_id)
WHERE sp.name = %(space)s
ORDER BY m.generated_id

-- name: attribution
SELECT generated_id, generated_uri, generator, run, rank, training_id, training_uri, owner, license, distance, weight
FROM report.attribution
WHERE space = %(space)s AND scheme = %(scheme)s AND generated_id = ANY (%(ids)s::bigint[])
ORDER BY generated_id, rank

-- name: highest_valued
SELECT training_id, uri, owner, license, value, n_matches, opted_out
FROM report.training_value
WHERE space = %(space)s AND scheme = %(scheme)s
ORDER BY value DESC, training_id
LIMIT %(limit)s

-- name: lowest_valued
SELECT training_id, uri, owner, license, value, n_matches, opted_out
FROM report.training_value
WHERE space = %(space)s AND scheme = %(scheme)s
ORDER BY value ASC, training_id
LIMIT %(limit)s

-- name: values_by_split
-- The `split` attribute (a manifest column, e.g. member / non-member) groups the value histogram.
SELECT attributes ->> 'split' AS split, value
FROM report.training_value
WHERE space = %(space)s AND scheme = %(scheme)s

-- name: owner_credit
SELECT owner, value
FROM report.owner_value
WHERE space = %(space)s AND scheme = %(scheme)s
ORDER BY value DESC, owner

-- name: totals
SELECT (SELECT count(*) FROM gmv.training_image) AS n_training,
       (SELECT count(DISTINCT m.generated_id) FROM gmv.match AS m JOIN gmv.embedding_space AS sp USING (space_id)
         WHERE sp.name = %(space)s) AS n_generated,
       (SELECT match_k FROM gmv.embedding_space WHERE name = %(space)s) AS k,
       (SELECT distance FROM gmv.embedding_space WHERE name = %(space)s) AS distance
