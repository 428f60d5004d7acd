-- Attribution quality (docs/NEAR_COPIES.md): generated images that are near-copies of training images.
-- After 30_access.sql in file order, so it grants its own views to gmv_reader.

-- A near-copy: a matched training image at most the space's near_copy_distance away. A re-ranked
-- match (gmv match --rerank-space) holds the re-ranking space's distance, so it is compared with
-- that space's threshold. Every matched training image under the threshold is listed (rank 1 is
-- the nearest); count distinct generated_id for "how many near-copies".
CREATE VIEW report.near_copy AS
SELECT sp.name AS space,
       ds.name AS distance_space,
       m.generated_id,
       g.uri AS generated_uri,
       g.sha256 AS generated_sha256,
       gen.name AS generator,
       run.name AS run,
       m.rank,
       m.training_id,
       t.uri AS training_uri,
       t.sha256 AS training_sha256,
       o.name AS owner,
       l.name AS license,
       m.distance,
       ds.near_copy_distance AS threshold,
       ds.near_copy_source AS threshold_source,
       g.created_at AS generated_at
FROM gmv.match AS m
JOIN gmv.embedding_space AS sp ON sp.space_id = m.space_id
JOIN gmv.embedding_space AS ds ON ds.space_id = coalesce(m.rerank_space_id, m.space_id)
JOIN gmv.generated_image AS g USING (generated_id)
JOIN gmv.generation_run AS run ON run.run_id = g.run_id  -- gmv.match has a run_id too (its match run)
JOIN gmv.generator AS gen USING (generator_id)
JOIN gmv.training_image AS t USING (training_id)
JOIN gmv.owner AS o USING (owner_id)
JOIN gmv.license AS l USING (license_id)
WHERE m.distance <= ds.near_copy_distance;
COMMENT ON VIEW report.near_copy IS
    'Generated images at most the space''s near-copy distance (threshold) from a matched training image: possible memorisation (privacy and licensing risk). threshold_source: calibrated from the space''s own training data, or set by hand (docs/NEAR_COPIES.md).';

COMMENT ON COLUMN report.near_copy.space IS 'Embedding space whose matches are checked.';
COMMENT ON COLUMN report.near_copy.distance_space IS 'Space whose distance the match holds: the re-ranking space for a re-ranked match (gmv match --rerank-space), else space.';
COMMENT ON COLUMN report.near_copy.generated_id IS 'Generated image that is a near-copy.';
COMMENT ON COLUMN report.near_copy.generated_uri IS 'Path or URI of the generated image.';
COMMENT ON COLUMN report.near_copy.generated_sha256 IS 'sha256 of the generated image''s bytes.';
COMMENT ON COLUMN report.near_copy.generator IS 'Generative model that made the image.';
COMMENT ON COLUMN report.near_copy.run IS 'Generation run (batch of outputs) of the image.';
COMMENT ON COLUMN report.near_copy.rank IS 'Rank of the training image among the generated image''s matches (1 = nearest).';
COMMENT ON COLUMN report.near_copy.training_id IS 'Training image it nearly copies.';
COMMENT ON COLUMN report.near_copy.training_uri IS 'Path or URI of the training image.';
COMMENT ON COLUMN report.near_copy.training_sha256 IS 'sha256 of the training image''s bytes.';
COMMENT ON COLUMN report.near_copy.owner IS 'Owner of the training image.';
COMMENT ON COLUMN report.near_copy.license IS 'Licence of the training image.';
COMMENT ON COLUMN report.near_copy.distance IS 'Distance between the two images in distance_space (its metric and units).';
COMMENT ON COLUMN report.near_copy.threshold IS 'The near-copy distance of distance_space: matches at or below it are listed.';
COMMENT ON COLUMN report.near_copy.threshold_source IS 'calibrated (from the space''s own training data, docs/NEAR_COPIES.md) or set (gmv space set --near-copy-distance).';
COMMENT ON COLUMN report.near_copy.generated_at IS 'When the generated image was created (its royalty period is this month, UTC).';

DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'gmv_reader') THEN
        GRANT SELECT ON report.near_copy TO gmv_reader;
    END IF;
END
$$;
