"""Inference runtimes: the same torch model run by torch eager, ONNX Runtime or OpenVINO, fp32 or bf16.

The models stay defined in torch/torchvision (gmv_sql.embed.models). ONNX Runtime and OpenVINO run a
graph exported from the model with torch.onnx once and cached under $GMV_HOME/graphs, in a folder
keyed by model, weights sha256, input size, precision and runtime; a sha256 sidecar and a meta file
detect a corrupt or stale graph, which is then rebuilt. Every graph (and torch's own bf16/fp16 path)
passes a faithfulness gate when it is built: per image, cosine >= 0.9999 to torch eager fp32 for
fp32, >= 0.999 for bf16/fp16, on real photographs and synthetic images (the gate set below).

Preprocessing is the model's own transform for every runtime (one transform, bit-identical inputs);
runtimes differ only in the forward pass. ONNX Runtime and OpenVINO run a batch in chunks of about
four 224 px images (graph_chunk: the early feature maps stay in the CPU caches), one stream of one
thread per core (Streams: no barrier between threads inside an operator, so a decode process that
takes a core for a moment delays one chunk, not every operator). onnxruntime and openvino are
imported lazily, here only.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import io
import json
import os
import queue
import time
import warnings
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from gmv_sql.config import gmv_home
from gmv_sql.errors import ConfigError, GmvError, InputError

RUNTIMES = ("auto", "torch", "onnxruntime", "openvino")
PRECISIONS = ("fp32", "bf16", "fp16")
# Minimum per-image cosine to torch eager fp32 (the gates).
GATES = {"fp32": 0.9999, "bf16": 0.999, "fp16": 0.999}
# Bump when the export changes: graphs cached by an older gmv become stale and are rebuilt.
GRAPH_FORMAT = 1
ONNX_OPSET = 17
GATE_IMAGES = 16
# Images per call of an exported graph: about four 224 x 224 px images (0.2 Mpx). Bigger calls push the
# early feature maps out of the CPU caches: efficientnet-lite0 through ONNX Runtime used 25-35% less CPU
# per image in calls of 4 than of 64 at 224 px, was fastest at 8 at 128 px and at 16-64 at 64 px, and
# ResNet-50 (compute-bound) was the same at 4 and 64 (benchmarks/embed_variants.py, docs/BENCHMARKS.md).
GRAPH_CHUNK_PIXELS = 4 * 224 * 224
GRAPH_CHUNK_MAX = 64
_PIP_NAMES = {"onnxruntime": "onnxruntime", "openvino": "openvino"}
# auto: fastest first (measured in docs/BENCHMARKS.md), among those installed and passing the gate.
# OpenVINO (optional) before ONNX Runtime (a regular dependency): with the same chunks and streams it
# ran efficientnet-lite0 at 224 px 8-37% faster in `gmv embed` and 8-15% in the bare loop, in four runs.
_AUTO_ORDER = {
    ("cpu", "fp32"): ("openvino", "onnxruntime", "torch"),
    ("cpu", "bf16"): ("openvino", "torch"),
    ("cuda", "fp32"): ("torch",),
    ("cuda", "bf16"): ("torch",),
    ("cuda", "fp16"): ("torch",),
}


class GateError(InputError):
    """An exported graph (or a reduced precision) disagrees with torch eager fp32 beyond the gate."""


class ExportError(ConfigError):
    """torch.onnx cannot export the model (an operator without an ONNX form)."""


def installed(runtime: str) -> bool:
    if runtime == "torch":
        return True
    return importlib.util.find_spec(_PIP_NAMES[runtime]) is not None


def check_choice(runtime: str, precision: str, device: str) -> None:
    """One-line refusals for a runtime/precision/device that cannot work, before any model is built."""
    if runtime not in RUNTIMES:
        raise ConfigError(f"unknown runtime {runtime!r}; use one of {', '.join(RUNTIMES)}")
    if precision not in PRECISIONS:
        raise ConfigError(f"unknown precision {precision!r}; use one of {', '.join(PRECISIONS)}")
    if device == "cpu" and precision == "fp16":
        raise ConfigError("--precision fp16 needs --device cuda; on CPU use fp32 or bf16")
    if runtime == "auto":
        return
    if device == "cuda" and runtime != "torch":
        raise ConfigError(
            f"--runtime {runtime} runs on CPU here; use --runtime torch (or auto) with --device cuda"
        )
    if runtime == "onnxruntime" and precision != "fp32":
        raise ConfigError(
            f"--runtime onnxruntime runs fp32 only here, not {precision}; use --precision fp32, "
            "or --runtime openvino / torch for bf16"
        )
    if runtime == "openvino" and precision not in ("fp32", "bf16"):
        raise ConfigError(f"--runtime openvino runs fp32 or bf16, not {precision}")
    if not installed(runtime):
        raise ConfigError(
            f"--runtime {runtime} is not installed; pip install {_PIP_NAMES[runtime]} "
            f"(or the gmv-sql[{runtime}] extra), or use --runtime auto"
        )


def candidates(runtime: str, precision: str, device: str) -> list[str]:
    """The runtimes to try, in order: the one asked for, or auto's installed ones, fastest first."""
    check_choice(runtime, precision, device)
    if runtime != "auto":
        return [runtime]
    return [r for r in _AUTO_ORDER[(device, precision)] if installed(r)]


def graphs_dir() -> Path:
    return gmv_home() / "graphs"


@dataclass
class Runner:
    """A forward pass: a CPU float32 batch (n, 3, h, w) in, float32 features (n, dim) out."""

    runtime: str
    precision: str
    device: str
    run: Callable[[Any], np.ndarray]
    min_cosine: float = 1.0  # of the gate (1.0: torch eager fp32 itself)
    graph: Path | None = None
    built: bool = False  # the graph was exported (and gated) by this call, not found in the cache
    notes: list[str] = field(default_factory=list)

    def __call__(self, batch) -> np.ndarray:
        return self.run(batch)

    def pixels(self, batch, normalise: Callable[[Any], np.ndarray]) -> np.ndarray:
        """The forward pass of uint8 (n, h, w, 3) pixels, normalised by the embedder's normalise."""
        pixels = getattr(self.run, "pixels", None)
        if pixels is not None:
            return pixels(batch, normalise)
        import torch

        return self.run(torch.from_numpy(normalise(batch)))


# --- the gate -----------------------------------------------------------------------------------


def gate_images(n: int = GATE_IMAGES) -> list:
    """Deterministic PIL RGB images: crops of scikit-learn's two sample photographs plus synthetic ones
    (smooth colour fields, edges and noise), so the gate sees natural statistics and hard cases."""
    from PIL import Image

    images = []
    try:
        from sklearn.datasets import load_sample_images

        for photo in load_sample_images().images:  # 427 x 640 x 3 uint8
            h, w = photo.shape[:2]
            for top, left, side in ((0, 0, h), (h // 4, w // 3, h // 2), (h // 3, 0, h // 3), (0, w - h, h)):
                images.append(
                    Image.fromarray(np.ascontiguousarray(photo[top : top + side, left : left + side]))
                )
    except Exception:  # noqa: BLE001 - the photographs are a bonus; synthetic images still gate
        pass
    rng = np.random.default_rng(0)
    while len(images) < n:
        coarse = rng.integers(0, 256, size=(4, 4, 3), dtype=np.uint8)
        field_ = np.asarray(
            Image.fromarray(coarse).resize((96, 96), Image.Resampling.BICUBIC), dtype=np.float32
        )
        field_[:, 40:44] = 255.0 * (len(images) % 2)  # an edge
        field_ += rng.normal(0, 12, size=field_.shape)
        images.append(Image.fromarray(np.clip(field_, 0, 255).astype(np.uint8)))
    return images[:n]


def gate_batch(transform: Callable[[Any], Any]):
    import torch

    return torch.stack([transform(image) for image in gate_images()])


def min_cosine(reference: np.ndarray, candidate: np.ndarray) -> float:
    """The smallest per-row cosine similarity (two all-zero rows agree)."""
    a = np.asarray(reference, dtype=np.float64)
    b = np.asarray(candidate, dtype=np.float64)
    na, nb = np.linalg.norm(a, axis=1), np.linalg.norm(b, axis=1)
    both_zero = (na == 0) & (nb == 0)
    cos = (a * b).sum(axis=1) / np.where(na * nb == 0, 1, na * nb)
    cos[both_zero] = 1.0
    if not np.isfinite(b).all():
        return float("-inf")
    return float(cos.min())


def check_gate(
    model: str, runtime: str, precision: str, reference: np.ndarray, candidate: np.ndarray
) -> float:
    worst = min_cosine(reference, candidate)
    if worst < GATES[precision]:
        raise GateError(
            f"{runtime} {precision} disagrees with torch eager fp32 for {model}: min cosine {worst:.6f} "
            f"< {GATES[precision]} on the gate images; use --runtime torch --precision fp32 (or another runtime)"
        )
    return worst


# --- runtimes -----------------------------------------------------------------------------------


def _torch_threads() -> int:
    import torch

    return torch.get_num_threads()


def torch_runner(embedder, precision: str, device: str) -> Runner:
    import torch

    module = embedder.module
    if precision == "fp32":

        def run(batch):
            with torch.inference_mode():
                return embedder.forward(batch.to(device, non_blocking=True)).float().cpu().numpy()

        return Runner("torch", "fp32", device, run)
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    if module is not None and device == "cpu":
        module.to(memory_format=torch.channels_last)  # oneDNN's fast bf16 path (AMX) wants NHWC

    def run(batch):
        batch = batch.to(device, non_blocking=True)
        if device == "cpu":
            batch = batch.contiguous(memory_format=torch.channels_last)
        with torch.inference_mode(), torch.autocast(device_type=device, dtype=dtype):
            return embedder.forward(batch).float().cpu().numpy()

    return Runner("torch", precision, device, run)


class _Forward:
    """A torch.nn.Module around an embedder's forward (what torch.onnx.export traces)."""

    def __new__(cls, embedder):
        import torch

        class Forward(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.model = embedder.module

            def forward(self, x):
                return embedder.forward(x)

        return Forward().eval()


def graph_key(embedder, precision: str, runtime: str) -> dict[str, Any]:
    """What a cached graph is for: a different value means a different graph."""
    pre = embedder.preprocessing
    return {
        "model": embedder.name,
        "weights": embedder.weights_sha256 or pre.get("init", "none"),
        "input_size": pre.get("center_crop"),
        "feature": pre.get("feature"),
        "precision": precision,
        "runtime": runtime,
    }


def _stamp() -> dict[str, Any]:
    import torch

    return {"graph_format": GRAPH_FORMAT, "opset": ONNX_OPSET, "torch": torch.__version__}


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def graph_folder(key: dict[str, Any]) -> Path:
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    name = f"{key['model']}-{key['input_size']}px-{key['runtime']}-{key['precision']}-{digest}"
    return graphs_dir() / name


def cached_graph(key: dict[str, Any]) -> tuple[Path | None, str]:
    """(the cached graph, '') when it is whole and current, else (None, why it must be rebuilt)."""
    folder = graph_folder(key)
    graph, sidecar, meta_file = folder / "graph.onnx", folder / "graph.onnx.sha256", folder / "meta.json"
    if not folder.exists():
        return None, "not built yet"
    try:
        meta = json.loads(meta_file.read_text())
        recorded = sidecar.read_text().split()[0]
    except (OSError, ValueError, IndexError):
        return None, "meta or sha256 file missing or unreadable"
    if meta.get("key") != key or meta.get("stamp") != _stamp():
        return None, "stale (built for another key, torch version or graph format)"
    if not graph.is_file() or _sha256(graph) != recorded or meta.get("sha256") != recorded:
        return None, "corrupt (sha256 differs)"
    return graph, ""


def export_onnx(embedder, path: Path, input_size: int) -> None:
    import torch

    module = _Forward(embedder)
    example = torch.zeros(2, 3, input_size, input_size)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fastpath = torch.backends.mha.get_fastpath_enabled()
    try:
        # The fused attention kernel (ViT's fast path) has no ONNX form; the plain ops are the same maths.
        torch.backends.mha.set_fastpath_enabled(False)
        with warnings.catch_warnings(), torch.no_grad(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            torch.onnx.export(
                module,
                (example,),
                str(tmp),
                dynamo=False,
                input_names=["image"],
                output_names=["feature"],
                dynamic_axes={"image": {0: "n"}, "feature": {0: "n"}},
                opset_version=ONNX_OPSET,
            )
    except Exception as exc:  # noqa: BLE001 - any exporter failure is one user-facing reason
        tmp.unlink(missing_ok=True)
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise ExportError(f"cannot export {embedder.name} to ONNX ({reason}); use --runtime torch") from None
    finally:
        torch.backends.mha.set_fastpath_enabled(fastpath)
    os.replace(tmp, path)


def _onnxruntime_calls(graph: Path, threads: int, streams: int) -> list[Callable[[np.ndarray], np.ndarray]]:
    """streams callables that may run at the same time (one session: ONNX Runtime's run is thread-safe)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads if streams == 1 else 1
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    # No busy-waiting between runs: in gmv embed the decode workers and the COPY need those cores.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = ort.InferenceSession(str(graph), options, providers=["CPUExecutionProvider"])

    def run(x):
        return session.run(None, {"image": x})[0]

    return [run] * streams


def _openvino_calls(
    graph: Path, precision: str, threads: int, streams: int
) -> list[Callable[[np.ndarray], np.ndarray]]:
    """streams callables that may run at the same time (one infer request per OpenVINO stream)."""
    import openvino as ov

    core = ov.Core()
    config = {"INFERENCE_PRECISION_HINT": "bf16" if precision == "bf16" else "f32"}
    if streams == 1:
        config.update({"INFERENCE_NUM_THREADS": threads, "PERFORMANCE_HINT": "LATENCY"})
    else:
        config.update(
            {"INFERENCE_NUM_THREADS": streams, "NUM_STREAMS": streams, "PERFORMANCE_HINT": "THROUGHPUT"}
        )
    compiled = core.compile_model(core.read_model(str(graph)), "CPU", config)

    def call(request):
        return lambda x: np.array(next(iter(request.infer({0: x}).values())), dtype=np.float32)

    return [call(compiled.create_infer_request()) for _ in range(streams)]


def graph_chunk(input_size: int) -> int:
    """Images per forward call of a graph at this input side: the largest power of two up to
    GRAPH_CHUNK_PIXELS / side^2 (at least 1, at most GRAPH_CHUNK_MAX)."""
    fits = GRAPH_CHUNK_PIXELS // max(1, int(input_size) ** 2)
    chunk = 1
    while chunk * 2 <= min(fits, GRAPH_CHUNK_MAX):
        chunk *= 2
    return chunk


class Streams:
    """A graph's forward pass over a batch in chunks of at most chunk images, len(calls) chunks at a
    time (one thread per call, each call used by one thread at a time); one output, in batch order."""

    def __init__(self, calls: list[Callable[[np.ndarray], np.ndarray]], chunk: int):
        self.chunk = chunk
        self.free: queue.SimpleQueue = queue.SimpleQueue()
        for call in calls:
            self.free.put(call)
        self.pool = ThreadPoolExecutor(len(calls), thread_name_prefix="gmv-infer") if len(calls) > 1 else None

    def _map(self, work: Callable[[Any], np.ndarray], batch) -> np.ndarray:
        parts = [batch[start : start + self.chunk] for start in range(0, len(batch), self.chunk)]
        if len(parts) == 1:
            return work(batch)
        outputs = self.pool.map(work, parts) if self.pool is not None else map(work, parts)
        return np.concatenate(list(outputs))

    def _run(self, x: np.ndarray) -> np.ndarray:
        call = self.free.get()
        try:
            return call(np.ascontiguousarray(x, dtype=np.float32))
        finally:
            self.free.put(call)

    def __call__(self, batch) -> np.ndarray:
        """batch: float32 (n, 3, h, w), the model's input."""
        return self._map(self._run, batch.numpy() if hasattr(batch, "numpy") else np.asarray(batch))

    def pixels(self, batch, normalise: Callable[[Any], np.ndarray]) -> np.ndarray:
        """batch: uint8 (n, h, w, 3) pixels, normalised chunk by chunk in the streams' threads."""
        pixels = batch.numpy() if hasattr(batch, "numpy") else np.asarray(batch)
        return self._map(lambda part: self._run(normalise(part)), pixels)


def _graph_run(
    runtime: str, graph: Path, precision: str, input_size: int, streams: int | None = None
) -> Callable[[Any], np.ndarray]:
    """The graph's forward pass, in calls of graph_chunk(input_size) images.

    streams: calls running at the same time, one thread each (default: one per core, as torch counts
    them); 1: one call at a time using every core inside it.
    """
    threads = _torch_threads()
    streams = threads if streams is None else max(1, streams)
    if runtime == "onnxruntime":
        calls = _onnxruntime_calls(graph, threads, streams)
    else:
        calls = _openvino_calls(graph, precision, threads, streams)
    warm_up(calls, input_size)
    return Streams(calls, graph_chunk(input_size))


def warm_up(calls: list[Callable[[np.ndarray], np.ndarray]], input_size: int) -> None:
    """One image through each call, one call after the other, before any run in parallel.

    OpenVINO's Python binding sets up its numpy support on the first call; two threads making their
    first call at once deadlocked there (seen in gmv embed, with a cached graph: no gate ran first).
    """
    x = np.zeros((1, 3, int(input_size), int(input_size)), dtype=np.float32)
    for call in calls:
        call(x)


def graph_runner(
    embedder, runtime: str, precision: str, reference: Callable[[], tuple[Any, np.ndarray]]
) -> Runner:
    """A cached graph if whole and current, else export, gate and cache one (a failed gate caches nothing)."""
    key = graph_key(embedder, precision, runtime)
    graph, why = cached_graph(key)
    if graph is not None:
        meta = json.loads((graph.parent / "meta.json").read_text())
        run = _graph_run(runtime, graph, precision, int(key["input_size"]))
        return Runner(runtime, precision, "cpu", run, meta["min_cosine"], graph)
    folder = graph_folder(key)
    folder.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    path = folder / "graph.onnx"
    for stale in (folder / "meta.json", folder / "graph.onnx.sha256"):
        stale.unlink(missing_ok=True)
    export_onnx(embedder, path, int(key["input_size"]))
    run = _graph_run(runtime, path, precision, int(key["input_size"]))
    batch, expected = reference()
    try:
        worst = check_gate(embedder.name, runtime, precision, expected, run(batch))
    except GateError:
        path.unlink(missing_ok=True)
        raise
    digest = _sha256(path)
    meta = {"key": key, "stamp": _stamp(), "sha256": digest, "min_cosine": worst, "gate": GATES[precision]}
    meta["gate_images"] = len(expected)
    meta["seconds"] = round(time.monotonic() - started, 2)
    (folder / "graph.onnx.sha256").write_text(f"{digest}  graph.onnx\n")
    (folder / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    runner = Runner(runtime, precision, "cpu", run, worst, path, built=True)
    runner.notes.append(
        f"built {runtime} {precision} graph for {embedder.name} ({why}); gate min cosine {worst:.6f}"
    )
    return runner


def prepare(
    embedder,
    runtime: str = "auto",
    precision: str = "fp32",
    device: str = "cpu",
    report: Callable[[str], None] = lambda line: None,
) -> Runner:
    """The runner for embedder: runtime (or auto's fastest that passes the gate) at precision on device.

    device is 'cpu' or 'cuda' (already resolved). An explicit runtime that fails its gate raises
    GateError; auto then tries the next runtime and says so.
    """
    if embedder.module is None:  # pixels: no network, nothing to accelerate
        if (runtime, precision) not in (("auto", "fp32"), ("torch", "fp32")):
            raise ConfigError(f"the {embedder.name} model has no network: drop --runtime / --precision")
        return Runner("torch", "fp32", device, lambda batch: embedder.forward(batch).float().cpu().numpy())
    order = candidates(runtime, precision, device)
    embedder.module.to("cpu")
    cached_reference: list[tuple[Any, np.ndarray]] = []

    def reference() -> tuple[Any, np.ndarray]:
        import torch

        if not cached_reference:
            batch = gate_batch(embedder.transform)
            with torch.inference_mode():
                cached_reference.append((batch, embedder.forward(batch).float().numpy()))
        return cached_reference[0]

    last_error: GmvError | None = None
    for name in order:
        try:
            if name == "torch":
                if precision == "fp32":
                    embedder.module.to(device)
                    return torch_runner(embedder, "fp32", device)
                batch, expected = reference()  # on CPU in fp32, before the module moves
                embedder.module.to(device)
                runner = torch_runner(embedder, precision, device)
                runner.min_cosine = check_gate(embedder.name, "torch", precision, expected, runner(batch))
                return runner
            return graph_runner(embedder, name, precision, reference)
        except (GateError, ExportError) as exc:
            if runtime != "auto":
                raise
            report(f"auto: skipping {name} {precision} ({exc})")
            last_error = exc
    if last_error is not None:
        raise last_error
    raise ConfigError(f"no runtime for {precision} on {device}; use --precision fp32")


def record(runner: Runner) -> dict[str, str]:
    """The space's preprocessing entries for this runner (a space never mixes them)."""
    return {"runtime": runner.runtime, "precision": runner.precision}


def record_keys() -> tuple[str, ...]:
    """The entries space_preprocessing adds to a model's own preprocessing record."""
    return ("runtime", "precision", "jpeg_draft")


def recorded(preprocessing: dict[str, Any]) -> tuple[str, str]:
    """(runtime, precision) a space was embedded with; spaces from before runtimes were torch fp32."""
    return preprocessing.get("runtime", "torch"), preprocessing.get("precision", "fp32")


def space_preprocessing(embedder, runner: Runner, existing=None) -> dict[str, Any]:
    """The preprocessing record of a space filled by runner.

    A new record names runtime and precision and decodes JPEGs at reduced size (PIL draft mode) when
    the input is smaller; a space from before runtimes (no such entries) was torch fp32 with full
    decoding and keeps that record while it stays on torch fp32.
    """
    preprocessing = dict(embedder.preprocessing)
    if embedder.module is None:
        return preprocessing
    legacy = existing is not None and "runtime" not in existing.preprocessing
    if legacy and (runner.runtime, runner.precision) == ("torch", "fp32"):
        return preprocessing
    return {**preprocessing, **record(runner), "jpeg_draft": True}
