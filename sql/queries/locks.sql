-- Advisory locks (gmv_sql.db.locks): two int4 keys, (stage key, space_id).

-- name: try_lock
SELECT pg_try_advisory_lock(%(key)s, %(id)s)

-- name: try_xact_lock
SELECT pg_try_advisory_xact_lock(%(key)s, %(id)s)

-- name: unlock
SELECT pg_advisory_unlock(%(key)s, %(id)s)

-- name: xact_lock
SELECT pg_advisory_xact_lock(%(key)s, %(id)s)
