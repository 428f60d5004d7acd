"""Hostile vector files for `gmv embed import`: NaN, inf, wrong or zero dimensions, ragged or
pickled arrays, unknown or duplicate images, hostile id lines, special files — each is a one-line
error (exit 1, no traceback) and not a single row changes anywhere in schema gmv."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from tests.factories import fingerprints, refused, run_bounded, seed

pytestmark = pytest.mark.timeout(60)

DIM = 8


@pytest.fixture
def world(conn):
    """Ingested images with an 8-d space 'rel' holding no vectors yet for the last 5 training images."""
    seeded = seed(conn, n_training=20, n_generated=5, dim=DIM, space="rel", k=3, with_matches=False)
    shas = [r[0] for r in conn.execute("SELECT sha256 FROM gmv.training_image ORDER BY training_id")]
    # Free the last five images of their vectors so that a valid import would have work to do.
    conn.execute(
        f"DELETE FROM gmv.training_embedding_{seeded['space'].space_id} WHERE training_id = ANY(%s)",
        (seeded["training_ids"][-5:].tolist(),),
    )
    return {"shas": shas[-5:], "space": seeded["space"]}


def _vectors(n: int = 5, dim: int = DIM) -> np.ndarray:
    return np.random.default_rng(0).normal(size=(n, dim)).astype(np.float32)


def _npz(path: Path, vectors, shas) -> Path:
    np.savez(path, vectors=vectors, sha256=np.asarray(shas))
    return path


def _cases(tmp_path: Path, shas: list[str]) -> dict[str, list[str]]:
    """name -> gmv arguments after `embed import`; every one must be refused (for REASONS[name])."""
    v = _vectors()
    cases: dict[str, list[str]] = {}

    def add(name: str, file: Path, *extra: str, space: str = "rel") -> None:
        cases[name] = [str(file), "--space", space, *extra]

    bad = v.copy()
    bad[3, 2] = np.nan
    add("nan", _npz(tmp_path / "nan.npz", bad, shas))
    bad = v.copy()
    bad[4, 0] = np.inf
    add("inf", _npz(tmp_path / "inf.npz", bad, shas))
    bad = v.copy()
    bad[0, 7] = -np.inf
    add("-inf", _npz(tmp_path / "ninf.npz", bad, shas))
    add(
        "nan-new-space",
        _npz(tmp_path / "nan2.npz", np.full((5, DIM), np.nan), shas),
        "--model",
        "x",
        space="newspace",
    )
    add("wrong-dim", _npz(tmp_path / "dim.npz", _vectors(5, DIM + 1), shas))
    add(
        "zero-dim",
        _npz(tmp_path / "zero.npz", np.zeros((5, 0), np.float32), shas),
        "--model",
        "x",
        space="zerodim",
    )
    add("3-d", _npz(tmp_path / "3d.npz", np.zeros((5, 2, 4), np.float32), shas))
    add("1-d", _npz(tmp_path / "1d.npz", np.zeros(5, np.float32), shas))
    add("strings", _npz(tmp_path / "str.npz", np.full((5, DIM), "1.0"), shas))
    add("all-zero-cosine", _npz(tmp_path / "allzero.npz", np.zeros((5, DIM), np.float32), shas))
    add("unknown-sha", _npz(tmp_path / "unknown.npz", v, shas[:4] + ["f" * 64]))
    add("duplicate-sha", _npz(tmp_path / "dup.npz", v, shas[:4] + shas[:1]))
    add("fewer-ids", _npz(tmp_path / "fewer.npz", v, shas[:4]))
    add("sql-in-id", _npz(tmp_path / "sqlid.npz", v, shas[:4] + ["'; DROP TABLE gmv.training_image; --"]))
    add(
        "over-halfvec",
        _npz(tmp_path / "big.npz", v * 1e6, shas),
        "--model",
        "x",
        "--storage",
        "halfvec",
        space="half",
    )
    # A pickled object array: loading it would run code; numpy must refuse (allow_pickle=False).
    np.save(tmp_path / "pickled.npy", np.array([{"x": 1}] * 5, dtype=object), allow_pickle=True)
    (tmp_path / "ids.txt").write_text("\n".join(shas) + "\n")
    add("pickled-npy", tmp_path / "pickled.npy", "--ids", str(tmp_path / "ids.txt"))
    np.save(tmp_path / "ok.npy", v)
    (tmp_path / "hostile_ids.txt").write_text(
        "\n".join(shas[:4] + ["$(rm -rf ~); DROP TABLE gmv.owner"]) + "\n"
    )
    add("hostile-ids-line", tmp_path / "ok.npy", "--ids", str(tmp_path / "hostile_ids.txt"))
    (tmp_path / "dev_ids.txt").write_text("\n".join(shas[:4] + ["/dev/zero"]) + "\n")
    add("ids-names-a-device", tmp_path / "ok.npy", "--ids", str(tmp_path / "dev_ids.txt"))
    (tmp_path / "corrupt.npz").write_bytes(os.urandom(2048))
    add("corrupt-npz", tmp_path / "corrupt.npz")
    (tmp_path / "corrupt.parquet").write_bytes(b"PAR1" + os.urandom(500) + b"PAR1")
    add("corrupt-parquet", tmp_path / "corrupt.parquet")
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(
        pa.table({"sha256": shas, "vector": [list(map(float, row)) for row in v[:4]] + [[1.0, 2.0]]}),
        tmp_path / "ragged.parquet",
    )
    add("ragged-parquet", tmp_path / "ragged.parquet")
    pq.write_table(
        pa.table({"sha256": shas, "vector": [list(map(float, row)) for row in v[:4]] + [None]}),
        tmp_path / "null.parquet",
    )
    add("null-vector-parquet", tmp_path / "null.parquet")
    add("missing-file", tmp_path / "nope.npz")
    return cases


# name -> words the refusal must give (a refusal for another reason hides the defect under test)
REASONS = {
    "nan": "has NaN or infinite values",
    "inf": "has NaN or infinite values",
    "-inf": "has NaN or infinite values",
    "nan-new-space": "has NaN or infinite values",
    "wrong-dim": "expected 8 dimensions",
    "zero-dim": "dim_check",  # the constraint it trips (the message itself also blames the name)
    "3-d": "must hold a 2-d array",
    "1-d": "must hold a 2-d array",
    "strings": "must hold a 2-d array",
    "all-zero-cosine": "is all zeros",
    "unknown-sha": "never ingested",
    "duplicate-sha": "are the same image",
    "fewer-ids": "5 vectors but 4 image ids",
    "sql-in-id": "is neither a sha256 nor a readable image file",
    "over-halfvec": "beyond half precision",
    "pickled-npy": "allow_pickle=False",
    "hostile-ids-line": "is neither a sha256 nor a readable image file",
    "ids-names-a-device": "is neither a sha256 nor a readable image file",
    "corrupt-npz": "cannot read",
    "corrupt-parquet": "cannot read",
    "ragged-parquet": "has 2 dimensions",
    "null-vector-parquet": "empty (null) vectors",
    "missing-file": "does not exist",
}

CASE_NAMES = [
    "nan",
    "inf",
    "-inf",
    "nan-new-space",
    "wrong-dim",
    "zero-dim",
    "3-d",
    "1-d",
    "strings",
    "all-zero-cosine",
    "unknown-sha",
    "duplicate-sha",
    "fewer-ids",
    "sql-in-id",
    "over-halfvec",
    "pickled-npy",
    "hostile-ids-line",
    "ids-names-a-device",
    "corrupt-npz",
    "corrupt-parquet",
    "ragged-parquet",
    "null-vector-parquet",
    "missing-file",
]


def test_every_case_is_listed(tmp_path):
    assert sorted(_cases(tmp_path, ["a" * 64] * 5)) == sorted(CASE_NAMES) == sorted(REASONS)


# Cases that could hang or exhaust memory run as a bounded process; the rest in-process (fast).
IN_A_PROCESS = {"ids-names-a-device"}


@pytest.mark.parametrize("case", CASE_NAMES)
def test_bad_vectors_are_one_line_and_change_nothing(gmv, conn, world, tmp_path, case):
    args = _cases(tmp_path, world["shas"])[case]
    before = fingerprints(conn, "gmv", "r")
    if case in IN_A_PROCESS:
        result = run_bounded(gmv, "embed", "import", *args, timeout=40)
        assert result.returncode == 1, (result.returncode, result.stdout, result.stderr)
        assert "Traceback" not in result.stderr, result.stderr[-3000:]
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
        assert REASONS[case] in lines[0], lines[0]
    else:
        refused(gmv, "embed", "import", *args, reason=REASONS[case])
    assert fingerprints(conn, "gmv", "r") == before  # not one row, not one new space or table


def test_the_good_file_is_accepted(gmv, conn, world, tmp_path):
    """The control: the same vectors, clean, are imported (so the refusals above are about the defects)."""
    path = _npz(tmp_path / "good.npz", _vectors(), world["shas"])
    gmv("embed", "import", path, "--space", "rel")
    n = conn.execute(f"SELECT count(*) FROM gmv.training_embedding_{world['space'].space_id}").fetchone()[0]
    assert n == 20
