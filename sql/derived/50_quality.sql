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
JOIN gmv.generation_run AS run USING (run_id)
JOIN gmv.generator AS gen USING (generator_id)
JOIN gmv.training_image AS t USING (training_id)
JOIN gmv.owner AS o USING (owner_id)
JOIN gmv.license AS l USING (license_id)
WHERE m.distance <= ds.near_copy_distance;
COMMENT ON VIEW report.near_copy IS
    'Generated images at most the space''s near-copy distance (threshold) from a matched training image: possible memorisation (privacy and licensing risk). threshold_source: calibrated from the space''s own training data, or set by hand (docs/NEAR_COPIES.md).';

DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'gmv_reader') THEN
        GRANT SELECT ON report.near_copy TO gmv_reader;
    END IF;
END
$$;
