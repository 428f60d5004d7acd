"""Embedders without a database: pixels maths, normalisation, weights locations and refusals."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from gmv_sql.embed.importer import read_vectors
from gmv_sql.embed.models import (
    build_embedder,
    l2_normalise,
    torch_home_checkpoints,
    torchvision_weights_file,
)
from gmv_sql.errors import ConfigError, InputError


def test_l2_normalise_rows_and_zero_rows():
    v = np.array([[3, 4], [0, 0], [-1, 0]], dtype=np.float32)
    out = l2_normalise(v)
    np.testing.assert_allclose(out, [[0.6, 0.8], [2**-0.5, 2**-0.5], [-1, 0]], rtol=1e-6)
    assert out.dtype == np.float32


@pytest.mark.torch
@pytest.mark.parametrize("color,channels", [("gray", 1), ("rgb", 3)])
def test_pixels_embedder(color, channels):
    embedder = build_embedder("pixels", pixels_size=4, pixels_color=color)
    assert embedder.dim == 16 * channels and embedder.weights_sha256 is None
    image = Image.fromarray(np.arange(64 * 3, dtype=np.uint8).reshape(8, 8, 3), "RGB")
    x = embedder.transform(image)
    assert tuple(x.shape) == (16 * channels,) and float(x.max()) <= 1.0
    out = embedder.forward(x[None]).numpy()
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, rtol=1e-6)
    black = embedder.forward(embedder.transform(Image.new("RGB", (8, 8)))[None]).numpy()
    np.testing.assert_allclose(black, np.full((1, 16 * channels), (16 * channels) ** -0.5), rtol=1e-6)


def test_pixels_preprocessing_is_recorded():
    assert build_embedder("pixels", pixels_size=8).preprocessing["resize"] == [8, 8]
    assert (
        build_embedder("pixels", pixels_size=8).preprocessing
        != build_embedder("pixels", pixels_size=6).preprocessing
    )


def test_unknown_model_and_bad_options():
    with pytest.raises(ConfigError, match="unknown model 'clip'"):
        build_embedder("clip")
    with pytest.raises(ConfigError, match="no weights"):
        build_embedder("pixels", random_init=True)
    with pytest.raises(ConfigError, match="outside 1..64"):
        build_embedder("pixels", pixels_size=100)


@pytest.mark.torch
def test_torch_home_decides_where_weights_are_looked_for(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "th"))
    assert torch_home_checkpoints() == tmp_path / "th" / "hub" / "checkpoints"
    with pytest.raises(InputError) as info:
        torchvision_weights_file("resnet50", None)
    # torchvision's current default for resnet50 is the V2 file.
    assert str(tmp_path / "th" / "hub" / "checkpoints" / "resnet50-11ad3fa6.pth") in str(info.value)
    older = tmp_path / "th" / "hub" / "checkpoints" / "resnet50-0676ba61.pth"
    older.parent.mkdir(parents=True)
    older.write_bytes(b"x")
    path, entry = torchvision_weights_file("resnet50", None)
    assert path == older and entry.name == "IMAGENET1K_V1"


@pytest.mark.torch
def test_a_weights_file_that_is_not_a_state_dict(tmp_path):
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a torch file")
    with pytest.raises(InputError, match="cannot read weights file"):
        build_embedder("resnet18", weights=junk)
    with pytest.raises(InputError, match="does not exist"):
        build_embedder("resnet18", weights=tmp_path / "missing.pth")


def test_read_vectors_formats_and_refusals(tmp_path):
    np.save(tmp_path / "v.npy", np.ones((2, 3)))
    with pytest.raises(InputError, match="--ids"):
        read_vectors(tmp_path / "v.npy")
    (tmp_path / "ids.txt").write_text("a\n\nb\n")
    vectors, ids, base = read_vectors(tmp_path / "v.npy", tmp_path / "ids.txt")
    assert vectors.shape == (2, 3) and ids == ["a", "b"] and base == tmp_path
    np.savez(tmp_path / "x.npz", vecs=np.ones((1, 2)))
    with pytest.raises(InputError, match="no array 'vectors'"):
        read_vectors(tmp_path / "x.npz")
    (tmp_path / "v.csv").write_text("1,2\n")
    with pytest.raises(InputError, match=".npz"):
        read_vectors(tmp_path / "v.csv")


def test_read_parquet_rejects_ragged_vectors(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"sha256": ["a", "b"], "vector": [[1.0, 2.0], [1.0]]}), tmp_path / "r.parquet")
    with pytest.raises(InputError, match="vector 1 of r.parquet has 1 dimensions, vector 0 has 2"):
        read_vectors(tmp_path / "r.parquet")
    pq.write_table(pa.table({"id": ["a"], "vector": [[1.0]]}), tmp_path / "n.parquet")
    with pytest.raises(InputError, match="needs columns sha256"):
        read_vectors(tmp_path / "n.parquet")


@pytest.mark.torch
def test_image_size_scales_resize_and_crop():
    embedder = build_embedder("efficientnet-lite0", random_init=True, image_size=96)
    assert (embedder.preprocessing["resize_shorter"], embedder.preprocessing["center_crop"]) == (110, 96)
    x = embedder.transform(Image.new("RGB", (50, 30)))
    assert tuple(x.shape) == (3, 96, 96)
    assert embedder.forward(x[None]).shape == (1, 1280)
    assert build_embedder("efficientnet-lite0", random_init=True).preprocessing["center_crop"] == 224
    with pytest.raises(ConfigError, match="vit_b_16 works at 224 only"):
        build_embedder("vit_b_16", random_init=True, image_size=128)
    with pytest.raises(ConfigError, match="--pixels-size"):
        build_embedder("pixels", image_size=64)
