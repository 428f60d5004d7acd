"""SIGKILL of `gmv embed` and `gmv match` mid-run, then the same command again, ends in the same
state as one uninterrupted run in another fresh database (compared on sha256 natural keys, not on
identity values or timestamps). `gmv value refresh` killed mid-run leaves the old credit intact."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import psycopg
import pytest

from gmv_sql.value.refresh import refresh
from tests.factories import add_images_from_files, fingerprint, query_fingerprint, seed, write_image


def _kill_when(proc: subprocess.Popen, url: str, count_sql: str, *, at_least: int = 1) -> int:
    """SIGKILL proc once count_sql reports at_least rows; fails if the command ended first."""
    deadline = time.monotonic() + 150
    with psycopg.connect(url, autocommit=True) as conn:
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                n = conn.execute(count_sql).fetchone()[0]
            except psycopg.errors.UndefinedTable:  # the space's tables are not created yet
                n = 0
            if n >= at_least:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(timeout=30)
                return n
            time.sleep(0.005)
    if proc.poll() is None:
        proc.kill()
    proc.wait(timeout=30)
    pytest.fail(f"the command ended (exit {proc.returncode}) before it could be killed mid-run")


# ---------------------------------------------------------------------------------------- embed

N_TRAINING = 4300  # more than one 4,096-row commit of `gmv embed`, so a kill can land between commits
N_GENERATED = 1500


def _images_in_both(tmp_path, urls: list[str]) -> None:
    """The same ingested images (files on disk, rows with their sha256) in every database."""
    folder = tmp_path / "images"
    files = {
        kind: [write_image(folder / kind / f"{i:05d}.png", seed=i + offset) for i in range(n)]
        for kind, n, offset in (("training", N_TRAINING, 0), ("generated", N_GENERATED, 10**6))
    }
    for url in urls:
        with psycopg.connect(url, autocommit=True) as conn:
            add_images_from_files(conn, files["training"], files["generated"])


def _embedding_state(conn) -> dict:
    space = conn.execute(
        "SELECT space_id, name, model, weights_sha256, preprocessing::text, dim, storage, distance, hnsw_m,"
        " hnsw_ef_construction FROM gmv.embedding_space"
    ).fetchall()
    assert len(space) == 1
    space_id = space[0][0]
    state = {"space": space[0][1:]}
    for kind, key in (("training", "training_id"), ("generated", "generated_id")):
        state[kind] = query_fingerprint(
            conn,
            f"SELECT i.sha256, e.embedding::text FROM gmv.{kind}_embedding_{space_id} e"
            f" JOIN gmv.{kind}_image i USING ({key})",
        )
    state["indexes"] = sorted(
        r[0].replace(f"_{space_id}", "_N")
        for r in conn.execute(
            "SELECT indexdef FROM pg_indexes WHERE schemaname = 'gmv' AND tablename LIKE '%%embedding%%'"
        )
    )
    return state


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_sigkill_mid_embed_then_rerun_equals_uninterrupted_run(gmv, fresh_gmv, tmp_path):
    _images_in_both(tmp_path, [gmv.url, fresh_gmv.url])
    args = ("embed", "--space", "px", "--model", "pixels", "--batch-size", "256", "--workers", "0", "-q")
    proc = gmv.popen(*args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    at_kill = _kill_when(proc, gmv.url, "SELECT count(*) FROM gmv.training_embedding_1")
    assert proc.returncode == -signal.SIGKILL
    with psycopg.connect(gmv.url, autocommit=True) as conn:
        stored = conn.execute("SELECT count(*) FROM gmv.training_embedding_1").fetchone()[0]
        generated = conn.execute("SELECT count(*) FROM gmv.generated_embedding_1").fetchone()[0]
    assert 0 < at_kill == stored < N_TRAINING and generated < N_GENERATED  # killed between commits
    print(
        f"\nembed: SIGKILL with {stored}/{N_TRAINING} training and {generated}/{N_GENERATED} generated vectors stored"
    )
    gmv.run(*args, timeout=240)
    fresh_gmv.run(*args, timeout=240)
    with psycopg.connect(gmv.url) as resumed, psycopg.connect(fresh_gmv.url) as reference:
        state = _embedding_state(resumed)
        assert state == _embedding_state(reference)
        assert state["training"][0] == N_TRAINING and state["generated"][0] == N_GENERATED
        assert any("hnsw" in ix for ix in state["indexes"])


# ---------------------------------------------------------------------------------------- match

MATCH_ROWS = """
SELECT g.sha256, m.rank, t.sha256, m.distance, m.k, m.exact
FROM gmv.match m JOIN gmv.generated_image g USING (generated_id) JOIN gmv.training_image t USING (training_id)
"""


@pytest.mark.timeout(240)
@pytest.mark.parametrize("exact", [True, False], ids=["exact", "hnsw"])
def test_sigkill_mid_match_then_rerun_equals_uninterrupted_run(gmv, fresh_gmv, exact):
    n_generated, k = 900, 5
    for url in (gmv.url, fresh_gmv.url):
        with psycopg.connect(url) as conn:
            from pgvector.psycopg import register_vector

            register_vector(conn)
            seed(conn, n_training=1000, n_generated=n_generated, dim=16, space="rel", k=k, with_matches=False)
    args = ["match", "--space", "rel", "--k", str(k), "--batch-size", "10", "--workers", "2"]
    if exact:
        args.append("--exact")
    proc = gmv.popen(*args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    at_kill = _kill_when(proc, gmv.url, "SELECT count(*) FROM gmv.match", at_least=n_generated * k // 3)
    assert proc.returncode == -signal.SIGKILL
    with psycopg.connect(gmv.url, autocommit=True) as conn:
        partial = conn.execute("SELECT count(*), count(DISTINCT generated_id) FROM gmv.match").fetchone()
    assert 0 < at_kill <= partial[0] < n_generated * k
    assert partial[0] == partial[1] * k  # whole generated images only: never some of an image's k rows
    print(
        f"\nmatch ({'exact' if exact else 'hnsw'}): SIGKILL with {partial[1]}/{n_generated} generated images matched"
    )
    gmv.run(*args, timeout=180)
    fresh_gmv.run(*args, timeout=180)
    with psycopg.connect(gmv.url) as resumed, psycopg.connect(fresh_gmv.url) as reference:
        shape = "SELECT count(*), count(DISTINCT generated_id), min(rank), max(rank) FROM gmv.match"
        assert resumed.execute(shape).fetchone() == (n_generated * k, n_generated, 1, k)
        assert resumed.execute("SELECT match_k FROM gmv.embedding_space").fetchone() == (k,)
        if exact:
            assert query_fingerprint(resumed, MATCH_ROWS) == query_fingerprint(reference, MATCH_ROWS)
        else:
            # HNSW graphs are built with random levels, so two databases may pick different
            # neighbours at the recall margin; every (image, rank) slot is filled exactly once in both.
            slots = "SELECT g.sha256, m.rank FROM gmv.match m JOIN gmv.generated_image g USING (generated_id)"
            assert query_fingerprint(resumed, slots) == query_fingerprint(reference, slots)


# ---------------------------------------------------------------------------------------- refresh


@pytest.mark.timeout(120)
def test_sigkill_mid_refresh_keeps_the_old_credit_then_rerun_publishes(gmv, conn):
    from tests.factories import add_generated

    seeded = seed(conn, n_training=1000, n_generated=600, dim=16, k=10)
    refresh(conn)
    old = fingerprint(conn, "training_credit")
    add_generated(conn, seeded, 300, start=0)
    proc = gmv.popen("value", "refresh", stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    # Kill once the server is executing the refresh (the command's connection is active).
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        active = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE query ILIKE '%%gmv.refresh_credit()%%'"
            " AND state = 'active' AND pid <> pg_backend_pid()"
        ).fetchone()[0]
        if active:
            os.kill(proc.pid, signal.SIGKILL)
            break
        time.sleep(0.002)
    proc.wait(timeout=30)
    if proc.returncode != -signal.SIGKILL:
        pytest.skip("refresh finished before it could be killed (machine too fast for this probe)")
    # The server notices the lost client at the end of the statement and rolls the refresh back
    # (or, had the commit gone through, the view is wholly new): old or new, never a mix.
    deadline = time.monotonic() + 60
    while (
        conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE query ILIKE '%%gmv.refresh_credit()%%' AND pid <> pg_backend_pid()"
            " AND state <> 'idle'"
        ).fetchone()[0]
        and time.monotonic() < deadline
    ):
        time.sleep(0.05)
    after_kill = fingerprint(conn, "training_credit")
    print(
        f"\nrefresh: SIGKILL during the refresh; credit after the kill is {'old' if after_kill == old else 'new'}"
    )
    gmv.run("value", "refresh", timeout=90)
    new = fingerprint(conn, "training_credit")
    assert new != old
    assert after_kill in (old, new)
    total = conn.execute(
        "SELECT sum(value) FROM gmv.training_credit c JOIN gmv.valuation_scheme s USING (scheme_id)"
        " WHERE s.is_default"
    ).fetchone()[0]
    expected = conn.execute("SELECT sum(quality) FROM gmv.generated_image").fetchone()[0]
    assert abs(total - expected) < 1e-6
