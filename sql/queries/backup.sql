-- Backup and restore (gmv_sql.db.backup).

-- name: user_objects
-- What makes a database "not empty" for `gmv db restore`: relations, functions and extensions outside
-- the system schemas (plpgsql comes with every database).
SELECT (SELECT count(*) FROM pg_class AS c JOIN pg_namespace AS n ON n.oid = c.relnamespace
        WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')
          AND n.nspname NOT LIKE 'pg_temp%' AND n.nspname NOT LIKE 'pg_toast_temp%')
     + (SELECT count(*) FROM pg_proc AS p JOIN pg_namespace AS n ON n.oid = p.pronamespace
        WHERE n.nspname NOT IN ('pg_catalog', 'information_schema'))
     + (SELECT count(*) FROM pg_extension WHERE extname <> 'plpgsql')

-- name: ensure_reader_role
-- The archive grants to these roles; roles are cluster-wide, so a fresh server lacks them.
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'gmv_reader') THEN
        CREATE ROLE gmv_reader LOGIN;
        ALTER ROLE gmv_reader SET default_transaction_read_only = on;
        ALTER ROLE gmv_reader SET statement_timeout = '60s';
        ALTER ROLE gmv_reader SET idle_in_transaction_session_timeout = '5min';
    END IF;
END
$$

-- name: ensure_owners_role
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'gmv_owners') THEN
        CREATE ROLE gmv_owners NOLOGIN;
    END IF;
END
$$

-- name: drop_schema
-- --force: {schema} is one of gmv's schemas (an identifier fixed in the code).
DROP SCHEMA IF EXISTS {schema} CASCADE

-- name: drop_alembic_version
DROP TABLE IF EXISTS public.alembic_version

-- name: missing_owner_logins
-- Owners' login roles named in the restored data that this server does not have.
SELECT o.name
FROM gmv.owner_login AS l
JOIN gmv.owner AS o USING (owner_id)
WHERE NOT EXISTS (SELECT FROM pg_roles AS r WHERE r.rolname = l.role_name)
ORDER BY o.name

-- name: analyze
-- pg_restore leaves the planner without statistics; the next refresh and reports need them.
ANALYZE

-- name: count_tables
-- Tables pg_dump will dump the rows of (its progress counts them).
SELECT count(*) FROM pg_class AS c JOIN pg_namespace AS n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg_toast%' AND n.nspname NOT LIKE 'pg_temp%'
