-- Ingest: owners, licences, generators, runs and image rows. Identity is the sha256 of the file
-- bytes; inserts use ON CONFLICT (sha256) DO NOTHING so a re-run after a crash adds only what is missing.
-- Callers pass rows sorted (names, sha256): concurrent ingests then take row locks in the same
-- order and cannot deadlock.

-- name: create_owners
INSERT INTO gmv.owner (name)
SELECT unnest(%(names)s::text[])  -- distinct and sorted by the caller: a fixed lock order
ON CONFLICT (name) DO NOTHING

-- name: owner_ids
SELECT name, owner_id FROM gmv.owner WHERE name = ANY(%(names)s::text[])

-- name: create_licenses
-- royalty_bearing: the manifest's term per name, NULL for the default (true).
INSERT INTO gmv.license (name, royalty_bearing)
SELECT n, coalesce(r, true)
FROM unnest(%(names)s::text[], %(royalty_bearing)s::boolean[]) AS x(n, r)  -- distinct and sorted by the caller
ON CONFLICT (name) DO NOTHING

-- name: license_terms
SELECT name, royalty_bearing FROM gmv.license WHERE name = ANY(%(names)s::text[])

-- name: license_ids
SELECT name, license_id FROM gmv.license WHERE name = ANY(%(names)s::text[])

-- name: training_claims
-- Who already holds these bytes: sha256 -> owner name.
SELECT t.sha256, o.name
FROM gmv.training_image AS t
JOIN gmv.owner AS o USING (owner_id)
WHERE t.sha256 = ANY(%(sha256)s::text[])

-- name: insert_training
INSERT INTO gmv.training_image (sha256, uri, owner_id, license_id, width, height, attributes, opted_out)
SELECT s, u, o, l, w, h, a::jsonb, x.opted_out
FROM unnest(%(sha256)s::text[], %(uri)s::text[], %(owner_id)s::bigint[], %(license_id)s::bigint[],
            %(width)s::int[], %(height)s::int[], %(attributes)s::text[], %(opted_out)s::boolean[])
     AS x(s, u, o, l, w, h, a, opted_out)
ON CONFLICT (sha256) DO NOTHING
RETURNING sha256

-- name: create_generator
INSERT INTO gmv.generator (name) VALUES (%(name)s) ON CONFLICT (name) DO NOTHING

-- name: generator_id
SELECT generator_id FROM gmv.generator WHERE name = %(name)s

-- name: create_run
INSERT INTO gmv.generation_run (generator_id, name) VALUES (%(generator_id)s, %(name)s)
ON CONFLICT (generator_id, name) DO NOTHING

-- name: run_id
SELECT run_id FROM gmv.generation_run WHERE generator_id = %(generator_id)s AND name = %(name)s

-- name: generated_claims
-- Which generator already produced these bytes: sha256 -> generator name, run name.
SELECT g.sha256, gen.name, r.name
FROM gmv.generated_image AS g
JOIN gmv.generation_run AS r USING (run_id)
JOIN gmv.generator AS gen USING (generator_id)
WHERE g.sha256 = ANY(%(sha256)s::text[])

-- name: insert_generated
-- created_at NULL means "now" (the royalty period of the ingest).
INSERT INTO gmv.generated_image (sha256, uri, run_id, quality, prompt, width, height, attributes, created_at)
SELECT s, u, %(run_id)s, q, p, w, h, a::jsonb, coalesce(c, now())
FROM unnest(%(sha256)s::text[], %(uri)s::text[], %(quality)s::float8[], %(prompt)s::text[],
            %(width)s::int[], %(height)s::int[], %(attributes)s::text[], %(created_at)s::timestamptz[])
     AS x(s, u, q, p, w, h, a, c)
ON CONFLICT (sha256) DO NOTHING
RETURNING sha256
