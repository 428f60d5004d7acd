"""Quality weights q_j: gmv quality import and gmv quality score, and what a changed q_j changes."""

from __future__ import annotations

import decimal
import json

import numpy as np
import pytest
from PIL import Image, ImageFilter

from tests.factories import add_images_from_files, fingerprint, refused, seed


@pytest.fixture
def world(conn):
    return seed(conn, n_training=40, n_generated=12, dim=8, k=3, owners=4, pool="1000.00")


def _qualities(conn) -> dict[int, float]:
    return dict(conn.execute("SELECT generated_id, quality FROM gmv.generated_image").fetchall())


def _shas(conn) -> dict[int, str]:
    return dict(conn.execute("SELECT generated_id, sha256 FROM gmv.generated_image").fetchall())


def test_import_sets_quality_and_a_changed_q_changes_credit_and_the_draft_statement(
    world, gmv, conn, tmp_path
):
    gmv("value", "refresh")
    before = json.loads(
        gmv("report", "royalties", "--period", "2026-01", "--pool", "1000.00", "--format", "json").stdout
    )
    shas = _shas(conn)
    first, second = sorted(shas)[:2]
    uri = conn.execute("SELECT uri FROM gmv.generated_image WHERE generated_id = %s", (second,)).fetchone()[0]
    file = tmp_path / "quality.csv"
    file.write_text(f"sha256,quality\n{shas[first]},5\n")
    out = gmv("quality", "import", file).output
    assert "quality of 1 generated images set (1 changed)" in out and "gmv value refresh" in out
    paths = tmp_path / "by_path.csv"
    paths.write_text(f"path,quality\n{uri},0\n")
    gmv("quality", "import", paths)
    assert _qualities(conn)[first] == 5.0 and _qualities(conn)[second] == 0.0

    gmv("value", "refresh")
    total = conn.execute(
        "SELECT sum(value) FROM report.training_value WHERE space = 'test' AND scheme = 'rank_linear'"
    ).fetchone()[0]
    assert total == pytest.approx(12 - 2 + 5)  # credit adds up to the sum of q_j
    credit_first = conn.execute(
        "SELECT sum(credit) FROM report.attribution WHERE generated_id = %s AND scheme = 'rank_linear'",
        (first,),
    ).fetchone()[0]
    assert credit_first == pytest.approx(5.0)
    after = json.loads(
        gmv("report", "royalties", "--period", "2026-01", "--pool", "1000.00", "--format", "json").stdout
    )
    assert {r["owner"]: r["amount"] for r in before} != {r["owner"]: r["amount"] for r in after}
    assert sum(decimal.Decimal(str(r["amount"])) for r in after) == decimal.Decimal("1000.00")


def test_bad_quality_files_are_one_line_errors_and_write_nothing(world, gmv, conn, tmp_path):
    shas = _shas(conn)
    some = shas[min(shas)]
    before = fingerprint(conn, "generated_image")
    cases = {
        "negative": (
            f"sha256,quality\n{some},-1\n",
            "quality.csv:2: quality '-1' must be a finite number >= 0",
        ),
        "text": (f"sha256,quality\n{some},good\n", "quality.csv:2: quality 'good' is not a number"),
        "nan": (f"sha256,quality\n{some},nan\n", "must be a finite number >= 0"),
        "unknown": (f"sha256,quality\n{some},2\n{'0' * 64},1\n", "quality.csv:3:"),
        "header": ("image,q\nx,1\n", "needs a quality column and a sha256 or path column"),
        "twice": (f"sha256,quality\n{some},2\n{some},3\n", "already got quality 2"),
        "empty": ("sha256,quality\n", "names no images"),
        "path": ("path,quality\n/nowhere/x.png,1\n", "'/nowhere/x.png' is not a generated image gmv knows"),
    }
    for name, (text, reason) in cases.items():
        file = tmp_path / "quality.csv"
        file.write_text(text)
        refused(gmv, "quality", "import", file, reason=reason)
        assert fingerprint(conn, "generated_image") == before, name  # nothing written, not even line 2
    refused(gmv, "quality", "import", tmp_path / "missing.csv", reason="does not exist")


def _generated_files(tmp_path, n: int = 6):
    """Crisp digits and blurred copies of them: a sharpness scorer must rank the crisp ones higher."""
    from gmv_sql.demo import data

    images, _ = data.load_digits()
    folder = tmp_path / "generated"
    folder.mkdir()
    crisp, blurred = [], []
    for i in range(n):
        path = folder / f"crisp-{i}.png"
        data.write_png(path, images[i])
        crisp.append(path)
        soft = folder / f"blurred-{i}.png"
        Image.open(path).filter(ImageFilter.GaussianBlur(2)).save(soft)
        blurred.append(soft)
    return crisp, blurred


def test_score_with_the_shipped_sharpness_scorer(gmv, conn, tmp_path):
    crisp, blurred = _generated_files(tmp_path)
    ids = add_images_from_files(conn, [], [*crisp, *blurred])["generated_ids"]
    out = gmv("quality", "score", "--scorer", "gmv_sql.quality.scorers:sharpness").output
    assert "quality of 12 generated images scored" in out
    q = _qualities(conn)
    crisp_q = np.array([q[int(i)] for i in ids[:6]])
    blurred_q = np.array([q[int(i)] for i in ids[6:]])
    assert (crisp_q > blurred_q).all() and (blurred_q > 0).all()


def test_a_user_scorer_module_and_its_failures(gmv, conn, tmp_path, monkeypatch):
    crisp, _ = _generated_files(tmp_path, n=3)
    add_images_from_files(conn, [], crisp)
    (tmp_path / "my_scorers.py").write_text(
        "def width(image):\n    return image.width / 32\n"
        "def negative(image):\n    return -1.0\n"
        "def broken(image):\n    raise RuntimeError('model missing')\n"
        "def words(image):\n    return 'high'\n"
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    before = fingerprint(conn, "generated_image")
    refused(gmv, "quality", "score", "--scorer", "my_scorers:negative", reason="must be a finite number >= 0")
    refused(gmv, "quality", "score", "--scorer", "my_scorers:broken", reason="RuntimeError: model missing")
    refused(gmv, "quality", "score", "--scorer", "my_scorers:words", reason="'high' is not a number")
    refused(gmv, "quality", "score", "--scorer", "my_scorers:nothing", reason="has no function 'nothing'")
    refused(gmv, "quality", "score", "--scorer", "no_such_module:f", reason="cannot import 'no_such_module'")
    refused(gmv, "quality", "score", "--scorer", "sharpness", reason="must be MODULE:FUNCTION")
    assert fingerprint(conn, "generated_image") == before
    gmv("quality", "score", "--scorer", "my_scorers:width")
    assert set(_qualities(conn).values()) == {1.0}  # 32 px wide / 32
