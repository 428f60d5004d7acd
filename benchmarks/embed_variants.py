"""Side by side: ways to export and run efficientnet-lite0 with ONNX Runtime / OpenVINO on CPU.

Each variant runs the same random float32 batches, interleaved round by round (so a load change from
other processes hits every variant alike); prints the best and median images/s of each, the CPU
seconds per image of this process (all its threads; less sensitive to other processes than wall
time), and its min cosine to torch eager fp32 on the 16 gate images (the fp32 gate: 0.9999).
gmv-ort / gmv-ov are the product's own runners (gmv_sql.embed.runtimes._graph_run).

    nice python benchmarks/embed_variants.py --size 224 --rounds 3
    nice python benchmarks/embed_variants.py --only ort-static,ort-dynamic --batches 16,64
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def export(embedder, path: Path, size: int, batch: int | None, opset: int) -> Path:
    import torch

    from gmv_sql.embed import runtimes

    module = runtimes._Forward(embedder)
    example = torch.zeros(batch or 2, 3, size, size)
    with warnings.catch_warnings(), torch.no_grad(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module,
            (example,),
            str(path),
            dynamo=False,
            input_names=["image"],
            output_names=["feature"],
            dynamic_axes=None if batch else {"image": {0: "n"}, "feature": {0: "n"}},
            opset_version=opset,
        )
    return path


def ort_session(graph: Path, threads: int, spinning: bool, level: str = "all", sequential=True):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    options.graph_optimization_level = {
        "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
        "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
    }[level]
    if not sequential:
        options.execution_mode = ort.ExecutionMode.ORT_PARALLEL
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
    session = ort.InferenceSession(str(graph), options, providers=["CPUExecutionProvider"])
    return lambda x: session.run(None, {"image": x})[0]


def ort_parallel(graph: Path, sessions: int):
    """sessions one-thread sessions, each running its share of the batch at the same time."""
    from concurrent.futures import ThreadPoolExecutor

    runs = [ort_session(graph, 1, False) for _ in range(sessions)]
    pool = ThreadPoolExecutor(sessions)

    def run(x):
        parts = np.array_split(x, sessions)
        return np.concatenate(
            list(pool.map(lambda rp: rp[0](np.ascontiguousarray(rp[1])), zip(runs, parts, strict=True)))
        )

    return run


def ort_shared(graph: Path, streams: int, chunk: int):
    """One session with one intra-op thread, run by `streams` Python threads at once, chunk images a call."""
    from concurrent.futures import ThreadPoolExecutor

    run = ort_session(graph, 1, False)
    pool = ThreadPoolExecutor(streams)

    def run_all(x):
        parts = [np.ascontiguousarray(x[s : s + chunk]) for s in range(0, len(x), chunk)]
        return np.concatenate(list(pool.map(run, parts)))

    return run_all


def ov_streams(graph: Path, streams: int, chunk: int):
    """OpenVINO: `streams` streams of one thread each, one infer request per stream, chunk images a call."""
    from concurrent.futures import ThreadPoolExecutor

    import openvino as ov

    core = ov.Core()
    config = {
        "INFERENCE_PRECISION_HINT": "f32",
        "INFERENCE_NUM_THREADS": streams,
        "NUM_STREAMS": streams,
        "PERFORMANCE_HINT": "THROUGHPUT",
    }
    compiled = core.compile_model(core.read_model(str(graph)), "CPU", config)
    requests = [compiled.create_infer_request() for _ in range(streams)]
    pool = ThreadPoolExecutor(streams)

    def run_all(x):
        parts = [np.ascontiguousarray(x[s : s + chunk]) for s in range(0, len(x), chunk)]
        jobs = [
            (requests[i % streams], part) for i, part in enumerate(parts)
        ]  # request i runs parts i, i + streams, ...

        def work(i):
            request = requests[i]
            return [np.asarray(next(iter(request.infer({0: p}).values()))).copy() for p in parts[i::streams]]

        done = list(pool.map(work, range(streams)))
        out = [None] * len(parts)
        for i, results in enumerate(done):
            out[i::streams] = results
        del jobs
        return np.concatenate(out)

    return run_all


def ov_compiled(graph: Path, threads: int, hint: str, streams: int | None = None):
    import openvino as ov

    core = ov.Core()
    config = {"INFERENCE_PRECISION_HINT": "f32", "INFERENCE_NUM_THREADS": threads, "PERFORMANCE_HINT": hint}
    if streams is not None:
        config["NUM_STREAMS"] = streams
    compiled = core.compile_model(core.read_model(str(graph)), "CPU", config)
    request = compiled.create_infer_request()
    return lambda x: np.asarray(next(iter(request.infer({0: x}).values())))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="efficientnet-lite0")
    parser.add_argument("--random-init", action="store_true", help="seeded random weights (vgg16/resnet50)")
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--images", type=int, default=256, help="images per round and variant")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batches", default="64")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--only", default="", help="comma-separated variant names (default: all)")
    args = parser.parse_args()

    import torch

    from gmv_sql.embed import runtimes
    from gmv_sql.embed.models import build_embedder

    torch.set_num_threads(args.threads)
    embedder = build_embedder(args.model, image_size=args.size, random_init=args.random_init)
    gate = runtimes.gate_batch(embedder.transform)  # 16 real + synthetic images
    with torch.inference_mode():
        reference = embedder.forward(gate).numpy()
    tmp = Path(tempfile.mkdtemp(prefix="gmv-variants-"))
    only = set(filter(None, args.only.split(",")))
    variants = {}  # name -> (batch, run)
    dyn17 = export(embedder, tmp / "dynamic17.onnx", args.size, None, 17)
    for batch in [int(b) for b in args.batches.split(",")]:
        static = export(embedder, tmp / f"static{batch}.onnx", args.size, batch, 17)
        table = {
            # what gmv runs: the product's runner (chunks of runtimes.graph_chunk, one stream per core)
            f"gmv-ort-b{batch}": lambda: runtimes._graph_run("onnxruntime", dyn17, "fp32", args.size),
            f"gmv-ov-b{batch}": lambda: runtimes._graph_run("openvino", dyn17, "fp32", args.size),
            f"ort-dynamic-b{batch}": lambda: ort_session(dyn17, args.threads, False),
            f"ort-dynamic-spin-b{batch}": lambda: ort_session(dyn17, args.threads, True),
            f"ort-static-b{batch}": lambda s=static: ort_session(s, args.threads, False),
            f"ort-static-spin-b{batch}": lambda s=static: ort_session(s, args.threads, True),
            f"ort-dynamic-extended-b{batch}": lambda: ort_session(dyn17, args.threads, False, "extended"),
            f"ort-parallel-b{batch}": lambda: ort_parallel(dyn17, args.threads),
            f"ort-shared4-b{batch}": lambda: ort_shared(dyn17, args.threads, 4),
            f"ort-shared8-b{batch}": lambda: ort_shared(dyn17, args.threads, 8),
            f"ov-streams4-b{batch}": lambda: ov_streams(dyn17, args.threads, 4),
            f"ov-dynamic-latency-b{batch}": lambda: ov_compiled(dyn17, args.threads, "LATENCY"),
            f"ov-dynamic-throughput-b{batch}": lambda: ov_compiled(dyn17, args.threads, "THROUGHPUT"),
            f"ov-static-latency-b{batch}": lambda s=static: ov_compiled(s, args.threads, "LATENCY"),
        }
        for name, make in table.items():
            base = name.rsplit("-b", 1)[0]
            if only and base not in only and name not in only:
                continue
            variants[name] = (batch, make())
    rng = np.random.default_rng(0)
    rates: dict[str, list[float]] = {name: [] for name in variants}
    cpu: dict[str, list[float]] = {name: [] for name in variants}  # CPU ms per image (all threads)
    agreement = {}
    for name, (batch, run) in variants.items():
        n = len(gate)
        x = np.ascontiguousarray(np.concatenate([gate.numpy()] * (batch // n + 2)))
        out = np.concatenate([run(x[s : s + batch]) for s in range(0, n, batch)])  # warm-up
        agreement[name] = runtimes.min_cosine(reference, out[:n])
    for _ in range(args.rounds):
        for name, (batch, run) in variants.items():
            x = rng.standard_normal((batch, 3, args.size, args.size), dtype=np.float32)
            steps = max(1, args.images // batch)
            started, cpu_started = time.perf_counter(), time.process_time()
            for _ in range(steps):
                run(x)
            rates[name].append(steps * batch / (time.perf_counter() - started))
            cpu[name].append(1000 * (time.process_time() - cpu_started) / (steps * batch))
    print(f"{args.model}, size {args.size}, threads {args.threads}, load average {os.getloadavg()[0]:.1f}")
    print(f"{'variant':34} {'best img/s':>10} {'median':>8} {'cpu ms/img':>10} {'min cos':>9}")
    for name, values in rates.items():
        print(
            f"{name:34} {max(values):10.1f} {statistics.median(values):8.1f} "
            f"{min(cpu[name]):10.2f} {agreement[name]:9.6f}"
        )


if __name__ == "__main__":
    main()
