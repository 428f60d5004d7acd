"""gmv embed keeps two batches in flight for graph runtimes (their streams never wait for the main loop)
and still stores every vector on its own image; other runners get one batch at a time."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from PIL import Image

from gmv_sql import spaces
from gmv_sql.embed import pipeline, runtimes
from gmv_sql.embed.models import build_embedder, l2_normalise
from tests.cli.test_embed import ingest_some, vectors_by_uri

pytestmark = pytest.mark.torch


class Overlap:
    """Counts forward passes running at once; a forward's vector is the first 1280 normalised inputs."""

    def __init__(self):
        self.lock = threading.Lock()
        self.running = 0
        self.most = 0

    def forward(self, x: np.ndarray) -> np.ndarray:
        with self.lock:
            self.running += 1
            self.most = max(self.most, self.running)
        try:
            time.sleep(0.05)
            return np.asarray(x, dtype=np.float32).reshape(len(x), -1)[:, :1280] + 1.0
        finally:
            with self.lock:
                self.running -= 1


class FakeStreams(runtimes.Streams):
    def __init__(self, overlap: Overlap):
        self.overlap = overlap

    def __call__(self, batch) -> np.ndarray:
        return self.overlap.forward(batch)

    def pixels(self, batch, normalise) -> np.ndarray:
        return self.overlap.forward(normalise(batch))


def expected_vector(embedder, path) -> np.ndarray:
    with Image.open(path) as image:
        crop = embedder.crop(image.convert("RGB"))
    x = embedder.normalise(crop[None])
    return l2_normalise(x.reshape(1, -1)[:, :1280] + 1.0)[0]


@pytest.mark.parametrize(("streams", "most"), [(True, 2), (False, 1)])
def test_graph_runtimes_get_two_batches_at_once_and_vectors_stay_on_their_images(
    gmv, conn, tmp_path, streams, most
):
    training, generated = ingest_some(gmv, tmp_path, 9, 4, size=(20, 20))
    embedder = build_embedder("efficientnet-lite0", random_init=True, image_size=32)
    with conn.transaction():
        space = spaces.get_or_create_space(
            conn, "fl", model=embedder.name, dim=embedder.dim, preprocessing=embedder.preprocessing
        )
    overlap = Overlap()
    run = FakeStreams(overlap) if streams else (lambda batch: overlap.forward(batch.numpy()))
    runner = runtimes.Runner("onnxruntime" if streams else "torch", "fp32", "cpu", run)
    result = pipeline.embed_missing(
        conn, space, embedder, device="cpu", batch_size=2, workers=0, progress=False, runner=runner
    )
    assert result.embedded == {"training": 9, "generated": 4}
    assert overlap.most == most
    for kind, paths in (("training", training), ("generated", generated)):
        stored = vectors_by_uri(conn, "fl", kind)
        assert len(stored) == len(paths)
        for uri, vector in stored.items():
            np.testing.assert_allclose(vector, expected_vector(embedder, uri), rtol=0, atol=1e-6)
