"""The embedding speed levers (no database): graph calls in cache-sized chunks on parallel streams, and
decode workers sending cropped uint8 pixels that the runtime's threads normalise bit for bit."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from gmv_sql.embed import runtimes
from gmv_sql.embed.models import build_embedder

pytestmark = pytest.mark.torch


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("GMV_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def test_graph_chunk_keeps_about_four_224px_images_per_call():
    assert [runtimes.graph_chunk(side) for side in (1024, 320, 224, 160, 128, 64, 32)] == [
        1,
        1,
        4,
        4,
        8,
        32,
        64,
    ]


class Recorder:
    """A fake graph call: doubles its input, records chunk sizes, fails if two threads share it."""

    def __init__(self):
        self.sizes: list[int] = []
        self.busy = threading.Lock()
        self.threads: set[int] = set()

    def __call__(self, x: np.ndarray) -> np.ndarray:
        assert self.busy.acquire(blocking=False), "one call used by two threads at once"
        try:
            assert x.dtype == np.float32 and x.flags.c_contiguous
            self.sizes.append(len(x))
            self.threads.add(threading.get_ident())
            time.sleep(0.02)
            return 2 * x.reshape(len(x), -1)[:, :3]
        finally:
            self.busy.release()


def test_streams_run_chunks_on_every_call_and_keep_the_order():
    calls = [Recorder(), Recorder()]
    streams = runtimes.Streams(calls, chunk=3)
    x = np.arange(10 * 3 * 2 * 2, dtype=np.float32).reshape(10, 3, 2, 2)
    np.testing.assert_array_equal(streams(x), 2 * x.reshape(10, -1)[:, :3])
    sizes = sorted(calls[0].sizes + calls[1].sizes)
    assert sizes == [1, 3, 3, 3]  # 10 images in calls of at most 3
    assert calls[0].sizes and calls[1].sizes  # both streams worked
    small = np.ones((2, 3, 2, 2), dtype=np.float32)
    np.testing.assert_array_equal(streams(small), 2 * small.reshape(2, -1)[:, :3])  # one call


def test_streams_normalise_pixels_in_their_threads():
    calls = [Recorder(), Recorder()]
    streams = runtimes.Streams(calls, chunk=2)
    embedder = build_embedder("efficientnet-lite0", random_init=True, image_size=32)
    pixels = np.random.default_rng(0).integers(0, 256, size=(5, 32, 32, 3), dtype=np.uint8)
    expected = 2 * embedder.normalise(pixels).reshape(5, -1)[:, :3]
    np.testing.assert_array_equal(streams.pixels(pixels, embedder.normalise), expected)
    assert sorted(calls[0].sizes + calls[1].sizes) == [1, 2, 2]


@pytest.mark.parametrize(
    "model,kwargs",
    [
        ("efficientnet-lite0", {}),
        ("efficientnet-lite0", {"image_size": 64, "random_init": True}),
        ("resnet50", {"random_init": True}),
    ],
)
def test_crop_then_normalise_is_the_models_transform_bit_for_bit(model, kwargs):
    import torch

    embedder = build_embedder(model, **kwargs)
    images = runtimes.gate_images()
    expected = torch.stack([embedder.transform(image) for image in images]).numpy()
    crops = torch.stack([embedder.crop(image) for image in images])
    assert crops.dtype == torch.uint8 and tuple(crops.shape[1:]) == (*expected.shape[2:], 3)
    got = embedder.normalise(crops)
    assert got.dtype == np.float32 and got.shape == expected.shape
    np.testing.assert_array_equal(got, expected)


def test_the_pixels_model_has_no_crop_step():
    embedder = build_embedder("pixels")
    assert embedder.crop is None and embedder.normalise is None


def test_an_onnxruntime_runner_runs_chunks_on_one_stream_per_core(home):
    import torch

    embedder = build_embedder("efficientnet-lite0", random_init=True, image_size=160)
    runner = runtimes.prepare(embedder, "onnxruntime", "fp32", "cpu")
    assert isinstance(runner.run, runtimes.Streams)
    assert runner.run.chunk == runtimes.graph_chunk(160) == 4
    assert runner.run.free.qsize() == torch.get_num_threads()
    images = runtimes.gate_images(10)  # three calls of at most 4
    crops = torch.stack([embedder.crop(image) for image in images])
    with torch.inference_mode():
        expected = embedder.forward(torch.stack([embedder.transform(image) for image in images])).numpy()
    assert runtimes.min_cosine(expected, runner.pixels(crops, embedder.normalise)) >= 0.9999
    np.testing.assert_array_equal(
        runner.pixels(crops, embedder.normalise), runner(torch.from_numpy(embedder.normalise(crops)))
    )


def test_a_torch_runner_takes_pixels_too():
    import torch

    embedder = build_embedder("efficientnet-lite0", random_init=True, image_size=32)
    runner = runtimes.prepare(embedder, "torch", "fp32", "cpu")
    crops = torch.stack([embedder.crop(image) for image in runtimes.gate_images(3)])
    with torch.inference_mode():
        expected = embedder.forward(torch.from_numpy(embedder.normalise(crops))).numpy()
    np.testing.assert_array_equal(runner.pixels(crops, embedder.normalise), expected)


@pytest.mark.parametrize("runtime", ["onnxruntime", "openvino"])
def test_every_call_is_warmed_up_alone_before_the_streams_run(monkeypatch, tmp_path, runtime):
    """OpenVINO deadlocked when two threads made their first call at once (its numpy set-up); each
    call now runs one image, one after the other, before the streams start."""
    calls = [Recorder(), Recorder()]
    monkeypatch.setattr(runtimes, f"_{runtime}_calls", lambda *args: calls)
    monkeypatch.setattr(runtimes, "_torch_threads", lambda: 2)
    streams = runtimes._graph_run(runtime, tmp_path / "graph.onnx", "fp32", 224)
    assert [c.sizes for c in calls] == [[1], [1]]  # Recorder fails if two threads share a call
    streams(np.zeros((8, 3, 224, 224), dtype=np.float32))
    assert sorted(calls[0].sizes[1:] + calls[1].sizes[1:]) == [4, 4]


def test_a_cached_openvino_graph_runs_in_parallel_from_a_fresh_process(home):
    """The deadlock showed with a cached graph in a new process (no gate ran before the streams)."""
    pytest.importorskip("openvino")
    import os
    import subprocess
    import sys

    embedder = build_embedder("efficientnet-lite0", random_init=True, image_size=160)
    runtimes.prepare(embedder, "openvino", "fp32", "cpu")  # builds and caches the graph
    script = (
        "import numpy as np, torch\n"
        "from gmv_sql.embed import runtimes\n"
        "from gmv_sql.embed.models import build_embedder\n"
        "e = build_embedder('efficientnet-lite0', random_init=True, image_size=160)\n"
        "r = runtimes.prepare(e, 'openvino', 'fp32', 'cpu')\n"
        "assert not r.built\n"
        "print(r(np.zeros((16, 3, 160, 160), np.float32)).shape)\n"
    )
    for _ in range(3):
        done = subprocess.run(
            [sys.executable, "-c", script],
            env={**os.environ, "GMV_HOME": str(home)},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr[-2000:]
        assert "(16, 1280)" in done.stdout
