"""`gmv match` and `gmv match recall` end to end, including Ctrl-C and re-run."""

from __future__ import annotations

import json
import signal
import time

import numpy as np
from psycopg import sql

from tests.factories import numpy_knn, seed


def test_match_then_rerun_does_nothing(gmv, conn):
    seed(conn, n_training=200, n_generated=30, dim=8)
    # --batch is the first release's spelling of --batch-size, kept as a hidden alias.
    out = gmv("match", "--space", "test", "--k", "5", "--workers", "2", "--batch", "7").output
    assert "matched 30 generated images in space 'test' (k=5, HNSW, ef_search=100" in out
    assert "150 rows" in out and "next: gmv value refresh" in out
    assert conn.execute("SELECT count(*), count(DISTINCT generated_id) FROM gmv.match").fetchone() == (
        150,
        30,
    )
    again = gmv("match", "--space", "test").output  # k defaults to the space's k
    assert "matched 0 generated images" in again
    assert conn.execute("SELECT count(*) FROM gmv.match").fetchone() == (150,)


def test_other_k_needs_rematch(gmv, conn):
    seed(conn, n_training=50, n_generated=5, dim=8)
    gmv("match", "--space", "test", "--k", "3")
    result = gmv("match", "--space", "test", "--k", "4", ok=False)
    assert result.exit_code == 1
    message = result.output.strip().splitlines()
    assert len(message) == 1 and "k=3" in message[0] and "--rematch" in message[0]
    out = gmv("match", "--space", "test", "--k", "4", "--rematch").output
    assert "matched 5 generated images" in out and "(k=4" in out
    assert conn.execute("SELECT count(*), min(k) FROM gmv.match").fetchone() == (20, 4)


def test_exact_flag_marks_rows(gmv, conn):
    seed(conn, n_training=40, n_generated=6, dim=4)
    assert "exact search" in gmv("match", "--space", "test", "--k", "2", "--exact").output
    assert conn.execute("SELECT bool_and(exact), count(*) FROM gmv.match").fetchone() == (True, 12)


def test_errors_are_one_line(gmv, conn):
    seed(conn, n_training=20, n_generated=2, dim=4)
    for args, text in [
        (("match",), "needs --space"),
        (("match", "--space", "nope"), "no embedding space 'nope' (known: test)"),
        (
            ("match", "--space", "test", "--k", "10", "--ef-search", "3"),
            "--ef-search 3 is smaller than --k 10",
        ),
    ]:
        result = gmv(*args, ok=False)
        lines = result.output.strip().splitlines()
        assert result.exit_code == 1 and len(lines) == 1 and text in lines[0], (args, result.output)
    # Integer options are checked by click before anything runs: a usage error (exit 2) naming the option.
    for args, option in [
        (("match", "--space", "test", "--workers", "0"), "--workers"),
        (("match", "--space", "test", "--k", "0"), "--k"),
        (("match", "--space", "test", "--k", "1001"), "--k"),
        (("match", "--space", "test", "--batch-size", "0"), "--batch-size"),
        (("match", "--space", "test", "--ef-search", "5000"), "--ef-search"),
        (("match", "recall", "--space", "test", "--sample", "0"), "--sample"),
    ]:
        result = gmv(*args, ok=False)
        assert result.exit_code == 2 and f"Invalid value for '{option}'" in result.output, (
            args,
            result.output,
        )
    assert conn.execute("SELECT count(*) FROM gmv.match").fetchone() == (0,)


def test_recall_command(gmv, conn):
    seed(conn, n_training=300, n_generated=40, dim=16)
    rows = json.loads(
        gmv("match", "recall", "--space", "test", "--sample", "20", "--k", "10", "--format", "json").output
    )
    assert len(rows) == 1
    assert rows[0]["sample"] == 20 and rows[0]["k"] == 10 and rows[0]["ef_search"] == 100
    assert 0.9 <= rows[0]["recall"] <= 1.0
    table = gmv(
        "match", "recall", "--space", "test", "--sample", "5", "--ef-search", "10", "--k", "10"
    ).output
    assert "ef_search" in table.splitlines()[0]


def test_interrupt_keeps_committed_batches_and_rerun_finishes(gmv, conn):
    seed(conn, n_training=2000, n_generated=1500, dim=32)
    # Each batch's insert takes at least 20 ms (a statement trigger of this test's database), so the run
    # is still going when the signal arrives however fast the machine is.
    conn.execute(
        "CREATE FUNCTION public.slow_down() RETURNS trigger LANGUAGE plpgsql AS"
        " $$ BEGIN PERFORM pg_sleep(0.02); RETURN NULL; END $$"
    )
    conn.execute(
        "CREATE TRIGGER slow_down AFTER INSERT ON gmv.match FOR EACH STATEMENT EXECUTE FUNCTION public.slow_down()"
    )
    proc = gmv.popen(
        "match",
        "--space",
        "test",
        "--k",
        "4",
        "--exact",
        "--batch-size",
        "1",
        "--workers",
        "1",
        stdout=-1,
        stderr=-1,
        text=True,
    )
    deadline = time.monotonic() + 60
    while conn.execute("SELECT count(*) FROM gmv.match").fetchone()[0] == 0:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "run the same command again" in err
    done = conn.execute("SELECT count(*), count(DISTINCT generated_id) FROM gmv.match").fetchone()
    assert 0 < done[1] < 1500 and done[0] == 4 * done[1]  # whole batches only
    out = gmv.run("match", "--space", "test", "--exact", "--batch-size", "300").stdout
    assert f"matched {1500 - done[1]:,} generated images" in out
    assert conn.execute("SELECT count(*), count(DISTINCT generated_id) FROM gmv.match").fetchone() == (
        6000,
        1500,
    )


def test_space_without_training_vectors_says_so(gmv, conn):
    seed(
        conn,
        n_training=0,
        n_generated=3,
        dim=4,
        training_vectors=np.zeros((0, 4)),
        generated_vectors=np.ones((3, 4)),
    )
    out = gmv("match", "--space", "test").output
    assert "matched 0 generated images" in out and "no training image in space 'test' can be matched" in out


def test_images_the_index_under_serves_are_matched_exactly(gmv, conn):
    """Thousands of opted-out images sit right on the queries and the server gives the iterative
    index scan almost no memory (work_mem 64kB), so the walk stops before k eligible rows: gmv match
    redoes those images with an exact search and says so."""
    rng = np.random.default_rng(5)
    dim, n_near = 8, 3000
    centre = np.ones(dim, dtype=np.float32)
    near = centre + 0.01 * rng.normal(size=(n_near, dim)).astype(np.float32)
    far = -centre + 0.3 * rng.normal(size=(40, dim)).astype(np.float32)
    training = np.vstack([near, far])
    generated = centre + 0.01 * rng.normal(size=(6, dim)).astype(np.float32)
    eligible = np.arange(len(training)) >= n_near
    world = seed(conn, training_vectors=training, generated_vectors=generated, opted_out=~eligible)
    conn.execute(sql.SQL("ALTER DATABASE {} SET work_mem = '64kB'").format(sql.Identifier(conn.info.dbname)))
    out = gmv("match", "--space", "test", "--k", "10", "--ef-search", "10").output
    assert "6 images got too few rows from the index and were matched exactly" in out
    order, _ = numpy_knn(training, generated, 10, eligible=eligible)
    for j, g in enumerate(world["generated_ids"]):
        stored = [
            r[0]
            for r in conn.execute(
                "SELECT training_id FROM gmv.match WHERE generated_id = %s ORDER BY rank", (int(g),)
            )
        ]
        assert stored == list(world["training_ids"][order[j]])
    assert conn.execute("SELECT bool_and(exact) FROM gmv.match").fetchone() == (True,)
