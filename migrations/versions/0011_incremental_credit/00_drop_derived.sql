-- Drops every derived object, so that the files after this one create them afresh: the report
-- and owner_report schemas, every view and materialized view in gmv, and every function in gmv (with the triggers
-- that call them). Tables, their rows and indexes are not touched.
-- A migration re-applies sql/derived by running a frozen copy of the whole folder in file order
-- (migrations/versions/0004_consolidate.py shows how); nothing else in sql/derived drops objects.
-- Names are read as text before the loop: a CASCADE may drop a later object first (IF EXISTS).
DO $$
DECLARE
    object record;
BEGIN
    DROP SCHEMA IF EXISTS owner_report CASCADE;
    DROP SCHEMA IF EXISTS report CASCADE;
    FOR object IN
        SELECT CASE c.relkind WHEN 'm' THEN 'MATERIALIZED VIEW' ELSE 'VIEW' END AS kind, c.oid::regclass::text AS name
        FROM pg_class AS c
        WHERE c.relnamespace = 'gmv'::regnamespace AND c.relkind IN ('v', 'm')
    LOOP
        EXECUTE format('DROP %s IF EXISTS %s CASCADE', object.kind, object.name);
    END LOOP;
    FOR object IN
        SELECT p.oid::regprocedure::text AS name
        FROM pg_proc AS p
        WHERE p.pronamespace = 'gmv'::regnamespace
          AND NOT EXISTS (SELECT FROM pg_depend AS d WHERE d.objid = p.oid AND d.deptype = 'e')
    LOOP
        EXECUTE format('DROP FUNCTION IF EXISTS %s CASCADE', object.name);
    END LOOP;
END
$$;
