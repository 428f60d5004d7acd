"""`gmv embed`: every training and generated image without a vector in the space gets one.

Three stages overlap: DataLoader worker processes read each file once (sha256 from the same bytes),
decode it (JPEGs at reduced size in PIL's draft mode when the space records jpeg_draft) and apply the
model's transform - on CPU only its geometric half (resize, crop: uint8 pixels, a quarter of the bytes
to pass between processes), the runtime's threads normalising them (bit for bit the same input); the
main thread runs the model through a runtime (gmv_sql.embed.runtimes); a writer thread COPYs the
vectors (COPY BINARY) in transactions of FLUSH_ROWS rows, so an interrupted run keeps what it
committed and the next run embeds only the rest. The progress line shows images/s and the stage the
main loop waits on most (the bottleneck). A first load of BULK_REBUILD_MIN_ROWS or more drops the
HNSW index and builds it once at the end (much faster than inserting into the graph row by row).
"""

from __future__ import annotations

import collections
import contextlib
import hashlib
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import psycopg

from gmv_sql.config import default_workers
from gmv_sql.db import locks
from gmv_sql.embed import runtimes, store
from gmv_sql.embed.models import Embedder, l2_normalise
from gmv_sql.embed.runtimes import Runner
from gmv_sql.errors import ConfigError
from gmv_sql.progress import Progress
from gmv_sql.spaces import EmbeddingSpace

# A first load at least this large drops the HNSW index and builds it once after: 2,000 rows of 1280-d
# vectors took 2.9 s to COPY into a space with its HNSW index and 0.1 s + 0.5 s (COPY, then the build)
# without it (docs/BENCHMARKS.md).
BULK_REBUILD_MIN_ROWS = 1_000
# Rows per COPY transaction: small enough that the writer stores vectors while the model runs on (the
# last flush is the only one nobody overlaps), large enough that commits cost nothing.
FLUSH_ROWS = 512


@dataclass
class EmbedResult:
    space: EmbeddingSpace
    embedded: dict[str, int] = field(default_factory=lambda: {"training": 0, "generated": 0})
    bad: list[str] = field(default_factory=list)
    seconds: float = 0.0
    index_rebuilt: bool = False
    stages: dict[str, float] = field(default_factory=dict)  # main-loop seconds per stage (StageClock)

    @property
    def total(self) -> int:
        return sum(self.embedded.values())

    def summary(self) -> str:
        s = self.space
        rate = self.total / self.seconds if self.seconds > 0 else 0.0
        text = (
            f"space {s.name!r} ({s.model}, {s.dim}-d {s.storage}, {s.distance}): embedded "
            f"{self.embedded['training']:,} training + {self.embedded['generated']:,} generated images "
            f"in {self.seconds:.1f} s ({rate:,.1f} images/s)"
        )
        if self.bad:
            text += f"; {len(self.bad):,} unreadable (skipped, run again after fixing)"
        if self.index_rebuilt:
            text += "; IVFFlat index rebuilt" if s.index_kind == "ivfflat" else "; HNSW index rebuilt"
        if self.stages and sum(self.stages.values()) > 0:
            stage = max(self.stages, key=self.stages.get)
            text += f"; bottleneck {stage}"
        return text


def pick_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda, but torch sees no CUDA GPU here; use --device cpu (or auto)")
    if device not in ("cpu", "cuda"):
        raise ConfigError(f"--device {device!r} must be auto, cpu or cuda")
    return device


def choose_batch_size(embedder: Embedder, runner: Runner, cpu_batch: int = 64) -> int:
    """64 on CPU; on a GPU the largest power of two whose activations fit half the free memory
    (measured with a probe batch of 8), between 8 and 1024."""
    if runner.device != "cuda" or embedder.module is None:
        return cpu_batch
    import torch

    side = int(embedder.preprocessing.get("center_crop", 224))
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    before = torch.cuda.memory_allocated()
    runner(torch.zeros(8, 3, side, side))
    torch.cuda.synchronize()
    per_image = max(1, (torch.cuda.max_memory_allocated() - before) // 8)
    free, _ = torch.cuda.mem_get_info()
    fits = int(free * 0.5 // per_image)
    size = 8
    while size * 2 <= min(fits, 1024):
        size *= 2
    return size


def decode_workers(device: str) -> int:
    # On CPU the model needs the cores; on a GPU decoding is the bottleneck.
    return default_workers(8) if device == "cuda" else default_workers(4, cores_per_worker=1)


class ImageDataset:
    """(position, tensor, None) or (position, None, reason); the bytes must still match the stored sha256."""

    def __init__(
        self, items: list[tuple[str, int, str, str]], transform: Callable[[Any], Any], draft_size: int = 0
    ):
        self.items = items  # (kind, id, uri, sha256)
        self.transform = transform
        self.draft_size = draft_size  # > 0: JPEGs decode at 1/2, 1/4 or 1/8 scale while both sides stay >= it

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, position: int):
        import io

        from PIL import Image, ImageOps

        from gmv_sql.ingest.files import open_regular_file

        _, _, uri, sha256 = self.items[position]
        try:
            handle, reason = open_regular_file(uri)
            if handle is None:
                return position, None, reason
            with handle:
                data = handle.read()
            if hashlib.sha256(data).hexdigest() != sha256:
                return position, None, "file changed since ingest (sha256 differs); ingest it again"
            with Image.open(io.BytesIO(data)) as image:
                if self.draft_size and image.format == "JPEG":
                    image.draft("RGB", (self.draft_size, self.draft_size))
                image = ImageOps.exif_transpose(image).convert("RGB")
            return position, self.transform(image), None
        except OSError as exc:
            return position, None, f"unreadable: {exc.strerror or str(exc).splitlines()[0]}"
        except Exception as exc:  # noqa: BLE001 - one bad file must not stop the run
            return position, None, f"cannot decode: {type(exc).__name__}: {str(exc)[:200]}"


def collate(samples):
    import torch

    good = [(p, t) for p, t, _ in samples if t is not None]
    bad = [(p, r) for p, _, r in samples if r is not None]
    positions = [p for p, _ in good]
    batch = torch.stack([t for _, t in good]) if good else None
    return positions, batch, bad


def make_loader(dataset: ImageDataset, batch_size: int, workers: int, device: str):
    from torch.utils.data import DataLoader

    if len(dataset) <= batch_size:
        workers = 0  # starting worker processes costs more than decoding one batch
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=False,
        num_workers=workers,
        collate_fn=collate,
        pin_memory=device == "cuda",
        prefetch_factor=4 if workers else None,
        persistent_workers=False,
    )


class StageClock:
    """Seconds the main loop spends waiting for decoded batches, running the model and waiting for the
    COPY writer; the stage it spends most in is the bottleneck (the others keep up behind it)."""

    def __init__(self):
        self.seconds = {"decode": 0.0, "inference": 0.0, "copy": 0.0}

    @contextlib.contextmanager
    def timing(self, stage: str):
        started = time.monotonic()
        try:
            yield
        finally:
            self.seconds[stage] += time.monotonic() - started

    def summary(self) -> str:
        total = sum(self.seconds.values())
        if total <= 0:
            return ""
        stage = max(self.seconds, key=self.seconds.get)
        return f"bottleneck: {stage} ({100 * self.seconds[stage] / total:.0f}% of the time)"


class CopyWriter:
    """COPYs vectors into PostgreSQL in a thread, one transaction per flush, while the model runs on.

    At most two flushes wait in line (memory stays bounded); an error in the thread is raised in the
    caller at its next put or at close.
    """

    def __init__(self, conn: psycopg.Connection, space: EmbeddingSpace, result: EmbedResult):
        self.conn, self.space, self.result = conn, space, result
        self.queue: queue.Queue = queue.Queue(maxsize=2)
        self.error: BaseException | None = None
        self.closed = False
        self.thread = threading.Thread(target=self._work, name="gmv-embed-copy", daemon=True)
        self.thread.start()

    def _work(self) -> None:
        while True:
            job = self.queue.get()
            if job is None:
                return
            if self.error is not None:
                continue  # drain: nothing more is written after a failure
            kind, ids, vectors = job
            try:
                self.result.embedded[kind] += _flush(self.conn, self.space, kind, ids, vectors)
            except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
                self.error = exc

    def _raise(self) -> None:
        if self.error is not None:
            error, self.error = self.error, None
            raise error

    def put(self, kind: str, ids: list[int], vectors: list[np.ndarray]) -> None:
        self._raise()
        if ids:
            self.queue.put((kind, list(ids), list(vectors)))
            ids.clear()
            vectors.clear()

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.queue.put(None)
            self.thread.join()
        self._raise()


def _flush(conn: psycopg.Connection, space, kind: str, ids: list[int], vectors: list[np.ndarray]) -> int:
    if not ids:
        return 0
    with conn.transaction():
        n = store.copy_vectors(
            conn,
            space,
            kind,
            np.asarray(ids, dtype=np.int64),
            np.concatenate(vectors),
            source=f"{kind} batch",
        )
    ids.clear()
    vectors.clear()
    return n


def embed_missing(
    conn: psycopg.Connection,
    space: EmbeddingSpace,
    embedder: Embedder,
    *,
    device: str = "auto",
    batch_size: int | None = None,
    workers: int | None = None,
    report: Callable[[str], None] = lambda line: None,
    progress: bool = True,
    flush_rows: int | None = None,
    runner: Runner | None = None,
) -> EmbedResult:
    """Embed every image of both kinds that has no vector in space; conn must be autocommit.

    runner: the forward pass (gmv_sql.embed.runtimes.prepare); default torch eager fp32 on device.
    One gmv embed per space at a time (advisory lock), so two runs never embed the same image twice.
    """
    with locks.space_lock(conn, locks.EMBED, space):
        return _embed_missing(
            conn,
            space,
            embedder,
            device=device,
            batch_size=batch_size,
            workers=workers,
            report=report,
            progress=progress,
            flush_rows=flush_rows,
            runner=runner,
        )


def _embed_missing(
    conn: psycopg.Connection,
    space: EmbeddingSpace,
    embedder: Embedder,
    *,
    device: str,
    batch_size: int | None,
    workers: int | None,
    report: Callable[[str], None],
    progress: bool,
    flush_rows: int | None,
    runner: Runner | None,
) -> EmbedResult:

    started = time.monotonic()
    flush_rows = flush_rows or FLUSH_ROWS
    result = EmbedResult(space)
    device = pick_device(device)
    items = [("training", *row) for row in store.missing(conn, space, "training")]
    items += [("generated", *row) for row in store.missing(conn, space, "generated")]
    n_training = sum(1 for i in items if i[0] == "training")
    rebuild = n_training >= BULK_REBUILD_MIN_ROWS and not store.has_training_vectors(conn, space)
    if rebuild:
        with conn.transaction():
            store.drop_index(conn, space)
    if items:
        if runner is None:
            runner = runtimes.prepare(embedder, "torch", "fp32", device)
        if batch_size is None:
            batch_size = choose_batch_size(embedder, runner)
        if workers is None:
            workers = decode_workers(device)
        draft = (
            int(space.preprocessing.get("resize_shorter", 0)) if space.preprocessing.get("jpeg_draft") else 0
        )
        # On CPU the decode workers send the cropped uint8 pixels (a quarter of the bytes of the float
        # batch, and no float work in the workers); the runtime's threads normalise them.
        pixels = runner.device == "cpu" and embedder.crop is not None and embedder.normalise is not None
        dataset = ImageDataset(items, embedder.crop if pixels else embedder.transform, draft_size=draft)

        def forward(batch) -> np.ndarray:
            return runner.pixels(batch, embedder.normalise) if pixels else runner(batch)

        # Graph runtimes get the next batch while they finish this one: their streams never wait for
        # the main loop (collecting a batch, queueing vectors) nor for the last chunk of a batch.
        in_flight = 2 if isinstance(runner.run, runtimes.Streams) else 1
        loader = iter(make_loader(dataset, batch_size, workers, device))
        pending: dict[str, tuple[list[int], list[np.ndarray]]] = {"training": ([], []), "generated": ([], [])}
        stages = StageClock()
        writer = CopyWriter(conn, space, result)
        try:
            with (
                Progress("embedding", len(items), unit="images", enabled=progress) as bar,
                ThreadPoolExecutor(in_flight, thread_name_prefix="gmv-embed-forward") as forwards,
            ):
                waiting: collections.deque = collections.deque()  # (forward future or None, positions, bad)
                exhausted = False
                while True:
                    while not exhausted and len(waiting) < in_flight:
                        with stages.timing("decode"):
                            step = next(loader, None)
                        if step is None:
                            exhausted = True
                        else:
                            positions, batch, bad = step
                            future = None if batch is None else forwards.submit(forward, batch)
                            waiting.append((future, positions, bad))
                    if not waiting:
                        break
                    future, positions, bad = waiting.popleft()
                    for position, reason in bad:
                        line = f"{items[position][2]}: {reason}"
                        result.bad.append(line)
                        report(line)
                    if future is not None:
                        with stages.timing("inference"):
                            vectors = future.result()
                            if space.distance == "cosine" and not embedder.l2_normalised:
                                vectors = l2_normalise(vectors)
                        for kind in ("training", "generated"):
                            rows = [i for i, p in enumerate(positions) if items[p][0] == kind]
                            if rows:
                                pending[kind][0].extend(items[positions[i]][1] for i in rows)
                                pending[kind][1].append(vectors[rows])
                    for kind, (ids, vecs) in pending.items():
                        if len(ids) >= flush_rows:
                            with stages.timing("copy"):
                                writer.put(kind, ids, vecs)
                    bar.detail = stages.summary()
                    bar.update(len(positions) + len(bad))
                with stages.timing("copy"):
                    for kind, (ids, vecs) in pending.items():
                        writer.put(kind, ids, vecs)
                    writer.close()
                result.stages = stages.seconds
        finally:
            writer.close()
    if rebuild or not store.index_exists(conn, space):
        with conn.transaction():
            store.build_index(conn, space)
        result.index_rebuilt = True
    result.seconds = time.monotonic() - started
    return result
