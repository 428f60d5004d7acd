-- Logins and their passwords (gmv_sql.db.access, gmv_sql.db.serve). {role} is an identifier and
-- {verifier} a SCRAM-SHA-256 verifier computed by libpq in the client: the plain password never
-- reaches the server.

-- name: role_exists
SELECT EXISTS (SELECT FROM pg_roles WHERE rolname = %(role)s)

-- name: set_password
ALTER ROLE {role} PASSWORD {verifier}

-- name: drop_password
ALTER ROLE {role} PASSWORD NULL

-- name: is_superuser
-- The serve proxy refuses these over TCP unless --admin (a missing role is not one).
SELECT coalesce((SELECT rolsuper FROM pg_roles WHERE rolname = %(role)s), false)

-- name: owner_id
SELECT owner_id FROM gmv.owner WHERE name = %(name)s

-- name: owner_login_of
-- The login role already mapped to this owner, if any.
SELECT role_name FROM gmv.owner_login WHERE owner_id = %(owner_id)s ORDER BY created_at LIMIT 1

-- name: role_facts
-- Whether a role exists, is one of gmv's owner logins (member of gmv_owners) and has powers an owner's
-- login must never have.
SELECT r.rolname IS NOT NULL AS role_exists,
       coalesce(pg_has_role(r.oid, 'gmv_owners', 'MEMBER'), false) AS is_owner_login,
       coalesce(r.rolsuper OR r.rolcreaterole OR r.rolcreatedb OR r.rolreplication OR r.rolbypassrls, false) AS powerful
FROM (SELECT %(role)s::text AS wanted) AS w
LEFT JOIN pg_roles AS r ON r.rolname = w.wanted

-- name: create_owner_role
CREATE ROLE {role} LOGIN IN ROLE gmv_owners

-- name: configure_owner_role
-- Like gmv_reader: read-only sessions, statements and idle transactions time out.
ALTER ROLE {role} SET default_transaction_read_only = on;
ALTER ROLE {role} SET statement_timeout = '60s';
ALTER ROLE {role} SET idle_in_transaction_session_timeout = '5min'

-- name: map_owner_login
INSERT INTO gmv.owner_login (role_name, owner_id) VALUES (%(role)s, %(owner_id)s)
ON CONFLICT (role_name) DO UPDATE SET owner_id = excluded.owner_id

-- name: owner_views
SELECT c.relname FROM pg_class AS c
WHERE c.relnamespace = 'owner_report'::regnamespace AND c.relkind = 'v' ORDER BY c.relname
