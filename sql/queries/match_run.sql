-- Match runs (gmv_sql/match/runs.py): one gmv.match_run row per gmv match, written at its start and
-- completed at its end.

-- name: start
INSERT INTO gmv.match_run (space_id, k, exact, index_kind, index_params, ef_search, rematch,
                           gmv_sql_version, pgvector_version)
VALUES (%(space_id)s, %(k)s, %(exact)s, %(index_kind)s, %(index_params)s, %(ef_search)s, %(rematch)s,
        %(gmv_sql_version)s, (SELECT extversion FROM pg_extension WHERE extname = 'vector'))
RETURNING run_id

-- name: finish
UPDATE gmv.match_run
SET exact = %(exact)s,
    index_kind = CASE WHEN %(exact)s THEN NULL ELSE index_kind END,
    ef_search = %(ef_search)s,
    probes = %(probes)s,
    -- gmv match --target-recall: how the setting was chosen (target, sample recall, sample size)
    index_params = CASE WHEN %(calibration)s::jsonb IS NULL THEN index_params
                        ELSE index_params || jsonb_build_object('calibration', %(calibration)s::jsonb) END,
    images_matched = %(images_matched)s,
    rows_written = %(rows_written)s,
    recall_at_k = %(recall_at_k)s,
    recall_sample = %(recall_sample)s,
    recall_status = %(recall_status)s,
    finished_at = clock_timestamp()
WHERE run_id = %(run_id)s

-- name: by_id
SELECT run_id, space_id, k, exact, index_kind, index_params, ef_search, probes, rematch, recall_at_k,
       recall_sample, recall_status, images_matched, rows_written, started_at, finished_at,
       gmv_sql_version, postgres_version, pgvector_version
FROM gmv.match_run
WHERE run_id = %(run_id)s
