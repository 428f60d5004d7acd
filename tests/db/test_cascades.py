"""gmv.match and the per-space vector tables have no per-row foreign keys (they cost ~25% of the
matching rate and ~35% of the COPY rate); statement-level triggers (migration 0003) cascade deletes
and truncates of images and spaces into them, and a delete waits for a running gmv embed / embed
import / match so rows those are writing cannot outlive their image."""

from __future__ import annotations

import importlib.util
import re
import threading
import time
from functools import partial

import numpy as np
import psycopg
import pytest
from psycopg import sql

from gmv_sql.db.connect import connect
from gmv_sql.db.locks import EMBED as EMBED_LOCK_KEY
from gmv_sql.db.locks import MATCH as MATCH_LOCK_KEY
from gmv_sql.match import matcher
from gmv_sql.resources import migrations_dir, sql_dir
from tests.factories import seed


def _matched(conn, db_url):
    world = seed(conn, n_training=40, n_generated=6, dim=8, seed=5)
    matcher.match_space(partial(connect, db_url), world["space"], k=3, exact=True, workers=1)
    return world


def _count(conn, table: str | sql.Composable = "gmv.match", where: str = "true", params=()) -> int:
    table = sql.SQL(table) if isinstance(table, str) else table
    return conn.execute(
        sql.SQL("SELECT count(*) FROM {} WHERE ").format(table) + sql.SQL(where), params
    ).fetchone()[0]


def test_no_foreign_keys_but_cascade_triggers(conn, db_url):
    world = _matched(conn, db_url)
    space = world["space"]
    for table in (
        "gmv.match",
        f"gmv.training_embedding_{space.space_id}",
        f"gmv.generated_embedding_{space.space_id}",
    ):
        kinds = {
            r[0]
            for r in conn.execute("SELECT contype FROM pg_constraint WHERE conrelid = %s::regclass", (table,))
        }
        assert "f" not in kinds, table
    triggers = conn.execute(
        "SELECT tgrelid::regclass::text, tgname FROM pg_trigger WHERE tgname LIKE 'cascade_%' ORDER BY 1, 2"
    ).fetchall()
    assert len(triggers) == 6, triggers


def test_deleting_images_and_spaces_deletes_their_matches_and_vectors(conn, db_url):
    world = _matched(conn, db_url)
    space = world["space"]
    assert _count(conn) == 18
    victim = conn.execute("SELECT training_id FROM gmv.match WHERE rank = 1 LIMIT 1").fetchone()[0]
    conn.execute("DELETE FROM gmv.training_image WHERE training_id = %s", (victim,))
    assert _count(conn, where="training_id = %s", params=(victim,)) == 0
    assert _count(conn, space.table("training"), "training_id = %s", (victim,)) == 0
    assert _count(conn, space.table("training")) == 39
    left = _count(conn)
    assert 0 < left < 18
    g = int(world["generated_ids"][0])
    conn.execute("DELETE FROM gmv.generated_image WHERE generated_id = %s", (g,))
    assert _count(conn, where="generated_id = %s", params=(g,)) == 0 and _count(conn) < left
    assert _count(conn, space.table("generated")) == 5
    conn.execute("DELETE FROM gmv.embedding_space WHERE space_id = %s", (space.space_id,))
    assert _count(conn) == 0


@pytest.mark.parametrize("table", ["training_image", "generated_image", "generated_image, gmv.match"])
def test_truncate_cascades(conn, db_url, table):
    world = _matched(conn, db_url)
    conn.execute(f"TRUNCATE gmv.{table} CASCADE")  # naming gmv.match as well must work too
    kind = table.split("_")[0]
    assert _count(conn) == 0
    assert _count(conn, world["space"].table(kind)) == 0


@pytest.mark.parametrize("writer", ["match", "embed"])
def test_delete_waits_for_a_running_writer_so_no_orphan_survives(conn, db_url, writer):
    """A running gmv match (or embed) holds its advisory lock and writes a row for an image after a
    delete of that image started (it read the image just before): the delete must wait and take it along."""
    world = _matched(conn, db_url)
    space = world["space"]
    victim = int(world["training_ids"][0])
    g = int(world["generated_ids"][0])
    key = MATCH_LOCK_KEY if writer == "match" else EMBED_LOCK_KEY
    with connect(db_url, autocommit=True) as running:
        assert running.execute("SELECT pg_try_advisory_lock(%s, %s)", (key, space.space_id)).fetchone()[0]
        running.execute(
            "DELETE FROM gmv.match WHERE training_id = %s OR (generated_id = %s AND rank = 3)", (victim, g)
        )
        vector = running.execute(
            sql.SQL("DELETE FROM {} WHERE training_id = %s RETURNING embedding").format(
                space.table("training")
            ),
            (victim,),
        ).fetchone()[0]
        done = threading.Event()
        errors: list[BaseException] = []

        def delete() -> None:
            try:
                with psycopg.connect(db_url, autocommit=True) as deleter:
                    deleter.execute("DELETE FROM gmv.training_image WHERE training_id = %s", (victim,))
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)
            done.set()

        thread = threading.Thread(target=delete)
        thread.start()
        waiting = _waiting_on(conn, running.info.backend_pid, "DELETE FROM gmv.training_image%")
        assert waiting is not None and not done.is_set(), "the delete did not wait for the running writer"
        # It waits for exactly the writer's lock: (key, space), not granted, held by `running`.
        assert conn.execute(
            "SELECT classid::bigint, objid::bigint, granted FROM pg_locks WHERE pid = %s AND locktype = 'advisory'"
            " AND NOT granted",
            (waiting,),
        ).fetchall() == [(key, space.space_id, False)]
        if writer == "match":
            running.execute(
                "INSERT INTO gmv.match (space_id, generated_id, rank, training_id, distance, k) VALUES (%s, %s, 3, %s, 0.5, 3)",
                (space.space_id, g, victim),
            )
        else:
            running.execute(
                sql.SQL("INSERT INTO {} (training_id, embedding) VALUES (%s, %s)").format(
                    space.table("training")
                ),
                (victim, vector),
            )
        running.execute("SELECT pg_advisory_unlock(%s, %s)", (key, space.space_id))
        thread.join(10)
    assert done.is_set() and not errors, errors
    assert _count(conn, where="training_id = %s", params=(victim,)) == 0
    assert _count(conn, space.table("training"), "training_id = %s", (victim,)) == 0


def _waiting_on(conn, blocker_pid: int, query_like: str, timeout: float = 10) -> int | None:
    """The pid of a backend running query_like that waits on an advisory lock blocker_pid holds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        row = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND wait_event = 'advisory'"
            " AND query LIKE %s AND %s = ANY(pg_blocking_pids(pid))",
            (query_like, blocker_pid),
        ).fetchone()
        if row:
            return row[0]
        time.sleep(0.05)
    return None


def test_import_refuses_while_gmv_embed_writes_the_space(conn, db_url, tmp_path):
    from gmv_sql.embed.importer import import_vectors
    from gmv_sql.errors import ConflictError

    world = seed(conn, n_training=4, n_generated=0, dim=3, seed=2)
    shas = [r[0] for r in conn.execute("SELECT sha256 FROM gmv.training_image ORDER BY training_id")]
    np.save(tmp_path / "v.npy", np.ones((4, 3), dtype=np.float32))
    (tmp_path / "ids.txt").write_text("\n".join(shas) + "\n")
    with connect(db_url, autocommit=True) as embedding:
        embedding.execute("SELECT pg_advisory_lock(%s, %s)", (EMBED_LOCK_KEY, world["space"].space_id))
        with pytest.raises(ConflictError, match="writing vectors of space 'test'"):
            import_vectors(conn, tmp_path / "v.npy", world["space"].name, ids_file=tmp_path / "ids.txt")


def _migration():
    path = next((migrations_dir() / "versions").glob("0003_*.py"))
    spec = importlib.util.spec_from_file_location("m0003", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_migration_lock_keys_are_the_writers():
    module = _migration()
    assert (module.MATCH_LOCK_KEY, module.EMBED_LOCK_KEY) == (MATCH_LOCK_KEY, EMBED_LOCK_KEY)
    # The source of the cascades waits for the same keys, in this order (sql/derived/05_cascades.sql).
    cascades = (sql_dir() / "derived" / "05_cascades.sql").read_text()
    waited = [int(key) for key in re.findall(r"pg_advisory_xact_lock\((\d+), e\.space_id\)", cascades)]
    assert waited == [EMBED_LOCK_KEY, MATCH_LOCK_KEY]
