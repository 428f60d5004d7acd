-- What `gmv demo` does beyond the commands it runs: the rights an operator sets after ingest, and the
-- values it plots (read from the public report views, as any client would).

-- name: royalty_free_licences
UPDATE gmv.license SET royalty_bearing = false WHERE name = ANY(%(names)s)

-- name: opt_out_training_image
UPDATE gmv.training_image SET opted_out = true WHERE sha256 = %(sha256)s RETURNING training_id, uri

-- name: training_values_by_split
-- The membership audit's population (gmv_sql/audit/membership.py): images that can be matched.
SELECT v.attributes ->> 'split' AS split, v.value
FROM report.training_value AS v
JOIN gmv.license AS l ON l.name = v.license
WHERE v.space = %(space)s AND v.scheme = %(scheme)s AND NOT v.opted_out AND NOT l.excluded

-- name: owner_values
SELECT owner, value FROM report.owner_value WHERE space = %(space)s AND scheme = %(scheme)s

-- name: near_copy_distance
SELECT near_copy_distance FROM gmv.embedding_space WHERE name = %(space)s
