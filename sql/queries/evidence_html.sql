-- The HTML evidence page (gmv_sql/report/evidence_html.py): reads of the report.* views only.

-- name: matched_generated
SELECT DISTINCT m.generated_id
FROM gmv.match AS m
JOIN gmv.embedding_space AS sp USING (space_id)
WHERE sp.name = %(space)s
ORDER BY m.generated_id

-- name: attribution
-- near_copy: the training image is within the space's near-copy distance (report.near_copy).
SELECT a.generated_id, a.generated_uri, a.generator, a.run, a.rank, a.training_id, a.training_uri, a.owner,
       a.license, a.distance, a.weight,
       EXISTS (SELECT 1 FROM report.near_copy AS n
               WHERE n.space = a.space AND n.generated_id = a.generated_id AND n.training_id = a.training_id)
           AS near_copy
FROM report.attribution AS a
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
-- Only images that can be matched (not opted out, licence not excluded): the population the
-- membership audit tests (gmv_sql/audit/membership.py), so both show the same n and means.
SELECT v.attributes ->> 'split' AS split, v.value
FROM report.training_value AS v
JOIN gmv.license AS l ON l.name = v.license
WHERE v.space = %(space)s AND v.scheme = %(scheme)s AND NOT v.opted_out AND NOT l.excluded

-- name: never_matched
-- Training images left out of the histogram: opted out or under an excluded licence.
SELECT count(*) AS n
FROM gmv.training_image AS t
JOIN gmv.license AS l USING (license_id)
WHERE t.opted_out OR l.excluded

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
       (SELECT distance FROM gmv.embedding_space WHERE name = %(space)s) AS distance,
       (SELECT near_copy_distance FROM gmv.embedding_space WHERE name = %(space)s) AS near_copy_distance,
       (SELECT count(DISTINCT generated_id) FROM report.near_copy WHERE space = %(space)s) AS n_near_copies
