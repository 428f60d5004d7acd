-- Rights: opt-outs of training images and licence terms (gmv rights, gmv license). Changes are
-- logged by the triggers of sql/derived/25_rights.sql into gmv.rights_change.

-- name: set_actor
-- application_name for this transaction: report.rights_change.application says which command and OS user.
SELECT set_config('application_name', %(name)s, true)

-- name: training_by_sha256
SELECT sha256, training_id FROM gmv.training_image WHERE sha256 = ANY (%(sha256)s::text[])

-- name: training_by_uri
SELECT uri, training_id FROM gmv.training_image WHERE uri = ANY (%(uri)s::text[])

-- name: owners
SELECT name, owner_id FROM gmv.owner WHERE name = ANY (%(names)s::text[])

-- name: training_of_owners
SELECT training_id FROM gmv.training_image WHERE owner_id = ANY (%(owner_ids)s::bigint[])

-- name: opt_out
-- Locks the rows in id order (concurrent commands cannot deadlock); returns what each row was.
WITH target AS (
    SELECT training_id, opted_out, opted_out_from
    FROM gmv.training_image
    WHERE training_id = ANY (%(ids)s::bigint[])
    ORDER BY training_id
    FOR UPDATE
)
UPDATE gmv.training_image AS t
SET opted_out = true, opted_out_from = %(from)s::date
FROM target
WHERE t.training_id = target.training_id
RETURNING target.opted_out, target.opted_out_from

-- name: opt_in
WITH target AS (
    SELECT training_id, opted_out
    FROM gmv.training_image
    WHERE training_id = ANY (%(ids)s::bigint[])
    ORDER BY training_id
    FOR UPDATE
)
UPDATE gmv.training_image AS t
SET opted_out = false, opted_out_from = NULL
FROM target
WHERE t.training_id = target.training_id
RETURNING target.opted_out

-- name: affected_matches
-- Per matched space: generated images whose matches include these training images and that the
-- images' opt-out now covers (the next gmv match re-matches them).
SELECT sp.name, count(DISTINCT m.generated_id)
FROM gmv.match AS m
JOIN gmv.embedding_space AS sp USING (space_id)
JOIN gmv.training_image AS t USING (training_id)
JOIN gmv.generated_image AS g ON g.generated_id = m.generated_id
WHERE m.training_id = ANY (%(ids)s::bigint[])
  AND gmv.opted_out_for(t.opted_out, t.opted_out_from, g.created_at)
GROUP BY sp.name
ORDER BY sp.name

-- name: matched_spaces
SELECT name FROM gmv.embedding_space WHERE match_k IS NOT NULL ORDER BY name

-- name: license_names
SELECT name FROM gmv.license ORDER BY name

-- name: set_license
-- NULL parameters keep the stored value; url '' clears it.
UPDATE gmv.license
SET royalty_bearing = coalesce(%(royalty_bearing)s::boolean, royalty_bearing),
    excluded = coalesce(%(excluded)s::boolean, excluded),
    url = CASE WHEN %(url)s::text IS NULL THEN url ELSE nullif(%(url)s::text, '') END
WHERE name = %(name)s
RETURNING license_id

-- name: licenses
SELECT l.name AS license,
       l.royalty_bearing,
       l.excluded,
       l.url,
       count(t.training_id) AS n_training_images
FROM gmv.license AS l
LEFT JOIN gmv.training_image AS t USING (license_id)
WHERE %(name)s::text IS NULL OR l.name = %(name)s
GROUP BY l.license_id
ORDER BY l.name

-- name: log
SELECT change_id, changed_at, changed_by, application, target, sha256, owner, license, field, before, after
FROM report.rights_change
WHERE (%(owner)s::text IS NULL OR owner = %(owner)s)
ORDER BY change_id DESC
LIMIT %(limit)s
