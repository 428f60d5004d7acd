-- What `gmv demo` reads beyond the commands it runs: the values it plots (from the public report views,
-- as any client would).

-- name: training_values_by_split
SELECT attributes ->> 'split' AS split, value
FROM report.training_value
WHERE space = %(space)s AND scheme = %(scheme)s AND NOT opted_out

-- name: owner_values
SELECT owner, value FROM report.owner_value WHERE space = %(space)s AND scheme = %(scheme)s

-- name: latest_statement
SELECT max(statement_id) FROM report.statement WHERE period = %(period)s

-- name: top_owner
SELECT owner FROM report.statement_line WHERE statement_id = %(statement_id)s ORDER BY amount DESC, owner LIMIT 1
