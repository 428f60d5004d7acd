-- Rights: every change of a training image's opt-out or a licence's terms is logged by a trigger
-- (whoever makes it: gmv rights, gmv license set, ingest, or plain SQL), and shown in
-- report.rights_change. A change of eligibility also clears the image's row in gmv.match_coverage,
-- so the next `gmv match` lets it compete again for the generated images it may now enter
-- (gmv_sql/match/late.py). Before 30_access.sql, whose grant covers the report views made so far.

-- The opt-out date rule (docs/ROYALTIES.md, "Rights and opt-outs"): an opt-out without a date covers
-- every generated image; with a date, those created on or after that day (UTC, like royalty periods).
CREATE FUNCTION gmv.opted_out_for(opted_out boolean, opted_out_from date, created_at timestamptz)
RETURNS boolean LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT opted_out AND (opted_out_from IS NULL OR created_at >= (opted_out_from::timestamp AT TIME ZONE 'UTC'))
$$;
COMMENT ON FUNCTION gmv.opted_out_for(boolean, date, timestamptz) IS
    'Whether a training image''s opt-out (opted_out, opted_out_from) covers a generated image created at created_at.';

CREATE FUNCTION gmv.log_training_rights() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        -- Ingested already opted out: the first state is a change from nothing.
        INSERT INTO gmv.rights_change (target, training_id, target_name, field, before, after)
        SELECT 'training_image', n.training_id, n.sha256, f.field, NULL, f.after
        FROM new_rows AS n
        CROSS JOIN LATERAL (VALUES ('opted_out', n.opted_out::text),
                                   ('opted_out_from', n.opted_out_from::text)) AS f(field, after)
        WHERE n.opted_out AND f.after IS NOT NULL
        ORDER BY n.training_id, f.field;
        RETURN NULL;
    END IF;
    WITH changed AS (
        SELECT n.training_id, n.sha256, f.field, f.before, f.after
        FROM old_rows AS o
        JOIN new_rows AS n USING (training_id)
        CROSS JOIN LATERAL (VALUES ('opted_out', o.opted_out::text, n.opted_out::text),
                                   ('opted_out_from', o.opted_out_from::text, n.opted_out_from::text))
             AS f(field, before, after)
        WHERE f.before IS DISTINCT FROM f.after
    ), logged AS (
        INSERT INTO gmv.rights_change (target, training_id, target_name, field, before, after)
        SELECT 'training_image', training_id, sha256, field, before, after
        FROM changed
        ORDER BY training_id, field
        RETURNING training_id
    )
    DELETE FROM gmv.match_coverage AS c
    WHERE c.training_id IN (SELECT training_id FROM logged);
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION gmv.log_training_rights() IS
    'Logs changes of opted_out / opted_out_from into gmv.rights_change and makes the image compete again at the next gmv match.';

CREATE FUNCTION gmv.log_license_rights() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        -- Terms other than the defaults (royalty-bearing, included, no URL) are logged at creation.
        INSERT INTO gmv.rights_change (target, license_id, target_name, field, before, after)
        SELECT 'license', n.license_id, n.name, f.field, NULL, f.after
        FROM new_rows AS n
        CROSS JOIN LATERAL (VALUES ('royalty_bearing', n.royalty_bearing::text, 'true'),
                                   ('excluded', n.excluded::text, 'false'),
                                   ('url', n.url, NULL)) AS f(field, after, default_value)
        WHERE f.after IS DISTINCT FROM f.default_value
        ORDER BY n.license_id, f.field;
        RETURN NULL;
    END IF;
    WITH changed AS (
        SELECT n.license_id, n.name, f.field, f.before, f.after
        FROM old_rows AS o
        JOIN new_rows AS n USING (license_id)
        CROSS JOIN LATERAL (VALUES ('royalty_bearing', o.royalty_bearing::text, n.royalty_bearing::text),
                                   ('excluded', o.excluded::text, n.excluded::text),
                                   ('url', o.url, n.url)) AS f(field, before, after)
        WHERE f.before IS DISTINCT FROM f.after
    ), logged AS (
        INSERT INTO gmv.rights_change (target, license_id, target_name, field, before, after)
        SELECT 'license', license_id, name, field, before, after
        FROM changed
        ORDER BY license_id, field
        RETURNING license_id, field
    )
    DELETE FROM gmv.match_coverage AS c
    USING gmv.training_image AS t
    WHERE c.training_id = t.training_id
      AND t.license_id IN (SELECT license_id FROM logged WHERE field = 'excluded');
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION gmv.log_license_rights() IS
    'Logs changes of a licence''s royalty_bearing / excluded / url into gmv.rights_change; a change of excluded makes its images compete again at the next gmv match.';

CREATE TRIGGER log_rights_insert AFTER INSERT ON gmv.training_image
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION gmv.log_training_rights();
CREATE TRIGGER log_rights_update AFTER UPDATE ON gmv.training_image
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION gmv.log_training_rights();
CREATE TRIGGER log_rights_insert AFTER INSERT ON gmv.license
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION gmv.log_license_rights();
CREATE TRIGGER log_rights_update AFTER UPDATE ON gmv.license
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION gmv.log_license_rights();

CREATE VIEW report.rights_change AS
SELECT c.change_id,
       c.changed_at,
       c.changed_by,
       c.session_user_name,
       c.application,
       c.target,
       c.training_id,
       CASE c.target WHEN 'training_image' THEN c.target_name END AS sha256,
       t.uri,
       o.name AS owner,
       coalesce(l.name, CASE c.target WHEN 'license' THEN c.target_name END) AS license,
       c.field,
       c.before,
       c.after
FROM gmv.rights_change AS c
LEFT JOIN gmv.training_image AS t ON t.training_id = c.training_id
LEFT JOIN gmv.owner AS o ON o.owner_id = t.owner_id
LEFT JOIN gmv.license AS l ON l.license_id = coalesce(c.license_id, t.license_id);
COMMENT ON VIEW report.rights_change IS
    'Every change of training-image rights (opt-out, opt-in, opt-out date) and licence terms (royalty-bearing, excluded, URL): who, when, what, before and after. One row per changed field; written by triggers, so changes made with plain SQL appear too.';
COMMENT ON COLUMN report.rights_change.change_id IS 'Order of the changes (increasing).';
COMMENT ON COLUMN report.rights_change.changed_at IS 'When: start of the transaction that made the change.';
COMMENT ON COLUMN report.rights_change.changed_by IS 'Who: the database role in effect (current_user).';
COMMENT ON COLUMN report.rights_change.session_user_name IS 'The database role that logged in (session_user); differs from changed_by under SET ROLE.';
COMMENT ON COLUMN report.rights_change.application IS 'application_name of the session: gmv sets "gmv <command> (os user <login>)".';
COMMENT ON COLUMN report.rights_change.target IS 'What changed: training_image or license.';
COMMENT ON COLUMN report.rights_change.training_id IS 'The training image (target training_image), else NULL.';
COMMENT ON COLUMN report.rights_change.sha256 IS 'sha256 of the training image''s bytes (kept even if the image is deleted later).';
COMMENT ON COLUMN report.rights_change.uri IS 'Where the training image was ingested from (NULL once deleted).';
COMMENT ON COLUMN report.rights_change.owner IS 'Current owner of the training image.';
COMMENT ON COLUMN report.rights_change.license IS 'The licence changed (target license), or the training image''s current licence.';
COMMENT ON COLUMN report.rights_change.field IS 'Which right: opted_out, opted_out_from (training images); royalty_bearing, excluded, url (licences).';
COMMENT ON COLUMN report.rights_change.before IS 'Value before the change, as text (NULL: none, e.g. at ingest).';
COMMENT ON COLUMN report.rights_change.after IS 'Value after the change, as text (NULL: cleared).';
