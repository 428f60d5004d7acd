"""`gmv embed --runtime/--precision`: exported graphs, their cache, the faithfulness gates, and spaces
that never mix runtimes. Networks are random-initialised at small input sizes to stay fast."""

from __future__ import annotations

import json

import numpy as np
import pytest

from gmv_sql import spaces
from gmv_sql.embed import runtimes, store
from tests.cli.test_embed import ingest_some, vectors_by_uri

pytestmark = pytest.mark.torch

SMALL = ["--random-init", "--image-size", "64", "--device", "cpu", "-q"]


def cosines(a: dict, b: dict) -> np.ndarray:
    assert a.keys() == b.keys()
    return np.array([float(np.dot(a[k], b[k]) / np.linalg.norm(a[k]) / np.linalg.norm(b[k])) for k in a])


def test_onnxruntime_vectors_agree_with_torch_and_the_space_records_the_runtime(gmv, conn, tmp_path):
    ingest_some(gmv, tmp_path, 4, 2, size=(40, 30))
    gmv("embed", "--space", "eager", "--runtime", "torch", *SMALL)
    gmv("embed", "--space", "ort", "--runtime", "onnxruntime", *SMALL)
    eager, ort = spaces.get_space(conn, "eager"), spaces.get_space(conn, "ort")
    assert (eager.preprocessing["runtime"], eager.preprocessing["precision"]) == ("torch", "fp32")
    assert (ort.preprocessing["runtime"], ort.preprocessing["precision"]) == ("onnxruntime", "fp32")
    for kind in ("training", "generated"):
        assert cosines(vectors_by_uri(conn, "eager", kind), vectors_by_uri(conn, "ort", kind)).min() >= 0.9999
    status = gmv("db", "status", "--format", "json").output
    assert "runtime onnxruntime fp32" in status and "runtime torch fp32" in status


def test_auto_picks_the_fastest_installed_runtime_and_keeps_the_space_s(gmv, conn, tmp_path, monkeypatch):
    ingest_some(gmv, tmp_path, 2, 1, size=(20, 20))
    gmv("embed", "--space", "a", *SMALL)
    fastest = "openvino" if runtimes.installed("openvino") else "onnxruntime"
    assert spaces.get_space(conn, "a").preprocessing["runtime"] == fastest
    # Without the graph runtimes, auto takes the next one installed; a space keeps what it was made with.
    monkeypatch.setattr(runtimes, "installed", lambda name: name == "torch")
    gmv("embed", "--space", "b", *SMALL)
    assert spaces.get_space(conn, "b").preprocessing["runtime"] == "torch"
    result = gmv("embed", "--space", "a", *SMALL, ok=False)
    assert f"--runtime {fastest} is not installed" in result.output


def test_a_space_never_mixes_runtimes_until_reembed(gmv, conn, tmp_path):
    ingest_some(gmv, tmp_path, 3, 2, size=(20, 20))
    gmv("embed", "--space", "s", "--runtime", "torch", *SMALL)
    gmv("match", "--space", "s", "--k", "2", "--exact")
    before = vectors_by_uri(conn, "s", "training")
    n_matches = conn.execute("SELECT count(*) FROM gmv.match").fetchone()[0]
    assert n_matches > 0
    result = gmv("embed", "--space", "s", "--runtime", "onnxruntime", *SMALL, ok=False)
    assert result.exit_code == 1 and len(result.output.strip().splitlines()) == 1
    assert "torch fp32, not onnxruntime fp32" in result.output and "--reembed" in result.output
    gmv("embed", "--space", "s", *SMALL)  # auto: the space's own runtime, nothing to do
    assert spaces.get_space(conn, "s").preprocessing["runtime"] == "torch"

    gmv("embed", "--space", "s", "--runtime", "onnxruntime", "--reembed", *SMALL)
    space = spaces.get_space(conn, "s")
    assert space.preprocessing["runtime"] == "onnxruntime"
    assert conn.execute("SELECT count(*) FROM gmv.match").fetchone()[0] == 0  # matched torch vectors: gone
    after = vectors_by_uri(conn, "s", "training")
    assert cosines(before, after).min() >= 0.9999
    assert store.missing(conn, space, "generated") == []


def test_a_space_from_before_runtimes_stays_torch_fp32(gmv, conn, tmp_path):
    ingest_some(gmv, tmp_path, 2, 1, size=(20, 20))
    gmv("embed", "--space", "old", "--runtime", "torch", *SMALL)
    legacy = {
        k: v
        for k, v in spaces.get_space(conn, "old").preprocessing.items()
        if k not in runtimes.record_keys()
    }
    conn.execute("UPDATE gmv.embedding_space SET preprocessing = %s WHERE name = 'old'", [json.dumps(legacy)])
    conn.execute("TRUNCATE gmv.match")
    conn.execute(spaces.render("embedding", "empty_generated", spaces.get_space(conn, "old")))
    gmv("embed", "--space", "old", *SMALL)  # auto on a legacy space: torch fp32, record unchanged
    space = spaces.get_space(conn, "old")
    assert space.preprocessing == legacy and store.missing(conn, space, "generated") == []
    result = gmv("embed", "--space", "old", "--runtime", "onnxruntime", *SMALL, ok=False)
    assert "torch fp32, not onnxruntime fp32" in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--runtime", "tensorrt"], "Invalid value for '--runtime'"),
        (["--precision", "int4"], "Invalid value for '--precision'"),
        (["--runtime", "onnxruntime", "--precision", "bf16"], "runs fp32 only here, not bf16"),
        (["--precision", "fp16"], "--precision fp16 needs --device cuda"),
        (["--model", "pixels", "--runtime", "onnxruntime"], "pixels model has no network"),
    ],
)
def test_bad_runtime_choices_are_one_line_and_write_nothing(gmv, conn, tmp_path, args, message):
    ingest_some(gmv, tmp_path, 1, 0, size=(12, 12))
    result = gmv("embed", "--space", "x", "--device", "cpu", *args, "-q", ok=False)
    assert message in result.output, result.output
    assert spaces.find_space(conn, "x") is None


def test_runtime_not_installed_is_one_line(gmv, conn, tmp_path, monkeypatch):
    ingest_some(gmv, tmp_path, 1, 0, size=(12, 12))
    monkeypatch.setattr(runtimes, "installed", lambda name: name != "openvino")
    result = gmv("embed", "--space", "x", "--runtime", "openvino", *SMALL, ok=False)
    assert result.exit_code == 1 and len(result.output.strip().splitlines()) == 1
    assert "--runtime openvino is not installed; pip install openvino" in result.output
    assert spaces.find_space(conn, "x") is None


def test_a_failed_gate_is_one_line_and_writes_nothing(gmv, conn, tmp_path, monkeypatch):
    ingest_some(gmv, tmp_path, 2, 0, size=(12, 12))
    monkeypatch.setitem(runtimes.GATES, "fp32", 1.5)  # above any cosine: every graph fails its gate
    result = gmv("embed", "--space", "x", "--runtime", "onnxruntime", *SMALL, ok=False)
    assert result.exit_code == 1 and len(result.output.strip().splitlines()) == 1
    assert "disagrees with torch eager fp32" in result.output and "--runtime torch" in result.output
    assert spaces.find_space(conn, "x") is None
    assert not list((tmp_path / "gmv_home" / "graphs").glob("*/graph.onnx"))  # nothing cached


@pytest.mark.parametrize(
    ("model", "dim", "storage"), [("vgg16", 512, "vector"), ("resnet50", 2048, "halfvec")]
)
def test_vgg16_and_resnet50_weights_files_through_onnxruntime(gmv, conn, tmp_path, model, dim, storage):
    import torch
    import torchvision

    from gmv_sql.ingest.files import sha256_file

    torch.manual_seed(3)
    weights = tmp_path / f"{model}-random.pth"
    torch.save(getattr(torchvision.models, model)(weights=None).state_dict(), weights)
    ingest_some(gmv, tmp_path, 3, 1, size=(40, 30))
    args = ["--model", model, "--weights", weights, "--image-size", "64", "--device", "cpu", "-q"]
    gmv("embed", "--space", "ort", "--runtime", "onnxruntime", *args)
    gmv("embed", "--space", "eager", "--runtime", "torch", *args)
    space = spaces.get_space(conn, "ort")
    assert (space.dim, space.storage, space.weights_sha256) == (dim, storage, sha256_file(weights))
    assert (
        cosines(vectors_by_uri(conn, "eager", "training"), vectors_by_uri(conn, "ort", "training")).min()
        >= 0.9999
    )
    (meta,) = [
        json.loads(p.read_text()) for p in (tmp_path / "gmv_home" / "graphs").glob(f"{model}-*/meta.json")
    ]
    assert meta["key"]["weights"] == sha256_file(weights) and meta["min_cosine"] >= 0.9999


def test_progress_names_the_bottleneck_and_jpegs_decode_in_draft_mode(gmv, conn, tmp_path):
    import torch
    from PIL import Image

    from gmv_sql.embed.models import build_embedder
    from gmv_sql.embed.pipeline import ImageDataset
    from tests.factories import sha256

    rng = np.random.default_rng(5)
    photo = tmp_path / "big" / "photo.jpg"
    photo.parent.mkdir()
    smooth = Image.fromarray(rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)).resize(
        (800, 600), Image.BICUBIC
    )
    smooth.save(photo, quality=90)
    gmv("ingest", "training", photo.parent, "--owner", "o", "--license", "l", "-q")
    result = gmv("embed", "--space", "d", "--random-init", "--image-size", "64", "--device", "cpu")
    assert "bottleneck: " in result.output and "% of the time" in result.output  # the progress line
    assert "; bottleneck " in result.output.strip().splitlines()[-1]  # the summary
    space = spaces.get_space(conn, "d")
    assert space.preprocessing["jpeg_draft"] is True and space.preprocessing["resize_shorter"] == 73

    # The stored vector is the draft decode's (1/8 scale: 600 -> 75 rows, still >= 73), not the full one.
    embedder = build_embedder("efficientnet-lite0", random_init=True, image_size=64)
    item = [("training", 1, str(photo), sha256(photo))]
    _, drafted, _ = ImageDataset(item, embedder.transform, draft_size=73)[0]
    _, full, _ = ImageDataset(item, embedder.transform)[0]
    with Image.open(photo) as image:
        image.draft("RGB", (73, 73))
        assert image.size == (100, 75)
        assert torch.equal(drafted, embedder.transform(image.convert("RGB")))
    assert not torch.equal(drafted, full)
    (stored,) = vectors_by_uri(conn, "d", "training").values()
    with torch.inference_mode():
        expected = embedder.forward(drafted[None]).numpy()[0]
    assert float(np.dot(stored, expected) / np.linalg.norm(expected)) >= 0.9999


def test_device_cuda_without_a_gpu_is_one_line(gmv, conn, tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is here: --device cuda works")
    ingest_some(gmv, tmp_path, 1, 0, size=(12, 12))
    result = gmv("embed", "--space", "g", "--device", "cuda", "--precision", "fp16", "-q", ok=False)
    assert result.exit_code == 1 and len(result.output.strip().splitlines()) == 1
    assert "torch sees no CUDA GPU here; use --device cpu" in result.output
    assert spaces.find_space(conn, "g") is None
    for runtime in ("onnxruntime", "openvino"):
        with pytest.raises(runtimes.ConfigError, match="use --runtime torch"):
            runtimes.check_choice(runtime, "fp32", "cuda")
    assert runtimes.candidates("auto", "fp16", "cuda") == ["torch"]
