-- Owners' own logins (`gmv db grant-owner NAME`): a login role per owner, member of group gmv_owners,
-- mapped to its owner in gmv.owner_login. Schema owner_report holds one security-barrier view per
-- report view that has an `owner` column, showing only the rows of the owner mapped to current_user;
-- gmv_owners may read owner_report and nothing else.
--
-- Extending it: a new report view (say report.statement, from the ledger) that has an `owner` column
-- gets its owner_report twin automatically when its file sorts before this one (sql/derived runs in
-- file order), with the same comments. A report view whose rows are not one owner's (no `owner`
-- column) is not offered to owners; tests/reliability/test_owner_access.py checks every twin as
-- every owner. A view whose `owner` column does not mean "these rows are that owner's" must not be
-- named so in report.
--
-- Why security_barrier: the owner filter runs before any condition the owner writes, so a function
-- in the owner's WHERE clause (a temporary one that prints its arguments, say) never sees other
-- owners' rows. The views run with their owner's rights, so gmv_owners needs no grant on gmv or report.

DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'gmv_owners') THEN
        CREATE ROLE gmv_owners NOLOGIN;
    END IF;
    COMMENT ON ROLE gmv_owners IS 'Group of the owners'' login roles (gmv db grant-owner): may read schema owner_report only.';
EXCEPTION WHEN insufficient_privilege THEN
    RAISE WARNING 'gmv_owners role not created (need CREATEROLE); owner logins (gmv db grant-owner) are not available';
END
$$;

CREATE SCHEMA owner_report;
COMMENT ON SCHEMA owner_report IS
    'The report views for an owner''s own login (gmv db grant-owner): each shows only the logged-in owner''s rows.';

CREATE VIEW owner_report.my_owner WITH (security_barrier) AS
SELECT o.name AS owner
FROM gmv.owner_login AS l
JOIN gmv.owner AS o USING (owner_id)
WHERE l.role_name = current_user;
COMMENT ON VIEW owner_report.my_owner IS 'The owner the logged-in role speaks for (gmv.owner_login).';
COMMENT ON COLUMN owner_report.my_owner.owner IS 'Owner name, as in the report views'' owner column.';

DO $$
DECLARE
    report_view record;
    report_column record;
BEGIN
    FOR report_view IN
        SELECT c.oid, c.relname, obj_description(c.oid, 'pg_class') AS comment
        FROM pg_class AS c
        WHERE c.relnamespace = 'report'::regnamespace AND c.relkind = 'v'
          AND EXISTS (SELECT FROM pg_attribute AS a
                      WHERE a.attrelid = c.oid AND a.attname = 'owner' AND NOT a.attisdropped)
        ORDER BY c.relname
    LOOP
        EXECUTE format(
            'CREATE VIEW owner_report.%I WITH (security_barrier) AS '
            'SELECT * FROM report.%I WHERE owner IN (SELECT owner FROM owner_report.my_owner)',
            report_view.relname, report_view.relname);
        EXECUTE format('COMMENT ON VIEW owner_report.%I IS %L', report_view.relname,
                       'Only the logged-in owner''s rows of report.' || report_view.relname || '. '
                       || coalesce(report_view.comment, ''));
        FOR report_column IN
            SELECT a.attname, col_description(a.attrelid, a.attnum) AS comment
            FROM pg_attribute AS a
            WHERE a.attrelid = report_view.oid AND a.attnum > 0 AND NOT a.attisdropped
        LOOP
            EXECUTE format('COMMENT ON COLUMN owner_report.%I.%I IS %L', report_view.relname,
                           report_column.attname, report_column.comment);
        END LOOP;
    END LOOP;
END
$$;

DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'gmv_owners') THEN
        REVOKE ALL ON SCHEMA gmv, report FROM gmv_owners;
        REVOKE CREATE ON SCHEMA public FROM gmv_owners;
        GRANT USAGE ON SCHEMA owner_report TO gmv_owners;
        GRANT SELECT ON ALL TABLES IN SCHEMA owner_report TO gmv_owners;
    END IF;
END
$$;
