-- What BI tools show beside each column of the report views (DBeaver, Superset, Metabase and
-- SQLAlchemy's inspector read COMMENT ON COLUMN). Every column of every report view has one, in the
-- units a reader needs; tests/db/test_report_comments.py fails when a column lacks one. A new report
-- view adds its column comments here (or beside its CREATE VIEW).

-- Columns that mean the same thing in several views share one text.
DO $$
DECLARE
    shared constant jsonb := jsonb_build_object(
        'space', 'Embedding space (model + weights + preprocessing) whose nearest-neighbour matches this row comes from (gmv.embedding_space.name).',
        'scheme', 'Valuation scheme that turns match ranks or distances into weights: rank_linear (default, k - rank + 1), reciprocal_rank (1/rank), softmax_distance, uniform; weights of one generated image sum to 1.',
        'owner', 'Owner (rights holder) of the training image, as named in the ingest manifest.',
        'license', 'Licence of the training image, as named in the ingest manifest.',
        'training_id', 'Id of the training image (gmv.training_image); stable across runs.',
        'n_images', 'Training images in this group that were matched at least once (value > 0 possible).',
        'n_training_images', 'All training images in this group, matched or not.',
        'royalty_bearing', 'True when credit under this licence is paid out; false: shown but never paid (royalty statements count it as unpaid_credit).'
    );
    target record;
BEGIN
    FOR target IN
        SELECT c.oid::regclass::text AS view_name, a.attname AS column_name
        FROM pg_attribute AS a
        JOIN pg_class AS c ON c.oid = a.attrelid
        WHERE c.relnamespace = 'report'::regnamespace AND c.relkind = 'v'
          AND a.attnum > 0 AND NOT a.attisdropped AND shared ? a.attname
    LOOP
        EXECUTE format('COMMENT ON COLUMN %s.%I IS %L', target.view_name, target.column_name,
                       shared ->> target.column_name);
    END LOOP;
END
$$;

COMMENT ON COLUMN report.training_value.uri IS 'Where the training image file was when ingested (path or URI).';
COMMENT ON COLUMN report.training_value.sha256 IS 'SHA-256 of the image file bytes (hex): the image''s identity.';
COMMENT ON COLUMN report.training_value.value IS
    'Credit: sum over generated images of quality × rank weight of this image''s matches; all credit of a space and scheme adds up to the number of generated images (their total quality). 0 when never matched.';
COMMENT ON COLUMN report.training_value.n_matches IS 'How many generated images have this training image among their top-k matches.';
COMMENT ON COLUMN report.training_value.share IS 'value / total value of the space and scheme (0..1; all shares add up to 1).';
COMMENT ON COLUMN report.training_value.opted_out IS 'True when the owner opted this image out: it is never matched, so its value is 0.';
COMMENT ON COLUMN report.training_value.attributes IS 'Extra manifest columns of the training image (JSON object).';

COMMENT ON COLUMN report.owner_value.value IS
    'Credit of all the owner''s training images: sum over generated images of quality × rank weight; all credit adds up to the number of generated images (their total quality).';
COMMENT ON COLUMN report.owner_value.share IS 'The owner''s value / total value of the space and scheme (0..1).';

COMMENT ON COLUMN report.license_value.value IS
    'Credit of all training images under this licence: sum over generated images of quality × rank weight; all credit adds up to the number of generated images (their total quality).';
COMMENT ON COLUMN report.license_value.share IS 'The licence''s value / total value of the space and scheme (0..1).';

COMMENT ON COLUMN report.attribution.generated_id IS 'Id of the generated image (gmv.generated_image).';
COMMENT ON COLUMN report.attribution.generated_uri IS 'Where the generated image file was when ingested (path or URI).';
COMMENT ON COLUMN report.attribution.generator IS 'Generator (model) that produced the generated image.';
COMMENT ON COLUMN report.attribution.run IS 'Generation run (batch) of the generated image.';
COMMENT ON COLUMN report.attribution.rank IS 'Rank of this training image among the generated image''s k nearest neighbours (1 = nearest).';
COMMENT ON COLUMN report.attribution.training_uri IS 'Where the training image file was when ingested (path or URI).';
COMMENT ON COLUMN report.attribution.distance IS 'Distance between the two embeddings in the space''s metric (cosine distance 0..2, L2, or negative inner product); smaller is closer.';
COMMENT ON COLUMN report.attribution.weight IS 'Normalised weight of this match under the scheme (0..1; the k weights of one generated image sum to 1).';
COMMENT ON COLUMN report.attribution.credit IS 'Credit this match gives the training image: quality of the generated image × weight.';
COMMENT ON COLUMN report.attribution.generated_at IS 'When the generated image was created (timestamptz); its UTC month is its royalty period.';

COMMENT ON COLUMN report.royalty_statement.period IS 'Royalty month (YYYY-MM, UTC) of the revenue pool: generated images created in that month.';
COMMENT ON COLUMN report.royalty_statement.credit IS
    'The owner''s credit in the period from royalty-bearing images: sum over that month''s generated images of quality × rank weight.';
COMMENT ON COLUMN report.royalty_statement.unpaid_credit IS 'The owner''s credit in the period from images under non-royalty-bearing licences (shown, never paid).';
COMMENT ON COLUMN report.royalty_statement.share IS 'The owner''s credit / all paid credit of the pool (0..1).';
COMMENT ON COLUMN report.royalty_statement.amount IS
    'The owner''s payment in the pool''s currency: the pool split pro rata to credit, rounded to cents by largest remainder so amounts add up to the pool exactly.';
COMMENT ON COLUMN report.royalty_statement.currency IS 'Currency of the pool and the amount (e.g. EUR).';
COMMENT ON COLUMN report.royalty_statement.pool_amount IS 'The whole revenue pool of the period, space and scheme, in its currency.';
