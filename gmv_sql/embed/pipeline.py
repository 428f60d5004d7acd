"""`gmv embed`: every training and generated image without a vector in the space gets one.

Images are decoded in DataLoader workers while the model runs (torch.inference_mode); vectors are
written with COPY BINARY in transactions of a few thousand rows, so an interrupted run keeps what it
committed and the next run embeds only the rest. A large first load drops the HNSW index and builds
it once at the end (much faster than inserting into the graph row by row).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
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

# A first load at least this large drops the HNSW index and rebuilds it after.
BULK_REBUILD_MIN_ROWS = 10_000
FLUSH_ROWS = 4096


@dataclass
class EmbedResult:
    space: EmbeddingSpace
    embedded: dict[str, int] = field(default_factory=lambda: {"training": 0, "generated": 0})
    bad: list[str] = field(default_factory=list)
    seconds: float = 0.0
    index_rebuilt: bool = False

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
            text += "; HNSW index rebuilt"
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
    return default_workers(8) if device == "cuda" else default_workers(4, cores_per_worker=2)


class ImageDataset:
    """(position, tensor, None) or (position, None, reason); the bytes must still match the stored sha256."""

    def __init__(self, items: list[tuple[str, int, str, str]], transform: Callable[[Any], Any]):
        self.items = items  # (kind, id, uri, sha256)
        self.transform = transform

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
        loader = make_loader(ImageDataset(items, embedder.transform), batch_size, workers, device)
        pending: dict[str, tuple[list[int], list[np.ndarray]]] = {"training": ([], []), "generated": ([], [])}
        with Progress("embedding", len(items), unit="images", enabled=progress) as bar:
            for positions, batch, bad in loader:
                for position, reason in bad:
                    line = f"{items[position][2]}: {reason}"
                    result.bad.append(line)
                    report(line)
                if batch is not None:
                    vectors = runner(batch)
                    if space.distance == "cosine" and not embedder.l2_normalised:
                        vectors = l2_normalise(vectors)
                    for kind in ("training", "generated"):
                        rows = [i for i, p in enumerate(positions) if items[p][0] == kind]
                        if rows:
                            pending[kind][0].extend(items[positions[i]][1] for i in rows)
                            pending[kind][1].append(vectors[rows])
                for kind, (ids, vecs) in pending.items():
                    if len(ids) >= flush_rows:
                        result.embedded[kind] += _flush(conn, space, kind, ids, vecs)
                bar.update(len(positions) + len(bad))
            for kind, (ids, vecs) in pending.items():
                result.embedded[kind] += _flush(conn, space, kind, ids, vecs)
    if rebuild or not store.index_exists(conn, space):
        with conn.transaction():
            store.build_index(conn, space)
        result.index_rebuilt = True
    result.seconds = time.monotonic() - started
    return result
