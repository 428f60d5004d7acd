"""Exported graphs and their cache (no database): gates, cache hits, corrupt and stale graphs."""

from __future__ import annotations

import json

import numpy as np
import pytest

from gmv_sql.embed import runtimes
from gmv_sql.embed.models import Embedder, build_embedder

pytestmark = pytest.mark.torch


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("GMV_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def small_effnet():
    return build_embedder("efficientnet-lite0", random_init=True, image_size=64)


def test_min_cosine_and_the_gate():
    a = np.array([[1.0, 0.0], [0.0, 0.0], [1.0, 1.0]])
    assert runtimes.min_cosine(a, a) == pytest.approx(1.0)
    assert runtimes.min_cosine(a, -a) == pytest.approx(-1.0)
    assert runtimes.min_cosine(a, a + [[0.0, 0.1], [0, 0], [0, 0]]) == pytest.approx(1 / np.sqrt(1.01))
    assert runtimes.min_cosine(a, np.full_like(a, np.nan)) == float("-inf")
    with pytest.raises(runtimes.GateError, match=r"min cosine 0\.995.* < 0\.9999"):
        runtimes.check_gate("m", "onnxruntime", "fp32", a[:1], np.array([[1.0, 0.1]]))
    assert runtimes.check_gate("m", "openvino", "bf16", a[:1], np.array([[1.0, 0.04]])) > 0.999


def test_graph_is_built_once_then_read_from_the_cache(home):
    embedder = small_effnet()
    first = runtimes.prepare(embedder, "onnxruntime", "fp32", "cpu")
    assert first.built and first.min_cosine >= 0.9999 and "not built yet" in first.notes[0]
    second = runtimes.prepare(embedder, "onnxruntime", "fp32", "cpu")
    assert not second.built and second.graph == first.graph
    meta = json.loads((first.graph.parent / "meta.json").read_text())
    assert meta["key"] == runtimes.graph_key(embedder, "fp32", "onnxruntime")
    sidecar = (first.graph.parent / "graph.onnx.sha256").read_text().split()[0]
    assert sidecar == meta["sha256"] == runtimes._sha256(first.graph)
    batch = runtimes.gate_batch(embedder.transform)
    np.testing.assert_allclose(second(batch), first(batch), rtol=0, atol=0)


def test_a_corrupt_graph_is_rebuilt(home):
    embedder = small_effnet()
    graph = runtimes.prepare(embedder, "onnxruntime", "fp32", "cpu").graph
    data = bytearray(graph.read_bytes())
    data[len(data) // 2] ^= 0xFF
    graph.write_bytes(bytes(data))
    again = runtimes.prepare(embedder, "onnxruntime", "fp32", "cpu")
    assert again.built and "corrupt" in again.notes[0]
    (graph.parent / "graph.onnx.sha256").unlink()
    assert "missing" in runtimes.prepare(embedder, "onnxruntime", "fp32", "cpu").notes[0]


def test_a_stale_graph_is_rebuilt(home):
    embedder = small_effnet()
    graph = runtimes.prepare(embedder, "onnxruntime", "fp32", "cpu").graph
    meta_file = graph.parent / "meta.json"
    meta = json.loads(meta_file.read_text())
    meta["stamp"]["torch"] = "1.0.0"
    meta_file.write_text(json.dumps(meta))
    again = runtimes.prepare(embedder, "onnxruntime", "fp32", "cpu")
    assert again.built and "stale" in again.notes[0]


def test_other_weights_or_input_size_get_another_graph(home):
    a = runtimes.graph_key(small_effnet(), "fp32", "onnxruntime")
    b = runtimes.graph_key(
        build_embedder("efficientnet-lite0", random_init=True, image_size=96), "fp32", "onnxruntime"
    )
    c = runtimes.graph_key(small_effnet(), "bf16", "openvino")
    assert len({runtimes.graph_folder(k) for k in (a, b, c)}) == 3


def test_the_gate_catches_a_graph_that_disagrees_with_torch(home):
    """A forward whose Python branch depends on the batch size: the trace (batch 2) keeps one branch,
    eager on the gate images (batch 16) takes the other, so the exported graph disagrees."""
    import torch

    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten()
    )
    net.eval()

    def forward(batch):
        out = net(batch)
        return out if batch.shape[0] != 2 else out.flip(1)

    embedder = Embedder(
        "toy",
        8,
        None,
        {"center_crop": 32, "feature": "toy", "init": "seed 0"},
        build_embedder("efficientnet-lite0", random_init=True, image_size=32).transform,
        forward,
        net,
    )
    with pytest.raises(runtimes.GateError, match="onnxruntime fp32 disagrees with torch eager fp32 for toy"):
        runtimes.prepare(embedder, "onnxruntime", "fp32", "cpu")
    assert not list(home.glob("graphs/*/graph.onnx"))
    reports = []
    runner = runtimes.prepare(embedder, "auto", "fp32", "cpu", report=reports.append)
    assert runner.runtime == "torch" and any("skipping onnxruntime" in r for r in reports)


def test_reduced_precision_is_gated_against_fp32(home):
    embedder = small_effnet()
    try:
        runner = runtimes.prepare(embedder, "torch", "bf16", "cpu")
    except runtimes.GateError as exc:
        assert "torch bf16 disagrees" in str(exc)
    else:
        assert runner.precision == "bf16" and runtimes.GATES["bf16"] <= runner.min_cosine < 1.0


def test_openvino_fp32_passes_the_gate_when_installed(home):
    pytest.importorskip("openvino")
    embedder = small_effnet()
    runner = runtimes.prepare(embedder, "openvino", "fp32", "cpu")
    assert runner.built and runner.runtime == "openvino" and runner.min_cosine >= 0.9999
    batch = runtimes.gate_batch(embedder.transform)
    import torch

    with torch.inference_mode():
        assert runtimes.min_cosine(embedder.forward(batch).numpy(), runner(batch)) >= 0.9999
