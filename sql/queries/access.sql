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
