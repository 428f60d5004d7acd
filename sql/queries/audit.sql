-- Audits (gmv_sql.audit): values of listed training images.

-- name: training_values
-- Every training image with its value in the space and scheme (NULL when it has none), and whether
-- it can be matched at all (not opted out, licence not excluded): the audit tests only those.
SELECT t.training_id, t.sha256, t.uri, v.value, NOT t.opted_out AND NOT l.excluded AS matchable
FROM gmv.training_image AS t
JOIN gmv.license AS l USING (license_id)
LEFT JOIN report.training_value AS v
       ON v.training_id = t.training_id AND v.space = %(space)s AND v.scheme = %(scheme)s
