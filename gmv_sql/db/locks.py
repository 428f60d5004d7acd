"""Advisory locks: the keys every writer and the cascade triggers agree on, and the one way to take them.

Per-space locks are two int4 keys (stage key, space_id). sql/derived/05_cascades.sql waits for the
same keys before deleting images (tests/db/test_cascades.py checks that the numbers agree).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import psycopg

from gmv_sql.errors import ConflictError
from gmv_sql.resources import query

EMBED = 0x656D62  # "emb": gmv embed and gmv embed import, one writer of a space's vectors at a time
MATCH = 0x6D6174  # "mat": gmv match, one run per space at a time
SPACES = 0x737063  # "spc": creating an embedding space (second key 0); concurrent creators queue
LEDGER = 0x6C6467  # "ldg": issuing statements of a space (second key space_id); issuers queue
CREDIT = 0x637264  # "crd": gmv.refresh_credit() (second key 0; the number is written there too)

# What a held lock means, for the error message.
_BUSY = {
    EMBED: "gmv embed or another import is writing vectors of",
    MATCH: "another gmv match or gmv index build is running for",
}


@contextmanager
def space_lock(conn: psycopg.Connection, key: int, space, *, transaction: bool = False) -> Iterator[None]:
    """Hold advisory lock (key, space.space_id) or fail at once with a one-line ConflictError.

    transaction=False: a session lock, released when the block ends (conn must be autocommit, so
    the block can open its own transactions). transaction=True: released at the end of the caller's
    transaction (call inside conn.transaction()).
    """
    ids = {"key": key, "id": space.space_id}
    if not conn.execute(query("locks", "try_xact_lock" if transaction else "try_lock"), ids).fetchone()[0]:
        raise ConflictError(
            f"{_BUSY.get(key, 'another gmv command is using')} space {space.name!r} (or its images are being "
            "deleted); wait for it to finish, then run this again"
        )
    try:
        yield
    finally:
        if not transaction:
            conn.execute(query("locks", "unlock"), ids)


def wait_in_transaction(conn: psycopg.Connection, key: int, object_id: int = 0) -> None:
    """Queue for advisory lock (key, object_id) until the caller's transaction ends."""
    conn.execute(query("locks", "xact_lock"), {"key": key, "id": object_id})
