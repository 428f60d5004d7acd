-- The database as a whole: counting and emptying what gmv stores (gmv_sql/db/catalog.py lists it),
-- and creating a database afresh (the demo's). {table}/{tables}/{view}/{database} are filled in by
-- gmv_sql/db/catalog.py and gmv_sql/db/reset.py from fixed identifiers and space ids, never from user text.

-- name: count_rows
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

-- name: refresh_view
-- Not CONCURRENTLY: the reset holds every data table exclusively anyway, and the views become empty.
REFRESH MATERIALIZED VIEW {view}

-- name: drop_database
DROP DATABASE IF EXISTS {database} WITH (FORCE)

-- name: create_database
CREATE DATABASE {database}
