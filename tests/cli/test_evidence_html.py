"""`gmv report evidence --html`: one self-contained page, escaped text, rendered by a real browser."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.factories import seed, write_image

HOSTILE_OWNER = '<script>document.title="owned"</script> & "Sons" <img src=x onerror=alert(1)>'


@pytest.fixture
def evidence_world(conn, gmv, tmp_path):
    """A matched and valued world whose images are real PNG files, one owner with a hostile name."""
    world = seed(conn, n_training=60, n_generated=20, dim=8, owners=3, seed=1)
    for kind, ids in (("training", world["training_ids"]), ("generated", world["generated_ids"])):
        for number, image_id in enumerate(ids):
            path = tmp_path / "images" / kind / f"{image_id}.png"
            write_image(
                path,
                seed=int(image_id) + (10**6 if kind == "generated" else 0),
                size=8 if number % 2 else 40,
                mode="L",
            )
            conn.execute(
                f"UPDATE gmv.{kind}_image SET uri = %s WHERE {kind}_id = %s", (str(path), int(image_id))
            )
    # Membership groups for the value plot come from the `split` attribute.
    conn.execute(
        "UPDATE gmv.training_image SET attributes = jsonb_build_object('split',"
        " CASE WHEN training_id % 2 = 0 THEN 'member' ELSE 'non-member' END)"
    )
    conn.execute("UPDATE gmv.owner SET name = %s WHERE owner_id = %s", (HOSTILE_OWNER, world["owner_ids"][0]))
    gmv("match", "--space", "test", "--k", "5")
    gmv("value", "refresh")
    return world


def _page(gmv, tmp_path, *args) -> tuple[Path, str]:
    page = tmp_path / "out" / "evidence.html"
    page.parent.mkdir(exist_ok=True)
    result = gmv("report", "evidence", "--html", page, *args)
    assert result.output.strip().endswith("evidence.html")
    return page, page.read_text(encoding="utf-8")


def test_page_is_self_contained_and_escapes_text(evidence_world, gmv, tmp_path):
    page, text = _page(gmv, tmp_path, "--sample", "6")
    # Self-contained: every image is inline, nothing is fetched, no script runs.
    sources = re.findall(r'<img[^>]*\ssrc="([^"]*)"', text)
    assert len(sources) >= 2 + 6 * 6  # two plots, six generated images with five matches each
    assert all(s.startswith(("data:image/png;base64,", "data:image/jpeg;base64,")) for s in sources)
    assert "<script" not in text.lower() and "<link" not in text.lower()
    assert "http://" not in text and "https://" not in text
    assert "default-src 'none'" in text  # CSP: a second line of defence
    # The hostile owner's name shows as text, escaped.
    assert "&lt;script&gt;document.title=&quot;owned&quot;&lt;/script&gt; &amp; &quot;Sons&quot;" in text
    assert "onerror=alert" not in text.replace("onerror=alert(1)&gt;", "")
    assert text.count('class="generated"') == 6
    assert "Highest-valued training images" in text and "Lowest-valued training images" in text
    assert not list(page.parent.glob(".evidence.html.*"))  # no temporary file left behind


@pytest.mark.parametrize(
    ("distance", "words"),
    [("l2", "Euclidean (L2) distance d"), ("inner_product", "negative inner product d")],
)
def test_page_names_the_space_distance(conn, gmv, tmp_path, distance, words):
    seed(conn, n_training=12, n_generated=3, dim=4, distance=distance, seed=2)
    gmv("match", "--space", "test", "--k", "3")
    _, text = _page(gmv, tmp_path)
    assert words in text and "cosine" not in text


def test_chosen_ids_missing_files_and_bad_folder(evidence_world, gmv, tmp_path, conn):
    generated = [int(i) for i in evidence_world["generated_ids"][:2]]
    missing = tmp_path / "images" / "training"
    shutil.rmtree(missing)  # training files gone: the page still renders, saying so
    page, text = _page(gmv, tmp_path, *map(str, generated))
    assert text.count('class="generated"') == 2
    assert f"generated #{generated[0]}" in text and f"generated #{generated[1]}" in text
    assert "(file not found)" in text

    result = gmv("report", "evidence", "--html", tmp_path / "no" / "such" / "dir" / "e.html", ok=False)
    assert result.exit_code == 1
    assert "does not exist" in result.output and len(result.output.strip().splitlines()) == 1


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


def _run_chromium(binary: str, tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    profile = tmp_path / "chromium-profile"
    command = [
        binary,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--disable-dev-shm-usage",
        f"--user-data-dir={profile}",
        *args,
    ]
    return subprocess.run(
        command, capture_output=True, text=True, timeout=120, env={**os.environ, "HOME": str(tmp_path)}
    )


# Appended to a copy of the page (the page itself forbids scripts): marks images that did not decode.
_IMAGE_CHECK = """
<script>
addEventListener('load', () => {
  const images = Array.from(document.images);
  const broken = images.filter(i => !i.complete || i.naturalWidth === 0).length;
  const out = document.createElement('pre');
  out.id = 'image-check';
  out.textContent = 'IMAGES ' + images.length + ' BROKEN ' + broken;
  document.body.appendChild(out);
});
</script>
"""


@pytest.mark.slow
def test_real_browser_renders_the_page_and_its_images(evidence_world, gmv, tmp_path):
    binary = _chromium()
    if binary is None:
        if os.environ.get("CI") == "true":
            pytest.fail("chromium is not installed; .ci/run installs it (apt-get install chromium)")
        pytest.skip("chromium is not installed (apt-get install chromium); CI installs it and runs this test")
    page, text = _page(gmv, tmp_path, "--sample", "4")

    screenshot = tmp_path / "shot.png"
    proc = _run_chromium(
        binary, tmp_path, f"--screenshot={screenshot}", "--window-size=1200,2000", page.as_uri()
    )
    assert screenshot.is_file(), proc.stderr[-2000:]
    with Image.open(screenshot) as shot:
        gray = np.asarray(shot.convert("L"), dtype=np.float64)
    assert gray.shape == (2000, 1200)
    # Not blank: a good part of the page is not background, with many grey levels (images, plots, text).
    assert (gray < 200).mean() > 0.05, f"screenshot nearly blank ({(gray < 200).mean():.3f} dark)"
    assert len(np.unique(gray.astype(np.uint8))) > 50

    checked = tmp_path / "checked.html"
    relaxed = text.replace("default-src 'none';", "default-src 'none'; script-src 'unsafe-inline';")
    checked.write_text(relaxed.replace("</body>", _IMAGE_CHECK + "</body>"), encoding="utf-8")
    proc = _run_chromium(binary, tmp_path, "--dump-dom", "--virtual-time-budget=5000", checked.as_uri())
    found = re.search(r"IMAGES (\d+) BROKEN (\d+)", proc.stdout)
    assert found, f"the check script did not run: {proc.stdout[-500:]} {proc.stderr[-1000:]}"
    n_images, n_broken = int(found.group(1)), int(found.group(2))
    assert n_images == len(re.findall(r"<img\s", text)) and n_images >= 2 + 4 * 6
    assert n_broken == 0

    # The page's own policy blocks scripts: the same check in the untouched page never runs.
    blocked = tmp_path / "blocked.html"
    blocked.write_text(text.replace("</body>", _IMAGE_CHECK + "</body>"), encoding="utf-8")
    proc = _run_chromium(binary, tmp_path, "--dump-dom", "--virtual-time-budget=5000", blocked.as_uri())
    assert not re.search(r"IMAGES \d+ BROKEN", proc.stdout) and "</html>" in proc.stdout
