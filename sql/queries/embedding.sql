-- Per-space embedding tables, created at run time because their dimension is only known then.
-- {training}/{generated}/{storage}/{dim}/{opclass}/{index}/{m}/{ef_construction} are filled in by
-- gmv_sql.embed.store from validated integers and fixed identifiers, never from user text.

-- name: create_training_table
CREATE TABLE IF NOT EXISTS {training} (
    training_id  bigint PRIMARY KEY REFERENCES gmv.training_image ON DELETE CASCADE,
    embedding    {storage}({dim}) NOT NULL,
    embedded_at  timestamptz NOT NULL DEFAULT now()
)

-- name: create_generated_table
CREATE TABLE IF NOT EXISTS {generated} (
    generated_id  bigint PRIMARY KEY REFERENCES gmv.generated_image ON DELETE CASCADE,
    embedding     {storage}({dim}) NOT NULL,
    embedded_at   timestamptz NOT NULL DEFAULT now()
)

-- name: create_hnsw_index
CREATE INDEX IF NOT EXISTS {index} ON {training}
    USING hnsw (embedding {opclass}) WITH (m = {m}, ef_construction = {ef_construction})

-- name: drop_hnsw_index
DROP INDEX IF EXISTS {index}

-- name: training_missing
-- Training images with no vector yet in this space.
SELECT t.training_id, t.uri, t.sha256
FROM gmv.training_image AS t
WHERE NOT EXISTS (SELECT 1 FROM {training} AS e WHERE e.training_id = t.training_id)
ORDER BY t.training_id

-- name: generated_missing
SELECT g.generated_id, g.uri, g.sha256
FROM gmv.generated_image AS g
WHERE NOT EXISTS (SELECT 1 FROM {generated} AS e WHERE e.generated_id = g.generated_id)
ORDER BY g.generated_id
