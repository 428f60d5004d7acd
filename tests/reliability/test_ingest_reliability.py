"""`gmv ingest` under concurrency and crashes: two processes on overlapping folders store each image
exactly once; SIGKILL mid-run plus a re-run ends in the same rows as one uninterrupted run."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import psycopg
import pytest

from tests.factories import query_fingerprint, sha256, write_image

TRAINING_ROWS = """
SELECT t.sha256, t.uri, o.name, l.name, t.width, t.height, t.attributes::text, t.opted_out
FROM gmv.training_image t JOIN gmv.owner o USING (owner_id) JOIN gmv.license l USING (license_id)
"""
GENERATED_ROWS = """
SELECT g.sha256, g.uri, gen.name, r.name, g.quality, g.prompt, g.width, g.height, g.attributes::text,
       g.created_at
FROM gmv.generated_image g JOIN gmv.generation_run r USING (run_id) JOIN gmv.generator gen USING (generator_id)
"""


def _images(folder: Path, start: int, n: int, *, reverse_names: bool = False) -> list[Path]:
    paths = []
    for i in range(start, start + n):
        name = f"{(10**6 - i) if reverse_names else i:07d}.png"
        paths.append(write_image(folder / name, seed=i))
    return paths


def _count(url: str, table: str) -> int:
    with psycopg.connect(url, autocommit=True) as conn:
        return conn.execute(f"SELECT count(*) FROM gmv.{table}").fetchone()[0]


@pytest.mark.timeout(180)
@pytest.mark.parametrize("overlap", ["subfolder", "reversed-copies"])
def test_two_ingests_on_overlapping_folders_store_each_image_once(gmv, tmp_path, overlap):
    root = tmp_path / "root"
    _images(root / "a", 0, 300)
    _images(root / "b", 300, 300)
    if overlap == "subfolder":
        second = root / "b"
    else:  # the same bytes under other names, in the opposite order: rows are claimed in opposite orders
        second = tmp_path / "mirror"
        for i, path in enumerate(sorted(root.rglob("*.png"))):
            (second).mkdir(exist_ok=True)
            shutil.copyfile(path, second / f"{10**6 - i:07d}.png")
    expected = {sha256(p) for p in root.rglob("*.png")}
    args = ("--owner", "alice", "--license", "cc-by", "--batch-size", "7", "--workers", "1", "-q")
    procs = [
        gmv.popen(
            "ingest", "training", folder, *args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for folder in (root, second)
    ]
    outputs = [p.communicate(timeout=150) for p in procs]
    for proc, (out, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, f"exit {proc.returncode}: {out}\n{err}"
        assert "Traceback" not in err
    with psycopg.connect(gmv.url, autocommit=True) as conn:
        rows = conn.execute("SELECT sha256, count(*) FROM gmv.training_image GROUP BY sha256").fetchall()
        assert {sha for sha, _ in rows} == expected
        assert all(n == 1 for _, n in rows)
        assert conn.execute("SELECT count(*) FROM gmv.owner").fetchone() == (1,)
        assert conn.execute("SELECT count(*) FROM gmv.license").fetchone() == (1,)


def _kill_when_rows_appear(proc: subprocess.Popen, url: str, table: str, total: int) -> int:
    """SIGKILL the process once a third of the rows are committed (mid-run); returns the count then."""
    deadline = time.monotonic() + 120
    with psycopg.connect(url, autocommit=True) as conn:
        while time.monotonic() < deadline and proc.poll() is None:
            n = conn.execute(f"SELECT count(*) FROM gmv.{table}").fetchone()[0]
            if n >= total // 3:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(timeout=30)
                return n
            time.sleep(0.005)
    proc.kill()
    proc.wait(timeout=30)
    pytest.fail(f"the ingest ended (exit {proc.returncode}) before it could be killed mid-run")


@pytest.mark.timeout(240)
@pytest.mark.parametrize("kind", ["training", "generated"])
def test_sigkill_mid_ingest_then_rerun_equals_uninterrupted_run(gmv, fresh_gmv, tmp_path, kind):
    n = 1200
    folder = tmp_path / "images"
    paths = _images(folder, 0, n)
    manifest = folder / "manifest.jsonl"
    import json

    with manifest.open("w") as fh:
        for i, p in enumerate(paths):
            if kind == "training":
                record = {"path": p.name, "owner": f"owner-{i % 3}", "license": "cc-by", "batch": i % 5}
            else:
                record = {
                    "path": p.name,
                    "quality": 0.5 + i % 4,
                    "created_at": f"2026-0{1 + i % 3}-15T10:00:00Z",
                    "prompt": f"prompt {i}",
                }
            fh.write(json.dumps(record) + "\n")
    args = ["ingest", kind, folder, "--manifest", manifest, "--batch-size", "5", "--workers", "1", "-q"]
    if kind == "generated":
        args += ["--generator", "ddpm", "--run", "r1"]
    table = "training_image" if kind == "training" else "generated_image"
    rows_query = TRAINING_ROWS if kind == "training" else GENERATED_ROWS

    proc = gmv.popen(*args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    at_kill = _kill_when_rows_appear(proc, gmv.url, table, n)
    assert proc.returncode == -signal.SIGKILL
    assert n // 3 <= at_kill < n, at_kill
    after_kill = _count(gmv.url, table)
    assert after_kill < n and after_kill % 5 == 0  # whole batches only, never half of one
    print(f"\ningest {kind}: SIGKILL with {after_kill}/{n} images stored")
    gmv.run(*args, timeout=180)
    fresh_gmv.run(*args, timeout=180)
    with psycopg.connect(gmv.url) as resumed, psycopg.connect(fresh_gmv.url) as reference:
        assert query_fingerprint(resumed, rows_query) == query_fingerprint(reference, rows_query)
        assert _count(gmv.url, table) == n
        for small in ("owner", "license", "generator", "generation_run"):
            q = f"SELECT name FROM gmv.{small}"
            assert query_fingerprint(resumed, q) == query_fingerprint(reference, q)
