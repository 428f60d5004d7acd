-- The database itself and as a whole (gmv_sql.db): versions, migration revision, counting and emptying
-- what gmv stores (gmv_sql/db/catalog.py lists it), the embedded server, creating a database afresh.
-- {table}/{tables}/{view}/{database}/{name}/{value} are filled in by gmv_sql.db from fixed identifiers and
-- space ids, never from user text.

-- name: server_version
SHOW server_version

-- name: pgvector_versions
-- (installed in this database, available on the server)
SELECT (SELECT extversion FROM pg_extension WHERE extname = 'vector') AS installed,
       (SELECT default_version FROM pg_available_extensions WHERE name = 'vector') AS available

-- name: has_alembic_version
SELECT to_regclass('public.alembic_version') IS NOT NULL

-- name: alembic_version
SELECT version_num FROM public.alembic_version

-- name: count_rows
-- {table}: a qualified table name (gmv_sql.db.catalog.qualified).
SELECT count(*) FROM {table}

-- name: lock_tables
-- Taken first by `gmv db reset`: no stage writes between counting the rows and emptying the tables.
LOCK TABLE {tables} IN ACCESS EXCLUSIVE MODE

-- name: drop_table
DROP TABLE IF EXISTS {table}

-- name: truncate_tables
-- No CASCADE: a table that references these and is missing from the catalog makes this fail loudly
-- instead of being emptied unnoticed.
TRUNCATE {tables} RESTART IDENTITY

-- name: alter_system
-- {name}: a setting name (identifier), {value}: its value (literal); the embedded server only.
ALTER SYSTEM SET {name} = {value}

-- name: database_exists
SELECT EXISTS (SELECT FROM pg_database WHERE datname = %(name)s)

-- name: drop_database
DROP DATABASE IF EXISTS {database} WITH (FORCE)

-- name: create_database
-- {database}: the database name, as an identifier.
CREATE DATABASE {database}

-- name: reload_conf
-- After gmv rewrote the embedded server's pg_hba.conf.
SELECT pg_reload_conf()
