"""Two copies of the same stage at once (a cron job overlapping a manual run): `gmv match`,
`gmv embed` and `gmv value refresh` end with nothing doubled and nothing missing; each process
either succeeds or stops with one line (never a traceback)."""

from __future__ import annotations

import subprocess

import pytest

from tests.factories import add_images_from_files, seed, write_image

pytestmark = pytest.mark.timeout(180)


def _both(gmv, *args: str) -> list[subprocess.CompletedProcess]:
    procs = [gmv.popen(*args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=150)
        results.append(subprocess.CompletedProcess(proc.args, proc.returncode, out, err))
    print(
        f"\n{args[0]}: two at once exited {[r.returncode for r in results]}; {[r.stderr.strip().splitlines()[-1:] for r in results if r.returncode]}"
    )
    for r in results:
        assert "Traceback" not in r.stderr, r.stderr[-3000:]
        if r.returncode != 0:
            lines = [line for line in r.stderr.splitlines() if line.strip()]
            assert r.returncode == 1 and lines[-1].startswith("Error: "), r.stderr[-2000:]
    return results


def test_two_matches_at_once(gmv, conn):
    n_generated, k = 800, 5
    seed(conn, n_training=800, n_generated=n_generated, dim=16, space="rel", k=k, with_matches=False)
    results = _both(gmv, "match", "--space", "rel", "--k", str(k), "--batch-size", "20", "--workers", "2")
    if any(r.returncode for r in results):
        gmv.run(
            "match", "--space", "rel", "--k", str(k)
        )  # whoever stopped: the same command finishes the job
    shape = conn.execute(
        "SELECT count(*), count(DISTINCT generated_id), count(DISTINCT (generated_id, rank)) FROM gmv.match"
    ).fetchone()
    assert shape == (n_generated * k, n_generated, n_generated * k)


def test_two_embeds_at_once(gmv, conn, tmp_path):
    folder = tmp_path / "images"
    paths = [write_image(folder / f"{i:04d}.png", seed=i) for i in range(600)]
    add_images_from_files(conn, paths)
    results = _both(gmv, "embed", "--space", "px", "--model", "pixels", "--workers", "0", "-q")
    if any(r.returncode for r in results):
        gmv.run("embed", "--space", "px", "--model", "pixels", "--workers", "0", "-q")
    assert conn.execute("SELECT count(*) FROM gmv.embedding_space").fetchone() == (1,)
    space_id = conn.execute("SELECT space_id FROM gmv.embedding_space").fetchone()[0]
    assert conn.execute(
        f"SELECT count(*), count(DISTINCT training_id) FROM gmv.training_embedding_{space_id}"
    ).fetchone() == (600, 600)


def test_two_refreshes_at_once(gmv, conn):
    seed(conn, n_training=500, n_generated=300, dim=8, k=5)
    results = _both(gmv, "value", "refresh")
    assert all(r.returncode == 0 for r in results), [r.stderr for r in results]
    total = conn.execute(
        "SELECT sum(value) FROM gmv.training_credit JOIN gmv.valuation_scheme USING (scheme_id) WHERE is_default"
    ).fetchone()[0]
    assert abs(total - conn.execute("SELECT sum(quality) FROM gmv.generated_image").fetchone()[0]) < 1e-6
