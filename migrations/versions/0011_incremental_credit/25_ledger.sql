-- The ledger (gmv_sql/ledger): issued statements are frozen, and the report views that show them,
-- the match runs behind them and the embedding spaces. Runs before 30_access.sql, whose grants give
-- gmv_reader every view of schema report.

-- Issued rows are never updated or deleted, whoever asks (the table owner and superusers included):
-- a correction is a new adjustment or reversal statement. Statement-level, so TRUNCATE is refused too.
CREATE FUNCTION gmv.refuse_ledger_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'issued statements never change: % of gmv.% refused', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'integrity_constraint_violation',
              HINT = 'correct a month with an adjustment (gmv report royalties --issue) or withdraw a statement with gmv statement reverse ID';
END
$$;
COMMENT ON FUNCTION gmv.refuse_ledger_change() IS
    'Refuses UPDATE, DELETE and TRUNCATE of issued statements and their lines, credits and match rows.';

CREATE TRIGGER frozen BEFORE UPDATE OR DELETE OR TRUNCATE ON gmv.statement
    FOR EACH STATEMENT EXECUTE FUNCTION gmv.refuse_ledger_change();
CREATE TRIGGER frozen BEFORE UPDATE OR DELETE OR TRUNCATE ON gmv.statement_line
    FOR EACH STATEMENT EXECUTE FUNCTION gmv.refuse_ledger_change();
CREATE TRIGGER frozen BEFORE UPDATE OR DELETE OR TRUNCATE ON gmv.statement_credit
    FOR EACH STATEMENT EXECUTE FUNCTION gmv.refuse_ledger_change();
CREATE TRIGGER frozen BEFORE UPDATE OR DELETE OR TRUNCATE ON gmv.statement_match
    FOR EACH STATEMENT EXECUTE FUNCTION gmv.refuse_ledger_change();

-- Exact row counts of a space's vector tables for report.space. SECURITY DEFINER: the reader may not
-- read gmv's tables, only this count; search_path pinned as SECURITY DEFINER functions must.
CREATE FUNCTION gmv.space_vector_count(kind text, space_id integer) RETURNS bigint
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    vectors regclass := gmv.embedding_table(kind, space_id);
    n bigint;
BEGIN
    IF vectors IS NULL THEN
        RETURN 0;
    END IF;
    EXECUTE format('SELECT count(*) FROM %s', vectors) INTO n;
    RETURN n;
END
$$;
COMMENT ON FUNCTION gmv.space_vector_count(text, integer) IS
    'Rows of gmv.<kind>_embedding_<space_id> (0 when missing), for report.space.';

CREATE VIEW report.space AS
SELECT sp.name AS space,
       sp.model,
       sp.weights_sha256,
       sp.preprocessing,
       sp.dim,
       sp.storage,
       sp.distance,
       sp.index_kind,
       CASE sp.index_kind
           WHEN 'ivfflat' THEN jsonb_build_object('precision', sp.index_precision, 'lists', sp.ivfflat_lists,
                                                  'built_on_rows', sp.index_rows, 'built_at', sp.index_built_at)
           ELSE jsonb_build_object('precision', sp.index_precision, 'm', sp.hnsw_m,
                                   'ef_construction', sp.hnsw_ef_construction)
       END AS index_params,
       sp.match_k AS k,
       gmv.space_vector_count('training', sp.space_id) AS n_training_vectors,
       gmv.space_vector_count('generated', sp.space_id) AS n_generated_vectors,
       m.n_matched_generated,
       m.n_match_rows,
       (SELECT count(*) FROM gmv.match_run AS r WHERE r.space_id = sp.space_id) AS n_match_runs,
       sp.created_at
FROM gmv.embedding_space AS sp
CROSS JOIN LATERAL (
    SELECT count(DISTINCT x.generated_id) AS n_matched_generated, count(*) AS n_match_rows
    FROM gmv.match AS x
    WHERE x.space_id = sp.space_id
) AS m;
COMMENT ON VIEW report.space IS
    'Embedding spaces: one model + weights + preprocessing + dim, the index that serves matching, k and counts.';
COMMENT ON COLUMN report.space.space IS 'Name of the embedding space.';
COMMENT ON COLUMN report.space.model IS 'Embedding model (e.g. efficientnet-lite0, pixels, or imported).';
COMMENT ON COLUMN report.space.weights_sha256 IS 'sha256 of the model weights file (NULL when the model has none or it was imported).';
COMMENT ON COLUMN report.space.preprocessing IS 'Preprocessing of images before embedding (resize, crop, normalisation), as JSON.';
COMMENT ON COLUMN report.space.dim IS 'Dimensions of the vectors.';
COMMENT ON COLUMN report.space.storage IS 'pgvector type of the vectors: vector (float32) or halfvec (float16).';
COMMENT ON COLUMN report.space.distance IS 'Distance of the k-NN search: cosine, l2 or inner_product.';
COMMENT ON COLUMN report.space.index_kind IS 'Index on the training vectors that approximate matching uses: hnsw or ivfflat (gmv index build).';
COMMENT ON COLUMN report.space.index_params IS 'Build parameters of that index, as JSON: precision (full or half: a halfvec expression index), m and ef_construction (hnsw) or lists and the rows it was built on (ivfflat).';
COMMENT ON COLUMN report.space.k IS 'Neighbours per generated image, fixed by the first gmv match (NULL: never matched).';
COMMENT ON COLUMN report.space.n_training_vectors IS 'Training images with a vector in this space.';
COMMENT ON COLUMN report.space.n_generated_vectors IS 'Generated images with a vector in this space.';
COMMENT ON COLUMN report.space.n_matched_generated IS 'Generated images that have match rows in this space.';
COMMENT ON COLUMN report.space.n_match_rows IS 'Match rows in this space (k per matched generated image, fewer if fewer training images).';
COMMENT ON COLUMN report.space.n_match_runs IS 'gmv match runs recorded for this space (report.match_run).';
COMMENT ON COLUMN report.space.created_at IS 'When the space was created.';

CREATE VIEW report.match_run AS
SELECT r.run_id,
       sp.name AS space,
       r.k,
       r.exact,
       r.index_kind,
       r.index_params,
       r.ef_search,
       r.probes,
       r.rematch,
       r.recall_at_k,
       r.recall_sample,
       r.recall_status,
       r.images_matched,
       r.rows_written,
       r.started_at,
       r.finished_at,
       extract(epoch FROM r.finished_at - r.started_at)::double precision AS seconds,
       r.gmv_sql_version,
       r.postgres_version,
       r.pgvector_version
FROM gmv.match_run AS r
JOIN gmv.embedding_space AS sp USING (space_id);
COMMENT ON VIEW report.match_run IS
    'Every gmv match run: exact or index search with its settings, the recall@k it measured against exact search, what it matched, and versions.';
COMMENT ON COLUMN report.match_run.run_id IS 'Id of the run; gmv.match.run_id and statement provenance name it.';
COMMENT ON COLUMN report.match_run.space IS 'Embedding space matched in.';
COMMENT ON COLUMN report.match_run.k IS 'Neighbours per generated image.';
COMMENT ON COLUMN report.match_run.exact IS 'true: exact search (sequential scan), false: the index.';
COMMENT ON COLUMN report.match_run.index_kind IS 'Index searched (hnsw); NULL for exact search.';
COMMENT ON COLUMN report.match_run.index_params IS 'The index''s build parameters and distance, as JSON.';
COMMENT ON COLUMN report.match_run.ef_search IS 'hnsw.ef_search of the run (NULL for exact search).';
COMMENT ON COLUMN report.match_run.probes IS 'ivfflat.probes of the run (NULL: not an IVFFlat index).';
COMMENT ON COLUMN report.match_run.rematch IS 'true: the run deleted the space''s matches first (gmv match --rematch).';
COMMENT ON COLUMN report.match_run.recall_at_k IS 'Mean recall@k of the run''s search against exact search on a sample of the images it matched (1 for exact search; NULL when not measured).';
COMMENT ON COLUMN report.match_run.recall_sample IS 'Generated images in the recall sample (0 when not measured).';
COMMENT ON COLUMN report.match_run.recall_status IS 'measured, skipped (--recall-sample 0), exact (exact search: recall 1), nothing_matched, or pending (run in progress or interrupted).';
COMMENT ON COLUMN report.match_run.images_matched IS 'Generated images the run matched.';
COMMENT ON COLUMN report.match_run.rows_written IS 'Rows the run inserted into gmv.match.';
COMMENT ON COLUMN report.match_run.started_at IS 'When the run started.';
COMMENT ON COLUMN report.match_run.finished_at IS 'When the run finished (NULL: in progress or interrupted).';
COMMENT ON COLUMN report.match_run.seconds IS 'finished_at - started_at in seconds.';
COMMENT ON COLUMN report.match_run.gmv_sql_version IS 'gmv_sql version that ran the match.';
COMMENT ON COLUMN report.match_run.postgres_version IS 'PostgreSQL server version.';
COMMENT ON COLUMN report.match_run.pgvector_version IS 'pgvector extension version.';

CREATE VIEW report.statement AS
SELECT s.statement_id,
       s.kind,
       to_char(s.period, 'YYYY-MM') AS period,
       s.space,
       s.scheme,
       s.generator,
       s.run,
       s.scope,
       s.pool,
       s.amount,
       s.currency,
       s.reason,
       s.reverses,
       s.issued_at,
       s.issued_by,
       s.provenance -> 'space' ->> 'model' AS model,
       s.provenance -> 'space' ->> 'weights_sha256' AS weights_sha256,
       (s.provenance ->> 'k')::integer AS k,
       (s.provenance -> 'scheme' ->> 'temperature')::double precision AS temperature,
       r.min_recall_at_k,
       s.provenance
FROM gmv.statement AS s
CROSS JOIN LATERAL (
    SELECT min((mr.value ->> 'recall_at_k')::double precision) AS min_recall_at_k
    FROM jsonb_array_elements(coalesce(s.provenance -> 'match_runs', '[]'::jsonb)) AS mr(value)
) AS r;
COMMENT ON VIEW report.statement IS
    'Issued royalty statements (frozen): originals, adjustments (per-owner deltas so that issued + adjustments = what the data says now) and reversals, with provenance.';
COMMENT ON COLUMN report.statement.statement_id IS 'Stable id of the statement (printed on issue; gmv statement show ID).';
COMMENT ON COLUMN report.statement.kind IS 'original (first for its scope and month), adjustment (a correction: deltas) or reversal (withdraws a statement).';
COMMENT ON COLUMN report.statement.period IS 'Month (UTC, YYYY-MM) of the generated images paid for.';
COMMENT ON COLUMN report.statement.space IS 'Embedding space of the matches.';
COMMENT ON COLUMN report.statement.scheme IS 'Valuation scheme that turned matches into credit.';
COMMENT ON COLUMN report.statement.generator IS 'Scope: the generator whose outputs are paid for (NULL: every generator).';
COMMENT ON COLUMN report.statement.run IS 'Scope: the generation run (NULL: every run).';
COMMENT ON COLUMN report.statement.scope IS 'The scope in words: all, generator NAME, or generator NAME run NAME.';
COMMENT ON COLUMN report.statement.pool IS 'The revenue pool of the month and scope when this statement was issued.';
COMMENT ON COLUMN report.statement.amount IS 'Sum of this statement''s lines: the pool for an original, the change for an adjustment, minus the reversed amount for a reversal.';
COMMENT ON COLUMN report.statement.currency IS 'Three-letter currency code.';
COMMENT ON COLUMN report.statement.reason IS 'Why it was issued (gmv report royalties --reason), for adjustments and reversals.';
COMMENT ON COLUMN report.statement.reverses IS 'For a reversal: the statement it withdraws.';
COMMENT ON COLUMN report.statement.issued_at IS 'When it was issued.';
COMMENT ON COLUMN report.statement.issued_by IS 'Database user who issued it.';
COMMENT ON COLUMN report.statement.model IS 'Embedding model of the space at issue (from provenance).';
COMMENT ON COLUMN report.statement.weights_sha256 IS 'sha256 of the model weights at issue (from provenance).';
COMMENT ON COLUMN report.statement.k IS 'k of the matches used (from provenance).';
COMMENT ON COLUMN report.statement.temperature IS 'Temperature of the scheme at issue (softmax_distance only).';
COMMENT ON COLUMN report.statement.min_recall_at_k IS 'Lowest recall@k among the match runs used (NULL when none was measured).';
COMMENT ON COLUMN report.statement.provenance IS 'Everything the amounts depend on, as JSON: space (model, weights, preprocessing, distance, index), k, scheme, match runs with recall, versions, counts.';

CREATE VIEW report.statement_line AS
SELECT l.statement_id,
       s.kind,
       to_char(s.period, 'YYYY-MM') AS period,
       s.space,
       s.scheme,
       s.scope,
       l.owner,
       l.credit,
       l.unpaid_credit,
       l.share,
       l.due,
       l.issued_before,
       l.amount,
       s.currency
FROM gmv.statement_line AS l
JOIN gmv.statement AS s USING (statement_id);
COMMENT ON VIEW report.statement_line IS
    'Per-owner lines of issued statements: amount = due - issued_before; the amounts of one statement add up to its amount.';
COMMENT ON COLUMN report.statement_line.statement_id IS 'The statement (report.statement).';
COMMENT ON COLUMN report.statement_line.kind IS 'Kind of the statement: original, adjustment or reversal.';
COMMENT ON COLUMN report.statement_line.period IS 'Month (YYYY-MM) of the statement.';
COMMENT ON COLUMN report.statement_line.space IS 'Embedding space of the statement.';
COMMENT ON COLUMN report.statement_line.scheme IS 'Valuation scheme of the statement.';
COMMENT ON COLUMN report.statement_line.scope IS 'Scope of the statement (all, or a generator and run).';
COMMENT ON COLUMN report.statement_line.owner IS 'Owner paid (name at issue).';
COMMENT ON COLUMN report.statement_line.credit IS 'Owner''s credit from royalty-bearing images at issue.';
COMMENT ON COLUMN report.statement_line.unpaid_credit IS 'Owner''s credit under non-royalty-bearing licences (shown, not paid).';
COMMENT ON COLUMN report.statement_line.share IS 'credit / total royalty-bearing credit of the month and scope.';
COMMENT ON COLUMN report.statement_line.due IS 'What the data said the owner is due for the month at issue (largest-remainder cents of the pool).';
COMMENT ON COLUMN report.statement_line.issued_before IS 'Sum of the owner''s amounts in earlier statements of the same month and scope.';
COMMENT ON COLUMN report.statement_line.amount IS 'Paid (or, negative, reclaimed) by this statement: due - issued_before; for a reversal, minus the reversed line.';
COMMENT ON COLUMN report.statement_line.currency IS 'Three-letter currency code.';

CREATE VIEW report.statement_credit AS
SELECT c.statement_id,
       s.kind,
       to_char(s.period, 'YYYY-MM') AS period,
       s.space,
       s.scheme,
       s.scope,
       c.training_id,
       c.sha256,
       c.uri,
       c.owner,
       c.license,
       c.royalty_bearing,
       c.credit,
       c.n_matches,
       c.due,
       c.issued_before,
       c.amount,
       s.currency
FROM gmv.statement_credit AS c
JOIN gmv.statement AS s USING (statement_id);
COMMENT ON VIEW report.statement_credit IS
    'Per training image lines of issued statements: where each owner''s cents come from; report.attribution shows the generated images behind the credit.';
COMMENT ON COLUMN report.statement_credit.statement_id IS 'The statement (report.statement).';
COMMENT ON COLUMN report.statement_credit.kind IS 'Kind of the statement: original, adjustment or reversal.';
COMMENT ON COLUMN report.statement_credit.period IS 'Month (YYYY-MM) of the statement.';
COMMENT ON COLUMN report.statement_credit.space IS 'Embedding space of the statement.';
COMMENT ON COLUMN report.statement_credit.scheme IS 'Valuation scheme of the statement.';
COMMENT ON COLUMN report.statement_credit.scope IS 'Scope of the statement (all, or a generator and run).';
COMMENT ON COLUMN report.statement_credit.training_id IS 'Training image (its id at issue; kept after the image is deleted).';
COMMENT ON COLUMN report.statement_credit.sha256 IS 'sha256 of the training image file at issue.';
COMMENT ON COLUMN report.statement_credit.uri IS 'Where the training image was at issue.';
COMMENT ON COLUMN report.statement_credit.owner IS 'Owner of the image at issue.';
COMMENT ON COLUMN report.statement_credit.license IS 'Licence of the image at issue.';
COMMENT ON COLUMN report.statement_credit.royalty_bearing IS 'Whether its licence was royalty-bearing at issue (false: credit shown, never paid).';
COMMENT ON COLUMN report.statement_credit.credit IS 'The image''s credit in the month and scope: sum over its matches of quality x weight.';
COMMENT ON COLUMN report.statement_credit.n_matches IS 'Match rows of the month and scope pointing at the image.';
COMMENT ON COLUMN report.statement_credit.due IS 'The image''s part of its owner''s due (largest-remainder cents within the owner).';
COMMENT ON COLUMN report.statement_credit.issued_before IS 'The image''s amounts in earlier statements of the same month and scope.';
COMMENT ON COLUMN report.statement_credit.amount IS 'This statement''s cents for the image: due - issued_before (minus the reversed line for a reversal); they add up to the owner''s line.';
COMMENT ON COLUMN report.statement_credit.currency IS 'Three-letter currency code.';

CREATE VIEW report.statement_match AS
SELECT m.statement_id,
       m.generated_id,
       g.uri AS generated_uri,
       m.rank,
       m.training_id,
       m.distance,
       m.k,
       m.quality,
       m.match_run_id
FROM gmv.statement_match AS m
LEFT JOIN gmv.generated_image AS g USING (generated_id);
COMMENT ON VIEW report.statement_match IS
    'The match rows each issued statement was computed from, as they were at issue: which generated images earned each training image''s credit (report.attribution shows the live ones).';
COMMENT ON COLUMN report.statement_match.statement_id IS 'The statement (report.statement).';
COMMENT ON COLUMN report.statement_match.generated_id IS 'Generated image matched.';
COMMENT ON COLUMN report.statement_match.generated_uri IS 'Where the generated image is now (NULL when it was deleted since).';
COMMENT ON COLUMN report.statement_match.rank IS 'Rank of the training image among the generated image''s k nearest (1 = nearest).';
COMMENT ON COLUMN report.statement_match.training_id IS 'Training image matched (report.statement_credit describes it as it was at issue).';
COMMENT ON COLUMN report.statement_match.distance IS 'Distance in the space (its distance function, see report.statement.provenance).';
COMMENT ON COLUMN report.statement_match.k IS 'k of the match.';
COMMENT ON COLUMN report.statement_match.quality IS 'Quality weight q_j of the generated image at issue.';
COMMENT ON COLUMN report.statement_match.match_run_id IS 'The gmv match run that found the match (report.match_run; NULL: before runs were recorded).';
