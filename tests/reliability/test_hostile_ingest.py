"""Hostile input to `gmv ingest`: names and paths full of quotes, semicolons, SQL, unicode and
newlines are stored verbatim; decompression bombs, symlink loops, FIFOs, devices, missing files and
paths outside the manifest's folder each give one line and store nothing for that file; with
--on-error fail nothing at all is stored. Every command runs as a real process under a time and
memory limit, so a hang or a runaway read fails the test instead of the machine."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import zlib
from pathlib import Path

import psycopg
import pytest

from tests.factories import HOSTILE_NAMES, relations, run_bounded, sha256, write_image

pytestmark = pytest.mark.timeout(90)

HOSTILE_FILENAMES = [
    "O'Brien;.png",
    'double"quote.png',
    "'; DROP TABLE gmv.training_image; --.png",
    "new\nline.png",
    "tab\tand\rcr.png",
    "Zoë 東京 🎨.png",
    "$(touch pwned) `id`.png",
    "back\\slash.png",
    "%s %(x)s {0}.png",
    "-rf.png",
]


def _no_traceback(result: subprocess.CompletedProcess) -> None:
    assert "Traceback" not in result.stderr, result.stderr[-3000:]


def _error_line(result) -> str:
    """An in-process command that failed: its reason is one last line (after any per-file lines)."""
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit), repr(result.exception)  # a refusal, not a crash
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines and lines[-1].startswith("Error: "), result.stderr
    return lines[-1]


def _stored(url: str) -> dict[str, tuple]:
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT t.uri, o.name, l.name, t.sha256, t.attributes FROM gmv.training_image t"
            " JOIN gmv.owner o USING (owner_id) JOIN gmv.license l USING (license_id)"
        ).fetchall()
    return {uri: (owner, license_, sha, attributes) for uri, owner, license_, sha, attributes in rows}


def _gmv_tables(url: str) -> list[str]:
    with psycopg.connect(url, autocommit=True) as conn:
        return relations(conn, "gmv", "rvm")


@pytest.mark.parametrize("manifest_format", ["jsonl", "csv"])
def test_hostile_names_and_paths_are_stored_verbatim(gmv, tmp_path, manifest_format):
    folder = tmp_path / "images"
    tables_before = _gmv_tables(gmv.url)
    records = []
    for i, filename in enumerate(HOSTILE_FILENAMES):
        write_image(folder / filename, seed=i)
        owner = HOSTILE_NAMES[i % len(HOSTILE_NAMES)]
        license_ = HOSTILE_NAMES[(i + 5) % len(HOSTILE_NAMES)]
        records.append(
            {"path": filename, "owner": owner, "license": license_, "note": HOSTILE_NAMES[(i + 2) % 18]}
        )
    # Names must not be trimmed to match: keep the ones without outer whitespace for the verbatim check.
    records = [
        r for r in records if r["owner"] == r["owner"].strip() and r["license"] == r["license"].strip()
    ]
    manifest = tmp_path / f"manifest.{manifest_format}"
    if manifest_format == "jsonl":
        manifest.write_text(
            "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8"
        )
    else:
        import csv

        with manifest.open("w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=["path", "owner", "license", "note"])
            writer.writeheader()
            writer.writerows(records)
    gmv("ingest", "training", folder, "--manifest", manifest, "-q")
    stored = _stored(gmv.url)
    assert len(stored) == len(records)
    for r in records:
        uri = os.path.abspath(folder / r["path"])
        owner, license_, sha, attributes = stored[uri]  # the path itself, verbatim (newlines and all)
        assert (owner, license_) == (r["owner"], r["license"])
        assert sha == sha256(folder / r["path"])
        assert attributes == {"note": r["note"]}
    assert _gmv_tables(gmv.url) == tables_before  # no "DROP TABLE" ran


def test_outer_whitespace_of_names_is_the_only_change(gmv, tmp_path):
    """Names are trimmed (so 'alice' and 'alice ' are one owner); everything inside stays."""
    folder = tmp_path / "images"
    names = ["\tleading tab", "\rcarriage return", "  spaced  ", "inner\ttab\nand newline"]
    for i in range(len(names)):
        write_image(folder / f"{i}.png", seed=i)
    manifest = tmp_path / "m.jsonl"
    manifest.write_text(
        "".join(
            json.dumps({"path": f"{i}.png", "owner": n, "license": "cc0"}) + "\n" for i, n in enumerate(names)
        )
    )
    gmv("ingest", "training", folder, "--manifest", manifest, "-q")
    owners = {owner for owner, *_ in _stored(gmv.url).values()}
    assert owners == {n.strip() for n in names}


def _png_claiming(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims width x height (a decompression bomb's first bytes)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 1024)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def test_decompression_bombs_are_refused_without_decoding(gmv, tmp_path):
    from PIL import Image

    folder = tmp_path / "images"
    good = write_image(folder / "good.png", seed=1)
    (folder / "claims_2.5_gigapixels.png").write_bytes(_png_claiming(50_000, 50_000))
    (folder / "claims_4_billion_wide.png").write_bytes(_png_claiming(2**31 - 1, 2))
    # A real bomb: 4,000 x 4,000 zeros compress to a few KB; over a limit of 1 megapixel here.
    Image.new("L", (4000, 4000)).save(folder / "real_bomb.png", optimize=True)
    assert (folder / "real_bomb.png").stat().st_size < 100_000
    result = run_bounded(
        gmv,
        "ingest",
        "training",
        folder,
        "--owner",
        "alice",
        "--license",
        "cc0",
        "--max-pixels",
        "1000000",
        "-q",
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    _no_traceback(result)
    reported = [line for line in result.stderr.splitlines() if "bomb" in line]
    assert len(reported) == 3, result.stderr
    assert list(_stored(gmv.url)) == [str(good)]


def test_symlink_loops_and_dangling_links_do_not_hang(gmv, tmp_path):
    folder = tmp_path / "images"
    good = write_image(folder / "good.png", seed=1)
    (folder / "sub").mkdir()
    write_image(folder / "sub" / "inner.png", seed=2)
    os.symlink(folder, folder / "sub" / "loop_to_top")  # a folder that contains itself
    os.symlink("..", folder / "sub" / "loop_up")
    os.symlink("a.png", folder / "b.png")  # b -> a -> b
    os.symlink("b.png", folder / "a.png")
    os.symlink("self.png", folder / "self.png")
    os.symlink("missing.png", folder / "dangling.png")
    result = run_bounded(
        gmv, "ingest", "training", folder, "--owner", "alice", "--license", "cc0", "-q", timeout=60
    )
    assert result.returncode == 0, result.stderr
    _no_traceback(result)
    stored = _stored(gmv.url)
    assert sorted(stored) == sorted([str(good), str(folder / "sub" / "inner.png")])
    bad_lines = [line for line in result.stderr.splitlines() if line.strip()]
    for name in ("a.png", "b.png", "self.png", "dangling.png"):
        assert sum(line.startswith(str(folder / name) + ":") for line in bad_lines) == 1, result.stderr


@pytest.mark.parametrize("special", ["fifo", "device"])
def test_special_files_are_refused_not_read(gmv, tmp_path, special):
    """A named pipe never delivers EOF and /dev/zero never ends: reading either would hang or fill memory."""
    folder = tmp_path / "images"
    good = write_image(folder / "good.png", seed=1)
    if special == "fifo":
        os.mkfifo(folder / "pipe.png")
        target = folder / "pipe.png"
        args = ("ingest", "training", folder, "--owner", "alice", "--license", "cc0", "-q")
    else:
        target = Path("/dev/zero")
        manifest = tmp_path / "m.jsonl"
        manifest.write_text(
            json.dumps({"path": "good.png", "owner": "a", "license": "cc0"})
            + "\n"
            + json.dumps({"path": "/dev/zero", "owner": "a", "license": "cc0"})
            + "\n"
        )
        args = ("ingest", "training", folder, "--manifest", manifest, "-q")
    result = run_bounded(gmv, *args, timeout=30)
    _no_traceback(result)
    assert result.returncode == 0, result.stderr
    assert list(_stored(gmv.url)) == [str(good)]
    assert sum(line.startswith(f"{target}:") for line in result.stderr.splitlines()) == 1, result.stderr


def test_manifest_with_missing_and_outside_paths(gmv, tmp_path):
    """Missing files and non-images are one line each; paths outside the folder follow docs/INGEST.md."""
    folder = tmp_path / "images"
    good = write_image(folder / "good.png", seed=1)
    outside = write_image(tmp_path / "elsewhere" / "outside.png", seed=2)
    manifest = folder / "m.jsonl"
    rows = [
        {"path": "good.png"},
        {"path": "missing.png"},
        {"path": "../elsewhere/outside.png"},
        {"path": str(outside)},  # the same file, absolute
        {"path": "/etc/passwd"},  # exists, not an image
        {"path": "no/such/dir/x.png"},
    ]
    manifest.write_text("".join(json.dumps({**r, "owner": "alice", "license": "cc0"}) + "\n" for r in rows))
    result = gmv("ingest", "training", folder, "--manifest", manifest, "-q")
    stored = _stored(gmv.url)
    assert str(good) in stored
    assert "/etc/passwd" not in stored
    errors = result.stderr
    for bad in ("missing.png", "/etc/passwd", "no/such/dir/x.png"):
        assert sum(bad in line for line in errors.splitlines()) == 1, errors
    # docs/INGEST.md: relative paths resolve against the folder, absolute ones are taken as they
    # are, so a file outside the folder is ingested; named twice ('../' and absolute), it is stored once.
    assert sum(uri == str(outside) for uri in stored) == 1
    assert len(stored) == 2


def test_on_error_fail_stores_nothing(gmv, tmp_path):
    folder = tmp_path / "images"
    for i in range(20):
        write_image(folder / f"{i:02d}.png", seed=i)
    (folder / "zz_truncated.png").write_bytes(write_image(tmp_path / "t.png", seed=99).read_bytes()[:40])
    (folder / "zz_empty.png").write_bytes(b"")
    (folder / "zz_text.png").write_text("'; DROP TABLE gmv.owner; --")
    line = _error_line(
        gmv(
            "ingest",
            "training",
            folder,
            "--owner",
            "alice",
            "--license",
            "cc0",
            "--on-error",
            "fail",
            "--batch-size",
            "5",
            "-q",
            ok=False,
        )
    )
    assert "3 bad" in line and "nothing was stored" in line, line
    with psycopg.connect(gmv.url, autocommit=True) as conn:
        for table in ("training_image", "owner", "license"):
            assert conn.execute(f"SELECT count(*) FROM gmv.{table}").fetchone() == (0,), table


@pytest.mark.parametrize(
    "field, value",
    [
        ("quality", "NaN"),
        ("quality", "inf"),
        ("quality", "-1"),
        ("quality", "1e400"),
        ("created_at", "yesterday"),
        ("created_at", "2026-13-45"),
        ("created_at", "'; DROP TABLE gmv.match; --"),
    ],
)
def test_generated_manifest_bad_values_are_one_line_each(gmv, tmp_path, field, value):
    folder = tmp_path / "gen"
    write_image(folder / "ok.png", seed=1)
    write_image(folder / "bad.png", seed=2)
    manifest = folder / "m.csv"
    manifest.write_text(f'path,{field}\nok.png,\nbad.png,"{value}"\n')
    result = gmv(
        "ingest",
        "generated",
        folder,
        "--manifest",
        manifest,
        "--generator",
        "g",
        "--on-error",
        "fail",
        "-q",
        ok=False,
    )
    line = _error_line(result)
    assert "nothing was stored" in line
    assert sum("m.csv:3" in x for x in result.stderr.splitlines()) == 1, result.stderr
    with psycopg.connect(gmv.url, autocommit=True) as conn:
        assert conn.execute("SELECT count(*) FROM gmv.generated_image").fetchone() == (0,)
