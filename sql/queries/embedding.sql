-- Per-space embedding tables, created at run time because their dimension is only known then.
-- {training}/{generated}/{storage}/{dim}/{opclass}/{index}/{index_key}/{m}/{ef_construction}/{lists} are
-- filled in by gmv_sql.spaces.render from validated integers and fixed identifiers, never from user text.
-- {index_key} is the column, or (embedding::halfvec(dim)) for a half-precision index of a vector column.
-- STORAGE PLAIN keeps vectors inline (they fit a page up to 2000-d vector / 4000-d halfvec, the HNSW
-- limits): no TOAST insert per row on load, no detoasting on scans (measured ~1.35x faster COPY at 512-d).
-- No foreign keys (a per-row lookup cost ~35% of the COPY rate): vectors are stored only for ids just read
-- from the image tables, and deleting images cascades here by statement-level triggers (migration 0003).

-- name: create_training_table
CREATE TABLE IF NOT EXISTS {training} (
    training_id  bigint PRIMARY KEY,
    embedding    {storage}({dim}) STORAGE PLAIN NOT NULL,
    embedded_at  timestamptz NOT NULL DEFAULT now()
)

-- name: create_generated_table
CREATE TABLE IF NOT EXISTS {generated} (
    generated_id  bigint PRIMARY KEY,
    embedding     {storage}({dim}) STORAGE PLAIN NOT NULL,
    embedded_at   timestamptz NOT NULL DEFAULT now()
)

-- name: create_hnsw_index
CREATE INDEX IF NOT EXISTS {index} ON {training}
    USING hnsw ({index_key} {opclass}) WITH (m = {m}, ef_construction = {ef_construction})

-- name: create_ivfflat_index
-- IVFFlat's centroids are computed from the rows present now: build after loading (gmv index build).
CREATE INDEX IF NOT EXISTS {index} ON {training}
    USING ivfflat ({index_key} {opclass}) WITH (lists = {lists})

-- name: drop_hnsw_index
DROP INDEX IF EXISTS gmv.{index}

-- name: drop_index_named
-- {index_to_drop}: one of the space's index names (gmv_sql.spaces.index_name), to drop the other kind's index.
DROP INDEX IF EXISTS gmv.{index_to_drop}

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

-- name: training_ids_by_sha256
-- Which ingested training images these bytes are (gmv embed import): sha256 -> training_id.
SELECT sha256, training_id FROM gmv.training_image WHERE sha256 = ANY(%(sha256)s::text[])

-- name: generated_ids_by_sha256
SELECT sha256, generated_id FROM gmv.generated_image WHERE sha256 = ANY(%(sha256)s::text[])

-- name: copy_training
COPY {training} (training_id, embedding) FROM STDIN WITH (FORMAT BINARY)

-- name: copy_generated
COPY {generated} (generated_id, embedding) FROM STDIN WITH (FORMAT BINARY)

-- name: training_present
-- Which of these training ids already have a vector in the space.
SELECT training_id FROM {training} WHERE training_id = ANY (%(ids)s::bigint[])

-- name: generated_present
SELECT generated_id FROM {generated} WHERE generated_id = ANY (%(ids)s::bigint[])

-- name: count_vectors
-- {table}: the space's training or generated table.
SELECT count(*) FROM {table}

-- name: count_training_vectors_among
-- How many of these training ids (the ineligible ones) have a vector in the space.
SELECT count(*) FROM {training} WHERE training_id = ANY (%(ids)s::bigint[])

-- name: training_has_vectors
SELECT EXISTS (SELECT 1 FROM {training})

-- name: index_exists
SELECT to_regclass(format('gmv.%%I', %(index)s::text)) IS NOT NULL

-- name: set_maintenance_work_mem
-- For this transaction only: enough memory for the HNSW graph to build in RAM.
SELECT set_config('maintenance_work_mem', %(mem)s, true)

-- name: empty_training
-- gmv embed --reembed: the space's vectors go (the runtime/precision record changes with them).
DELETE FROM {training}

-- name: empty_generated
DELETE FROM {generated}

-- name: delete_space_matches
DELETE FROM gmv.match WHERE space_id = %(space_id)s
