-- What `gmv demo` reads beyond the commands it runs: the values it plots (from the public report views,
-- as any client would).

-- name: training_values_by_split
-- The membership audit's population (gmv_sql/audit/membership.py): images that can be matched.
SELECT v.attributes ->> 'split' AS split, v.value
FROM report.training_value AS v
JOIN gmv.license AS l ON l.name = v.license
WHERE v.space = %(space)s AND v.scheme = %(scheme)s AND NOT v.opted_out AND NOT l.excluded

-- name: owner_values
SELECT owner, value FROM report.owner_value WHERE space = %(space)s AND scheme = %(scheme)s

-- name: latest_statement
SELECT max(statement_id) FROM report.statement WHERE period = %(period)s

-- name: top_owner
SELECT owner FROM report.statement_line WHERE statement_id = %(statement_id)s ORDER BY amount DESC, owner LIMIT 1

-- name: near_copy_distance
SELECT near_copy_distance FROM gmv.embedding_space WHERE name = %(space)s
