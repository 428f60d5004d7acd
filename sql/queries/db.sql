-- The database itself (gmv_sql.db): versions, migration revision, row counts, the embedded server.

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
-- {table}: a table of schema gmv, as an identifier.
SELECT count(*) FROM gmv.{table}

-- name: alter_system
-- {name}: a setting name (identifier), {value}: its value (literal); the embedded server only.
ALTER SYSTEM SET {name} = {value}

-- name: database_exists
SELECT EXISTS (SELECT FROM pg_database WHERE datname = %(name)s)

-- name: create_database
-- {name}: the database name, as an identifier.
CREATE DATABASE {name}
