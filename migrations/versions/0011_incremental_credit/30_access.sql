-- gmv_reader: the role BI tools log in as. It may SELECT the report views and nothing else,
-- its sessions are read-only by default, statements time out and idle transactions end. Roles
-- are cluster-wide, so it is created only when missing; a migrating user without CREATEROLE gets
-- a warning instead.
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'gmv_reader') THEN
        CREATE ROLE gmv_reader LOGIN;
    END IF;
    ALTER ROLE gmv_reader SET default_transaction_read_only = on;
    ALTER ROLE gmv_reader SET statement_timeout = '60s';
    -- An open transaction left by a BI tool would hold locks and old snapshots (blocking migrations,
    -- holding back vacuum); end it after 5 idle minutes.
    ALTER ROLE gmv_reader SET idle_in_transaction_session_timeout = '5min';
EXCEPTION WHEN insufficient_privilege THEN
    RAISE WARNING 'gmv_reader role not created or configured (need CREATEROLE); report views work, read-only access is not set up';
END
$$;

DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'gmv_reader') THEN
        REVOKE ALL ON SCHEMA gmv FROM gmv_reader;
        REVOKE ALL ON ALL TABLES IN SCHEMA gmv FROM gmv_reader;
        REVOKE CREATE ON SCHEMA public FROM gmv_reader;
        GRANT USAGE ON SCHEMA report TO gmv_reader;
        GRANT SELECT ON ALL TABLES IN SCHEMA report TO gmv_reader;
    END IF;
END
$$;
