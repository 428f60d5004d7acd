"""Alembic environment for gmv_sql. Run migrations with `gmv db up`, which hands us a connection."""

from alembic import context
from sqlalchemy import text

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("gmv_sql migrations run through `gmv db up` (gmv_sql.db.migrate), not the alembic CLI")

context.configure(connection=connection, target_metadata=None, transaction_per_migration=False)
with context.begin_transaction():
    # Two gmv processes may migrate the same fresh database at once: serialise them.
    connection.execute(text("SELECT pg_advisory_xact_lock(hashtext('gmv_sql.migrate'))"))
    context.run_migrations()
