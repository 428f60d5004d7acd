"""`gmv ingest` end to end on a real database: folders, manifests, bad input, conflicts, re-runs, kills."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import psycopg
import pytest

from tests.factories import sha256, write_image
from tests.unit.test_ingest_files import bad_files


def images(folder: Path, n: int, *, start: int = 0, suffix: str = ".png") -> list[Path]:
    return [write_image(folder / f"img{i:04d}{suffix}", size=(8, 8), seed=i) for i in range(start, start + n)]


def training_rows(conn) -> list[tuple]:
    return conn.execute(
        "SELECT t.sha256, t.uri, o.name, l.name, t.width, t.height, t.attributes FROM gmv.training_image t "
        "JOIN gmv.owner o USING (owner_id) JOIN gmv.license l USING (license_id) ORDER BY t.uri"
    ).fetchall()


def counts(conn) -> tuple[int, int, int, int]:
    return conn.execute(
        "SELECT (SELECT count(*) FROM gmv.training_image), (SELECT count(*) FROM gmv.generated_image),"
        " (SELECT count(*) FROM gmv.owner), (SELECT count(*) FROM gmv.license)"
    ).fetchone()


def test_folder_ingest_then_reingest_adds_nothing(gmv, conn, tmp_path):
    files = images(tmp_path / "imgs" / "sub", 5) + images(tmp_path / "imgs", 2, start=5, suffix=".jpg")
    (tmp_path / "imgs" / "readme.txt").write_text("not an image")
    first = gmv("ingest", "training", tmp_path / "imgs", "--owner", "alice", "--license", "cc-by", "-q")
    assert "7 new, 0 already present" in first.output
    assert "1 non-image files ignored" in first.output
    rows = training_rows(conn)
    assert sorted(r[0] for r in rows) == sorted(sha256(f) for f in files)
    assert {r[1] for r in rows} == {str(f.resolve()) for f in files}
    assert {(r[2], r[3], r[4], r[5]) for r in rows} == {("alice", "cc-by", 8, 8)}
    again = gmv("ingest", "training", tmp_path / "imgs", "--owner", "alice", "--license", "cc-by", "-q")
    assert "0 new, 7 already present" in again.output
    assert counts(conn) == (7, 0, 1, 1)


def test_manifest_ingest_with_attributes_and_duplicates(gmv, conn, tmp_path):
    files = images(tmp_path, 3)
    copy = tmp_path / "copy.png"
    copy.write_bytes(files[0].read_bytes())
    manifest = tmp_path / "m.csv"
    manifest.write_text(
        "path,owner,license,caption\n"
        f"{files[0].name},alice,cc-by,first\n{files[1].name},bob,cc0,second\n"
        f"{files[2].resolve()},bob,cc0,\ncopy.png,alice,cc-by,dup\n"
    )
    result = gmv("ingest", "training", tmp_path, "--manifest", manifest, "-q")
    assert "3 new, 0 already present, 1 duplicate files in the input" in result.output
    rows = {r[0]: r for r in training_rows(conn)}
    assert rows[sha256(files[0])][2:4] == ("alice", "cc-by")
    assert rows[sha256(files[0])][6] == {"caption": "first"}
    assert rows[sha256(files[2])][6] == {}
    assert rows[sha256(files[1])][2:4] == ("bob", "cc0")
    # PATH may also be the manifest itself (relative paths resolve against its folder).
    assert "0 new, 3 already present" in gmv("ingest", "training", manifest, "-q").output


def test_jsonl_manifest_for_training(gmv, conn, tmp_path):
    files = images(tmp_path, 2)
    manifest = tmp_path / "m.jsonl"
    manifest.write_text(
        "\n".join(json.dumps({"path": f.name, "owner": "o", "license": "l", "tags": ["x"]}) for f in files)
    )
    gmv("ingest", "training", tmp_path, "--manifest", manifest, "-q")
    assert [r[6] for r in training_rows(conn)] == [{"tags": ["x"]}, {"tags": ["x"]}]


def test_same_bytes_two_owners_is_a_conflict_naming_both(gmv, conn, tmp_path):
    files = images(tmp_path / "a", 3)
    gmv("ingest", "training", tmp_path / "a", "--owner", "alice", "--license", "cc", "-q")
    images(tmp_path / "b", 2, start=10)
    (tmp_path / "b" / "stolen.png").write_bytes(files[1].read_bytes())
    result = gmv("ingest", "training", tmp_path / "b", "--owner", "bob", "--license", "cc", "-q", ok=False)
    line = result.output.strip().splitlines()[-1]
    assert "'alice'" in line and "'bob'" in line and "stolen.png" in line
    assert counts(conn)[0] == 3  # nothing of the refused run was stored


def test_conflict_inside_one_manifest(gmv, conn, tmp_path):
    (f,) = images(tmp_path, 1)
    (tmp_path / "twin.png").write_bytes(f.read_bytes())
    manifest = tmp_path / "m.csv"
    manifest.write_text(f"path,owner,license\n{f.name},alice,cc\ntwin.png,bob,cc\n")
    result = gmv("ingest", "training", manifest, ok=False)
    assert "'alice'" in result.output and "'bob'" in result.output
    assert counts(conn) == (0, 0, 0, 0)


def test_bad_files_are_skipped_and_reported_one_line_each(gmv, conn, tmp_path):
    folder = tmp_path / "mixed"
    bad = bad_files(folder)
    good = images(folder, 3)
    result = gmv("ingest", "training", folder, "--owner", "alice", "--license", "cc", "-q")
    reported = [
        line for line in result.output.splitlines() if ": " in line and not line.startswith("training")
    ]
    assert len(reported) == len(bad), result.output
    for path, words in bad.values():
        assert any(line.startswith(f"{path}: ") and words in line for line in reported), (path, result.output)
    assert f"3 new, 0 already present, {len(bad)} bad (skipped)" in result.output
    assert sorted(r[0] for r in training_rows(conn)) == sorted(sha256(f) for f in good)


def test_on_error_fail_stores_nothing(gmv, conn, tmp_path):
    folder = tmp_path / "mixed"
    images(folder, 3)
    (folder / "zero.png").write_bytes(b"")
    result = gmv(
        "ingest", "training", folder, "--owner", "a", "--license", "l", "--on-error", "fail", "-q", ok=False
    )
    assert f"{folder / 'zero.png'}: zero-byte file" in result.output
    assert "nothing was stored" in result.output
    assert counts(conn) == (0, 0, 0, 0)


def test_broken_manifest_rows_are_reported(gmv, conn, tmp_path):
    images(tmp_path, 2)
    manifest = tmp_path / "m.csv"
    manifest.write_text("path,owner,license\nimg0000.png,a,l\nimg0001.png,,l\nmissing.png,a,l\n")
    result = gmv("ingest", "training", manifest, "-q")
    assert "m.csv:3: no owner" in result.output
    assert f"{tmp_path / 'missing.png'}: unreadable: no such file" in result.output
    assert "1 new" in result.output and "2 bad (skipped)" in result.output


def test_strict_refuses_unknown_owner_and_licence(gmv, conn, tmp_path):
    images(tmp_path / "x", 2)
    result = gmv(
        "ingest", "training", tmp_path / "x", "--owner", "zed", "--license", "cc", "--strict", ok=False
    )
    assert "unknown owner 'zed', license 'cc'" in result.output
    assert counts(conn) == (0, 0, 0, 0)
    conn.execute("INSERT INTO gmv.owner (name) VALUES ('zed')")
    conn.execute("INSERT INTO gmv.license (name) VALUES ('cc')")
    assert (
        "2 new"
        in gmv(
            "ingest", "training", tmp_path / "x", "--owner", "zed", "--license", "cc", "--strict", "-q"
        ).output
    )


def test_training_folder_needs_owner_and_license(gmv, tmp_path):
    images(tmp_path, 1)
    result = gmv("ingest", "training", tmp_path, ok=False)
    assert "--owner and --license" in result.output


def test_generated_manifest_with_quality_dates_prompt(gmv, conn, tmp_path):
    files = images(tmp_path, 3)
    manifest = tmp_path / "gen.csv"
    manifest.write_text(
        "path,quality,created_at,prompt,seed\n"
        f"{files[0].name},0.5,2026-01-31T23:00:00Z,a cat,1\n{files[1].name},,,,\n{files[2].name},-2,,,\n"
    )
    result = gmv(
        "ingest", "generated", tmp_path, "--manifest", manifest, "--generator", "ddpm", "--run", "r1", "-q"
    )
    assert "run 'r1' of generator 'ddpm': 2 new" in result.output
    assert "gen.csv:4: quality '-2' must be a finite number >= 0" in result.output
    rows = conn.execute(
        "SELECT g.sha256, g.quality, g.prompt, g.attributes, g.created_at, r.name, gen.name FROM gmv.generated_image g "
        "JOIN gmv.generation_run r USING (run_id) JOIN gmv.generator gen USING (generator_id) ORDER BY g.uri"
    ).fetchall()
    assert [r[0] for r in rows] == [sha256(files[0]), sha256(files[1])]
    assert rows[0][1:4] == (0.5, "a cat", {"seed": "1"})
    assert rows[0][4].isoformat().startswith("2026-01-31T23:00:00")
    assert rows[1][1:4] == (1.0, None, {})
    assert {(r[5], r[6]) for r in rows} == {("r1", "ddpm")}


def test_generated_default_run_name_and_reingest(gmv, conn, tmp_path):
    images(tmp_path, 2)
    first = gmv("ingest", "generated", tmp_path, "--generator", "gan", "-q")
    assert "into run 'run-" in first.output and "2 new" in first.output
    assert (
        "0 new, 2 already present" in gmv("ingest", "generated", tmp_path, "--generator", "gan", "-q").output
    )
    other = gmv("ingest", "generated", tmp_path, "--generator", "vae", "-q", ok=False)
    assert "'gan'" in other.output and "'vae'" in other.output
    assert counts(conn)[1] == 2


def test_generated_requires_generator(gmv, tmp_path):
    images(tmp_path, 1)
    assert "--generator" in gmv("ingest", "generated", tmp_path, ok=False).output


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT], ids=["SIGKILL", "Ctrl-C"])
def test_killed_ingest_rerun_stores_every_file_exactly_once(gmv, conn, tmp_path, sig):
    """SIGKILL (or Ctrl-C) in the middle of storing, then the same command again: every file exactly once.

    To kill at a known point, the test holds an uncommitted row with the sha256 of a file of the
    second batch: the ingest commits batch 1, then blocks on that unique key until it is killed.
    """
    files = images(tmp_path / "imgs", 120)
    blocker = sha256(files[75])  # batch 2 of 50
    with psycopg.connect(gmv.url) as hold:
        hold.execute("INSERT INTO gmv.owner (name) VALUES ('blocker')")
        hold.execute("INSERT INTO gmv.license (name) VALUES ('blocker')")
        hold.execute(
            "INSERT INTO gmv.training_image (sha256, uri, owner_id, license_id) SELECT %s, 'x', owner_id, license_id "
            "FROM gmv.owner, gmv.license WHERE owner.name = 'blocker' AND license.name = 'blocker'",
            (blocker,),
        )
        args = (
            "ingest",
            "training",
            tmp_path / "imgs",
            "--owner",
            "alice",
            "--license",
            "cc",
            "--batch-size",
            "50",
            "-q",
        )
        proc = gmv.popen(*args, stderr=subprocess.PIPE, text=True)
        try:
            deadline = time.monotonic() + 120
            while counts(conn)[0] < 50:
                assert proc.poll() is None, "ingest ended before it could be killed"
                assert time.monotonic() < deadline, "batch 1 never committed"
                time.sleep(0.1)
            time.sleep(0.5)  # let it reach the blocked batch 2
            assert proc.poll() is None
            proc.send_signal(sig)
            _, err = proc.communicate(timeout=120)
        finally:
            if proc.poll() is None:
                proc.kill()
        hold.rollback()
    if sig == signal.SIGINT:
        assert proc.returncode == 130 and "Interrupted" in err and "Traceback" not in err, err
    assert counts(conn)[0] == 50  # whole batches only
    rerun = gmv.run(*args)
    assert "70 new, 50 already present" in rerun.stdout
    stored = conn.execute("SELECT sha256, count(*) FROM gmv.training_image GROUP BY sha256").fetchall()
    assert sorted(s for s, _ in stored) == sorted(sha256(f) for f in files)
    assert {n for _, n in stored} == {1}


@pytest.mark.parametrize("kind", ["training", "generated"])
def test_ingest_help_has_example(gmv, kind):
    assert "Example:" in gmv("ingest", kind, "--help").output
