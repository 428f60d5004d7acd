-- Audits (gmv_sql.audit): values of listed training images.

-- name: training_values
-- Every training image with its value in the space and scheme (NULL when it has none).
SELECT t.training_id, t.sha256, t.uri, v.value
FROM gmv.training_image AS t
LEFT JOIN report.training_value AS v
       ON v.training_id = t.training_id AND v.space = %(space)s AND v.scheme = %(scheme)s
