"""Benchmark of `gmv embed` per inference runtime x precision, beside each runtime's bare forward loop.

Images: Fashion-MNIST test images (Debian package dataset-fashion-mnist, 28x28 grey PNGs, upscaled by
the model's own preprocessing) plus every JPEG/PNG of 20 kB or more that the installed packages ship
(the venv's site-packages and /usr/share: scikit-learn's and matplotlib's sample photographs, docs
figures), --images in all. For each input size (224 and 64 px) and each runtime x precision:

- gmv embed: images/s that `gmv embed` reports (from its first query to its last commit; the graph
  export and gate happen before, once, and are cached), in a subprocess, into a fresh space;
- bare forward: the same runtime's forward pass alone over the same images, decoded beforehand
  (batch 64, no decoding, no database) - the ceiling `gmv embed` is compared with;
- agreement: min cosine of the bare runtime's vectors to torch eager fp32 over the first 256 images;
- gate: what `gmv embed` did (stored, or refused by the faithfulness gate with its min cosine).

torch eager fp32 at 224 px runs on --torch-images only (it is ~10x slower); the table says so.
Without --database-url a private PostgreSQL + pgvector runs in a temporary folder.

    nice python benchmarks/embed.py                         # 2,000 images
    nice python benchmarks/embed.py --images 300 --sizes 64 # quick
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from common import fresh_database, private_server  # noqa: E402  (benchmarks/common.py)

FASHION = Path("/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz")
COMBOS = [
    ("torch", "fp32"),
    ("onnxruntime", "fp32"),
    ("openvino", "fp32"),
    ("torch", "bf16"),
    ("openvino", "bf16"),
]
MODEL = "efficientnet-lite0"


def table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]

    def line(r):
        return "  ".join(
            str(c).ljust(w) if i < 2 else str(c).rjust(w)
            for i, (c, w) in enumerate(zip(r, widths, strict=True))
        )

    return "\n".join([line(header), "  ".join("-" * w for w in widths), *(line(r) for r in rows)])


def shipped_pictures(limit: int) -> list[Path]:
    """JPEG/PNG files >= 20 kB that installed packages ship, distinct by content, that decode."""
    import hashlib

    from PIL import Image

    roots = [Path(p) for p in sys.path if p.endswith("site-packages")] + [Path("/usr/share")]
    seen, found = set(), []
    for root in roots:
        for path in sorted(root.rglob("*")):
            if len(found) >= limit:
                return found
            if path.suffix.lower() not in (".jpg", ".jpeg", ".png") or not path.is_file():
                continue
            try:
                if path.stat().st_size < 20_000:
                    continue
                data = path.read_bytes()
                digest = hashlib.sha256(data).hexdigest()
                with Image.open(path) as image:
                    image.load()
                    if min(image.size) < 32:
                        continue
            except Exception:  # noqa: BLE001 - anything unreadable is simply not used
                continue
            if digest not in seen:
                seen.add(digest)
                found.append(path)
    return found


def make_images(folder: Path, n: int) -> dict[str, int]:
    import shutil

    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    pictures = shipped_pictures(n // 10)  # a tenth: photographs and figures, the rest Fashion-MNIST
    for i, path in enumerate(pictures):
        shutil.copyfile(path, folder / f"p{i:04d}{path.suffix.lower()}")
    with gzip.open(FASHION) as handle:
        raw = np.frombuffer(handle.read(), dtype=np.uint8, offset=16).reshape(-1, 28, 28)
    n_fashion = n - len(pictures)
    for i in range(n_fashion):
        Image.fromarray(raw[i]).save(folder / f"f{i:05d}.png")
    return {"shipped": len(pictures), "fashion-mnist": n_fashion}


def bare(folder: str, runtime: str, precision: str, size: int, limit: int) -> None:
    """Forward pass only over pre-decoded batches of 64; prints JSON (images/s, min cosine vs torch fp32)."""
    import torch
    from PIL import Image, ImageOps

    from gmv_sql.embed import runtimes
    from gmv_sql.embed.models import build_embedder

    embedder = build_embedder(MODEL, image_size=size)
    decoded = []
    for path in sorted(Path(folder).iterdir())[:limit]:  # the model's own transform, as gmv embed
        with Image.open(path) as image:
            decoded.append(embedder.transform(ImageOps.exif_transpose(image).convert("RGB")))
    batches = [torch.stack(decoded[s : s + 64]) for s in range(0, len(decoded), 64)]
    if runtime == "torch":
        runner = runtimes.torch_runner(embedder, precision, "cpu")
    else:  # the graph `gmv embed` built (cached), or a fresh export when the gate refused it
        key = runtimes.graph_key(embedder, precision, runtime)
        graph, _ = runtimes.cached_graph(key)
        if graph is None:
            graph = Path(tempfile.mkdtemp()) / "graph.onnx"
            runtimes.export_onnx(embedder, graph, size)
        runner = runtimes.Runner(
            runtime, precision, "cpu", runtimes._graph_run(runtime, graph, precision, size)
        )
    runner(batches[0])  # warm-up (first-call allocations, OpenVINO/oneDNN kernel selection)
    started = time.perf_counter()
    outputs = [runner(b) for b in batches]
    seconds = time.perf_counter() - started
    head = np.concatenate(outputs)[:256]
    with torch.inference_mode():
        reference = np.concatenate([embedder.forward(b).numpy() for b in batches[:4]])[:256]
    agreement = runtimes.min_cosine(reference, head[: len(reference)])
    print(json.dumps({"images": len(decoded), "seconds": seconds, "min_cosine": agreement}))


def run_gmv(env: dict, runtime: str, precision: str, size: int, space: str) -> tuple[float | None, str]:
    cmd = [sys.executable, "-m", "gmv_sql.cli", "embed", "--space", space, "--model", MODEL]
    cmd += ["--runtime", runtime, "--precision", precision, "--image-size", str(size), "--device", "cpu"]
    proc = subprocess.run([*cmd, "-q"], env=env, cwd=REPO, capture_output=True, text=True)
    if proc.returncode != 0:
        cos = re.search(r"min cosine ([\d.]+)", proc.stdout + proc.stderr)
        return None, f"refused (gate: min cos {cos.group(1)})" if cos else "failed: " + proc.stdout.strip()[
            -80:
        ]
    rate = re.search(r"\(([\d,.]+) images/s\)", proc.stdout)
    neck = re.search(r"bottleneck (\w+)", proc.stdout)
    return float(rate.group(1).replace(",", "")), f"stored; bottleneck {neck.group(1) if neck else '?'}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", help="admin URL of a server with pgvector (default: a private one)")
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--torch-images", type=int, default=500, help="images for torch eager at 224 px")
    parser.add_argument("--sizes", default="224,64")
    parser.add_argument("--combos", default=",".join(f"{r}:{p}" for r, p in COMBOS))
    parser.add_argument(
        "--bare", nargs=5, metavar=("FOLDER", "RUNTIME", "PRECISION", "SIZE", "LIMIT"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.bare:
        folder, runtime, precision, size, limit = args.bare
        bare(folder, runtime, precision, int(size), int(limit))
        return

    combos = [tuple(c.split(":")) for c in args.combos.split(",")]
    with tempfile.TemporaryDirectory(prefix="gmv-bench-embed-") as tmp_name:
        tmp = Path(tmp_name)
        counts = make_images(tmp / "all", args.images)
        small = tmp / "small"  # the torch-eager subset: the first --torch-images files, same mix
        small.mkdir()
        for path in sorted((tmp / "all").iterdir())[: args.torch_images]:
            os.link(path, small / path.name)
        server, admin = (None, args.database_url) if args.database_url else private_server(tmp / "pgdata")
        rows = []
        try:
            urls = {}
            for name, folder in (("all", tmp / "all"), ("small", small)):
                urls[name] = fresh_database(admin, f"gmv_bench_embed_{name}")
                env = {**os.environ, "GMV_DATABASE_URL": urls[name], "GMV_HOME": str(tmp / "home")}
                subprocess.run(
                    [
                        sys.executable,
                        "-m",
                        "gmv_sql.cli",
                        "ingest",
                        "training",
                        str(folder),
                        "--owner",
                        "b",
                        "--license",
                        "b",
                        "-q",
                    ],
                    env=env,
                    cwd=REPO,
                    check=True,
                )
            print(
                f"cores: {os.cpu_count()}, load average: {os.getloadavg()[0]:.1f}; images: {counts}",
                flush=True,
            )
            for size in [int(s) for s in args.sizes.split(",")]:
                for runtime, precision in combos:
                    subset = "small" if (runtime, precision, size) == ("torch", "fp32", 224) else "all"
                    folder = small if subset == "small" else tmp / "all"
                    n = args.torch_images if subset == "small" else args.images
                    env = {**os.environ, "GMV_DATABASE_URL": urls[subset], "GMV_HOME": str(tmp / "home")}
                    rate, outcome = run_gmv(env, runtime, precision, size, f"b-{runtime}-{precision}-{size}")
                    proc = subprocess.run(
                        [
                            sys.executable,
                            __file__,
                            "--bare",
                            str(folder),
                            runtime,
                            precision,
                            str(size),
                            str(n),
                        ],
                        cwd=REPO,
                        capture_output=True,
                        text=True,
                    )
                    if proc.returncode:
                        print(proc.stderr[-2000:], file=sys.stderr)
                        continue
                    result = json.loads(proc.stdout.strip().splitlines()[-1])
                    bare_rate = result["images"] / result["seconds"]
                    rows.append(
                        [
                            f"{runtime} {precision}",
                            f"{size}",
                            f"{n}",
                            f"{bare_rate:.1f}",
                            "-" if rate is None else f"{rate:.1f}",
                            "-" if rate is None else f"{100 * rate / bare_rate:.0f}%",
                            f"{result['min_cosine']:.6f}",
                            outcome,
                        ]
                    )
                    print(table(rows[-1:], HEADER).splitlines()[-1], flush=True)
        finally:
            if server is not None:
                server.stop()
    print("\n`gmv embed` (end to end, efficientnet-lite0) vs the runtime's bare forward pass, batch 64, CPU")
    print(table(rows, HEADER))
    print(f"\nload average at the end: {os.getloadavg()[0]:.1f}")


HEADER = [
    "runtime",
    "px",
    "images",
    "bare fwd img/s",
    "gmv embed img/s",
    "gmv/bare",
    "min cos vs torch",
    "gmv embed",
]

if __name__ == "__main__":
    main()
