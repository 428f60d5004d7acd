"""Benchmark: gmv's SQL k-NN matcher against FAISS HNSW, FAISS IVFFlat, hnswlib and numpy exact search.

For each training-set size (default 200k and 1M) of clustered 512-d vectors with 2,000 generated
queries (or real data: --dataset fashion-mnist, 60k training images and 2,000 test images as
queries, raw 784-d pixels or, with --space efficientnet, efficientnet-lite0 features at 64 px,
1280-d, embedded once by gmv's embedder and cached in ~/.cache/gmv_sql/bench) it prints generated
images matched per second, recall@k against numpy exact search, peak memory and build time, side by
side. gmv is run with each index of --gmv-index
(HNSW / IVFFlat, on the stored vectors or on halfvec) at every --ef-search / --probes, and once more
as a user runs it: `gmv match --target-recall R` (calibration included in the time). Each run's own
recall check (--recall-sample, 100 as shipped) is timed apart too ("w/o check/s"), and --variants
sweeps gmv again with asynchronous commit or other batch sizes, side by side. The valuation refresh
is timed by benchmarks/report.py.

    python benchmarks/match.py                       # 200k and 1M, k=10, M=16, ef_construction=64, ef_search 64..400
    python benchmarks/match.py --sizes 200000 --json out.json
    python benchmarks/match.py --sizes 20000 --generated 200   # a quick smoke run
    python benchmarks/match.py --dataset fashion-mnist   # apt-get install -y dataset-fashion-mnist
    python benchmarks/match.py --dataset fashion-mnist --space efficientnet
    python benchmarks/match.py --dataset fashion-mnist --variants default,sync-off,batch-50

Libraries and PostgreSQL run one after the other (never concurrently) with --threads threads each;
FAISS, hnswlib and numpy run in their own subprocess so their peak memory (ru_maxrss) is their own.
PostgreSQL's memory is the peak sum of PSS over the server's processes while matching (shared
buffers counted once). Uses its own embedded server in --workdir unless --database-url is given.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from functools import partial
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from common import fresh_database, private_server  # noqa: E402  (benchmarks/common.py; this script's folder is on sys.path)

# --------------------------------------------------------------------------- data


def make_data(workdir: Path, n: int, n_generated: int, dim: int, seed: int) -> tuple[Path, Path]:
    """Clustered vectors written as .npy: 1 cluster per ~200 images; generated = training + noise."""
    train_path = workdir / f"train_{n}_{dim}.npy"
    gen_path = workdir / f"gen_{n}_{n_generated}_{dim}.npy"
    if train_path.exists() and gen_path.exists():
        return train_path, gen_path
    rng = np.random.default_rng(seed)
    n_clusters = max(10, n // 200)
    centres = rng.normal(size=(n_clusters, dim)).astype(np.float32)
    train = np.lib.format.open_memmap(train_path, mode="w+", dtype=np.float32, shape=(n, dim))
    chunk = 50_000
    for start in range(0, n, chunk):
        m = min(chunk, n - start)
        labels = rng.integers(0, n_clusters, size=m)
        train[start : start + m] = centres[labels] + 0.7 * rng.normal(size=(m, dim)).astype(np.float32)
    train.flush()
    parents = rng.integers(0, n, size=n_generated)
    gen = np.asarray(train[np.sort(parents)]) + 0.5 * rng.normal(size=(n_generated, dim)).astype(np.float32)
    np.save(gen_path, gen.astype(np.float32))
    del train
    return train_path, gen_path


FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")  # Debian package dataset-fashion-mnist


def _idx_images(path: Path) -> np.ndarray:
    import gzip

    raw = gzip.decompress(path.read_bytes())
    n, rows, cols = (int.from_bytes(raw[i : i + 4], "big") for i in (4, 8, 12))
    return np.frombuffer(raw, dtype=np.uint8, offset=16).reshape(n, rows * cols)


def make_fashion(workdir: Path, n: int, n_generated: int) -> tuple[Path, Path]:
    """Fashion-MNIST raw pixels / 255 (784-d): the first n training images, the first n_generated test images."""
    if not (FASHION_MNIST / "train-images-idx3-ubyte.gz").exists():
        raise SystemExit(
            f"Fashion-MNIST not found in {FASHION_MNIST}; install it: sudo apt-get install -y dataset-fashion-mnist"
        )
    train_path = workdir / f"fashion_train_{n}.npy"
    gen_path = workdir / f"fashion_test_{n}_{n_generated}.npy"
    if not (train_path.exists() and gen_path.exists()):
        train = _idx_images(FASHION_MNIST / "train-images-idx3-ubyte.gz")[:n].astype(np.float32) / 255
        test = _idx_images(FASHION_MNIST / "t10k-images-idx3-ubyte.gz")[:n_generated].astype(np.float32) / 255
        np.save(train_path, train)
        np.save(gen_path, test)
    return train_path, gen_path


EMBED_CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "gmv_sql" / "bench"


def _fashion_embedded(images: np.ndarray, path: Path, model: str, size: int) -> np.ndarray:
    """images (n x 784 uint8) embedded by gmv's own embedder (onnxruntime fp32 on CPU, the model's own
    transform at `size` px, as `gmv embed --model M --image-size S --runtime onnxruntime` does), cached
    at path (outside the repository) and reused by later runs."""
    if path.exists():
        return np.load(path)
    from PIL import Image

    from gmv_sql.embed import runtimes
    from gmv_sql.embed.models import build_embedder

    embedder = build_embedder(model, image_size=size)
    runner = runtimes.prepare(embedder, "onnxruntime", "fp32", "cpu")
    import torch

    out = []
    started = time.perf_counter()
    for start in range(0, len(images), 256):
        batch = torch.stack(
            [
                embedder.transform(Image.fromarray(row.reshape(28, 28)).convert("RGB"))
                for row in images[start : start + 256]
            ]
        )
        out.append(np.asarray(runner(batch), dtype=np.float32))
        if start % 10_240 == 0:
            print(f"# embedding {path.name}: {start:,}/{len(images):,}", file=sys.stderr, flush=True)
    vectors = np.concatenate(out)
    print(
        f"# embedded {len(images):,} images in {time.perf_counter() - started:.0f}s -> {path}",
        file=sys.stderr,
        flush=True,
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, vectors)
    return vectors


def make_fashion_embedded(
    workdir: Path, n: int, n_generated: int, model: str = "efficientnet-lite0", size: int = 64
) -> tuple[Path, Path]:
    """Fashion-MNIST in an embedding space (efficientnet-lite0 at 64 px: 1280-d): the first n training
    images and the first n_generated test images, embedded once (cache: EMBED_CACHE, keyed by model,
    size and image count) and copied into workdir as the raw-pixel sets are."""
    if not (FASHION_MNIST / "train-images-idx3-ubyte.gz").exists():
        raise SystemExit(
            f"Fashion-MNIST not found in {FASHION_MNIST}; install it: sudo apt-get install -y dataset-fashion-mnist"
        )
    key = f"fashion-mnist_{model}_{size}px_onnxruntime-fp32"
    train_path = workdir / f"fashion_{model}_{size}_train_{n}.npy"
    gen_path = workdir / f"fashion_{model}_{size}_test_{n}_{n_generated}.npy"
    if not (train_path.exists() and gen_path.exists()):
        train = _fashion_embedded(
            _idx_images(FASHION_MNIST / "train-images-idx3-ubyte.gz")[:n],
            EMBED_CACHE / f"{key}_train_{n}.npy",
            model,
            size,
        )
        test = _fashion_embedded(
            _idx_images(FASHION_MNIST / "t10k-images-idx3-ubyte.gz")[:n_generated],
            EMBED_CACHE / f"{key}_test_{n_generated}.npy",
            model,
            size,
        )
        np.save(train_path, train)
        np.save(gen_path, test)
    return train_path, gen_path


def ivf_lists(n: int) -> int:
    """The lists gmv's IVFFlat gets by default (gmv_sql.embed.store.default_lists), for FAISS too."""
    from gmv_sql.embed.store import default_lists

    return default_lists(n)


def normalised(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


# --------------------------------------------------------------------------- library workers (subprocess)


def peak_rss_mb() -> float:
    """This process image's peak RSS: VmHWM (ru_maxrss would also count the parent's memory before exec)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def worker(
    method: str,
    train_path: str,
    gen_path: str,
    k: int,
    m: int,
    efc: int,
    efs: list[int],
    threads: int,
    out: str,
) -> None:
    """Runs in a fresh process: build once, search at every ef, write indices and timings per ef."""
    train = normalised(np.load(train_path))  # cosine = inner product of unit vectors
    gen = normalised(np.load(gen_path))
    result: dict = {"method": method}
    if method == "numpy":
        t0 = time.perf_counter()
        idx = np.empty((len(gen), k), dtype=np.int64)
        for start in range(0, len(gen), 128):
            scores = gen[start : start + 128] @ train.T
            part = np.argpartition(-scores, k, axis=1)[:, :k]
            order = np.argsort(-np.take_along_axis(scores, part, axis=1), axis=1)
            idx[start : start + 128] = np.take_along_axis(part, order, axis=1)
        result["search_s"] = time.perf_counter() - t0
        result["build_s"] = 0.0
        results = {0: (result, idx)}
    elif method == "faiss":
        import faiss

        faiss.omp_set_num_threads(threads)
        t0 = time.perf_counter()
        index = faiss.IndexHNSWFlat(train.shape[1], m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = efc
        index.add(train)
        result["build_s"] = time.perf_counter() - t0
        results = {}
        for ef in efs:
            index.hnsw.efSearch = ef
            t0 = time.perf_counter()
            _, idx = index.search(gen, k)
            results[ef] = ({**result, "search_s": time.perf_counter() - t0}, idx)
    elif method == "faiss-ivf":
        import faiss

        faiss.omp_set_num_threads(threads)
        t0 = time.perf_counter()
        quantizer = faiss.IndexFlatIP(train.shape[1])
        index = faiss.IndexIVFFlat(
            quantizer, train.shape[1], ivf_lists(len(train)), faiss.METRIC_INNER_PRODUCT
        )
        index.train(train)
        index.add(train)
        result["build_s"] = time.perf_counter() - t0
        results = {}
        for probes in efs:  # probes for this method
            index.nprobe = probes
            t0 = time.perf_counter()
            _, idx = index.search(gen, k)
            results[probes] = (
                {**result, "search_s": time.perf_counter() - t0, "setting": f"probes {probes}"},
                idx,
            )
    elif method == "hnswlib":
        import hnswlib

        t0 = time.perf_counter()
        index = hnswlib.Index(space="ip", dim=train.shape[1])
        index.init_index(max_elements=len(train), ef_construction=efc, M=m)
        index.add_items(train, np.arange(len(train)), num_threads=threads)
        result["build_s"] = time.perf_counter() - t0
        results = {}
        for ef in efs:
            index.set_ef(ef)
            t0 = time.perf_counter()
            idx, _ = index.knn_query(gen, k=k, num_threads=threads)
            results[ef] = ({**result, "search_s": time.perf_counter() - t0}, idx)
    else:
        raise SystemExit(f"unknown method {method}")
    peak = peak_rss_mb()
    for ef, (result, idx) in results.items():
        np.save(f"{out}_ef{ef}.npy", np.asarray(idx, dtype=np.int64))
        Path(f"{out}_ef{ef}.json").write_text(
            json.dumps({**result, "peak_rss_mb": peak, "ef_search": ef or None})
        )


def run_worker(
    method: str, train_path: Path, gen_path: Path, args, workdir: Path
) -> list[tuple[dict, np.ndarray]]:
    """[(result, indices)] per ef_search (one entry for numpy)."""
    out = str(workdir / f"{method}_{train_path.stem}")
    efs = [0] if method == "numpy" else args.probes_list if method == "faiss-ivf" else args.ef_list

    def load() -> list[tuple[dict, np.ndarray]]:
        return [
            (json.loads(Path(f"{out}_ef{ef}.json").read_text()), np.load(f"{out}_ef{ef}.npy")) for ef in efs
        ]

    if method == "numpy" and Path(f"{out}_ef0.json").exists() and Path(f"{out}_ef0.npy").exists():
        return load()  # the ground truth of these vectors was computed by an earlier run in this workdir
    env = {
        **os.environ,
        "OMP_NUM_THREADS": str(args.threads),
        "OPENBLAS_NUM_THREADS": str(args.threads),
        "MKL_NUM_THREADS": str(args.threads),
    }
    subprocess.run(
        [
            sys.executable,
            __file__,
            "_worker",
            method,
            str(train_path),
            str(gen_path),
            str(args.k),
            str(args.m),
            str(args.ef_construction),
            ",".join(map(str, efs)),
            str(args.threads),
            out,
        ],
        check=True,
        env=env,
    )
    return load()


# --------------------------------------------------------------------------- PostgreSQL


class PssSampler:
    """Peak of the summed PSS of the PostgreSQL server's processes, sampled in a thread."""

    def __init__(self, postmaster_pid: int | None):
        self.pid = postmaster_pid
        self.peak = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> float:
        import psutil

        try:
            root = psutil.Process(self.pid)
            procs = [root, *root.children(recursive=True)]
        except psutil.Error:
            return 0.0
        total = 0
        for p in procs:
            try:
                total += p.memory_full_info().pss
            except psutil.Error:
                pass
        return total / 2**20

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._sample())
            self._stop.wait(0.2)

    def __enter__(self):
        if self.pid:
            self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        if self.pid:
            self._thread.join()
            self.peak = max(self.peak, self._sample())


def server(args, workdir: Path) -> tuple[str, int | None]:
    """Admin URL and postmaster pid (pid None for an external server: its memory is not measured)."""
    if args.database_url:
        return args.database_url, None
    _, url = private_server(
        workdir / "pgdata", args.shared_buffers or None, cleanup_mode="stop"
    )  # tuned like gmv's embedded server
    pid = int((workdir / "pgdata" / "postmaster.pid").read_text().split()[0])
    return url, pid


VARIANTS = {
    "default": ((), None),  # gmv match as shipped
    "sync-off": (
        ("SET synchronous_commit = off",),
        None,
    ),  # match batches commit without waiting for WAL flush
}


def variant_settings(variant: str, batch: int) -> tuple[tuple[str, ...], int]:
    """(session statements, batch size) of a --variants name: default, sync-off, batch-N."""
    if variant.startswith("batch-"):
        return (), int(variant.split("-", 1)[1])
    if variant not in VARIANTS:
        raise SystemExit(f"unknown variant {variant!r}; use default, sync-off or batch-N")
    sets, _ = VARIANTS[variant]
    return sets, batch


def connect_with(url: str, sets: tuple[str, ...]):
    """gmv's connection (autocommit) with a variant's session settings."""
    from gmv_sql.db.connect import connect

    conn = connect(url, autocommit=True)
    for statement in sets:
        conn.execute(statement)
    return conn


def load_images(conn, n_train: int, n_gen: int) -> None:
    """Owner, licence, run and n image rows, via COPY (ids come out 1..n in order)."""
    owner = conn.execute("INSERT INTO gmv.owner (name) VALUES ('bench') RETURNING owner_id").fetchone()[0]
    lic = conn.execute("INSERT INTO gmv.license (name) VALUES ('bench') RETURNING license_id").fetchone()[0]
    gen = conn.execute("INSERT INTO gmv.generator (name) VALUES ('bench') RETURNING generator_id").fetchone()[
        0
    ]
    run = conn.execute(
        "INSERT INTO gmv.generation_run (generator_id, name) VALUES (%s, 'bench') RETURNING run_id", (gen,)
    ).fetchone()[0]
    with conn.cursor() as cur:
        with cur.copy("COPY gmv.training_image (sha256, uri, owner_id, license_id) FROM STDIN") as copy:
            for i in range(n_train):
                copy.write_row((f"{i:064x}", f"bench://t/{i}", owner, lic))
        with cur.copy("COPY gmv.generated_image (sha256, uri, run_id) FROM STDIN") as copy:
            for i in range(n_gen):
                copy.write_row((f"{i:064x}", f"bench://g/{i}", run))


def run_sql(
    admin_url: str, pid: int | None, train_path: Path, gen_path: Path, args
) -> tuple[list[tuple[dict, np.ndarray]], str]:
    """Load once; per --gmv-index build that index, then `gmv match` (all generated, --rematch) at every
    ef_search / probes, and once with --target-recall (calibration included) as a user runs it."""
    from gmv_sql import spaces
    from gmv_sql.db.connect import connect
    from gmv_sql.embed import store
    from gmv_sql.index import builder
    from gmv_sql.match import matcher

    train = np.load(train_path, mmap_mode="r")
    gen = np.load(gen_path)
    n = len(train)
    url = fresh_database(admin_url, f"bench_{train_path.stem}")
    with connect(url, autocommit=True) as conn:
        t0 = time.perf_counter()
        load_images(conn, n, len(gen))
        space = spaces.get_or_create_space(
            conn,
            "bench",
            model="bench",
            dim=train.shape[1],
            hnsw_m=args.m,
            hnsw_ef_construction=args.ef_construction,
        )
        store.drop_index(conn, space)  # build once after loading: far faster than inserting into it
        ids = np.arange(1, n + 1, dtype=np.int64)
        for start in range(0, n, 50_000):
            store.copy_vectors(
                conn,
                space,
                "training",
                ids[start : start + 50_000],
                np.asarray(train[start : start + 50_000]),
            )
        store.copy_vectors(conn, space, "generated", np.arange(1, len(gen) + 1), gen)
        load_s = time.perf_counter() - t0
        conn.execute(f"SET max_parallel_maintenance_workers = {max(0, args.threads - 1)}")

    def to_indices() -> np.ndarray:
        with connect(url, autocommit=True) as conn:
            rows = conn.execute(
                "SELECT generated_id, training_id FROM gmv.match ORDER BY generated_id, rank"
            ).fetchall()
        idx = np.full((len(gen), args.k), -1, dtype=np.int64)
        counts = np.zeros(len(gen), dtype=int)
        for g, t in rows:
            idx[g - 1, counts[g - 1]] = t - 1
            counts[g - 1] += 1
        return idx

    out = []
    for n_config, config in enumerate(args.gmv_index):
        kind, precision = config.split("-")
        with connect(url, autocommit=True) as conn:
            conn.execute(f"SET max_parallel_maintenance_workers = {max(0, args.threads - 1)}")
            t0 = time.perf_counter()
            hnsw = kind == "hnsw"
            built = builder.build(
                conn,
                space,
                kind=kind,
                precision=precision,
                m=args.m if hnsw else None,
                ef_construction=args.ef_construction if hnsw else None,
            )
            space = built.space
            build_s = time.perf_counter() - t0
            conn.execute("VACUUM ANALYZE")
        label = f"gmv {kind.upper() if hnsw else 'IVFFlat'} {space.index_storage}"
        if not hnsw:
            label += f" lists={space.ivfflat_lists}"
        result = {"method": label, "load_s": load_s, "build_s": build_s, "index_mb": built.size_mb}
        print(f"# {label}: built in {build_s:.1f}s, {built.size_mb:,.0f} MB", file=sys.stderr, flush=True)
        settings = args.ef_list if hnsw else args.probes_list
        # One untimed run first, as on a server that has matched before: it reads the new index into
        # shared buffers and records the training vectors as covered (a space's first match does that
        # once; it would otherwise be charged to the first setting).
        matcher.match_space(
            partial(connect, url),
            space,
            k=args.k,
            ef_search=settings[0] if hnsw else None,
            probes=None if hnsw else settings[0],
            workers=args.threads,
            batch=args.batch,
            rematch=True,
            recall_sample=0,
        )
        for variant in args.variants:
            sets, batch = variant_settings(variant, args.batch)
            for setting in settings:
                # Timed without the memory sampler: reading smaps of processes that map 4GB of shared
                # buffers costs CPU that the 2 cores would otherwise give to matching.
                t0 = time.perf_counter()
                match = matcher.match_space(
                    partial(connect_with, url, sets),
                    space,
                    k=args.k,
                    ef_search=setting if hnsw else None,
                    probes=None if hnsw else setting,
                    workers=args.threads,
                    batch=batch,
                    rematch=True,
                    recall_sample=args.recall_sample,
                )
                search_s = time.perf_counter() - t0
                assert match.matched == len(gen), match
                name = "ef" if hnsw else "probes"
                out.append(
                    (
                        {
                            **result,
                            "method": label + ("" if variant == "default" else f" [{variant}]"),
                            "ef_search": setting,
                            "setting": f"{name} {setting}",
                            "search_s": search_s,
                            "check_s": match.recall_seconds,
                        },
                        to_indices(),
                    )
                )
        if args.target_recall:
            t0 = time.perf_counter()
            match = matcher.match_space(
                partial(connect, url),
                space,
                k=args.k,
                workers=args.threads,
                batch=args.batch,
                rematch=True,
                target_recall=args.target_recall,
                recall_sample=args.recall_sample,
            )
            search_s = time.perf_counter() - t0
            t = match.tuning
            setting = f"target {args.target_recall:g}: {t.setting.replace('_search', '')} {t.value} (sample {t.recall:.3f}, {t.seconds:.1f}s)"
            out.append(
                (
                    {
                        **result,
                        "method": label + " --target-recall",
                        "setting": setting,
                        "search_s": search_s,
                        "check_s": match.recall_seconds + t.seconds,
                    },
                    to_indices(),
                )
            )
        if n_config == 0 and args.memory:
            # Peak memory: one more run at the most thorough setting, sampled (shared buffers dominate).
            with PssSampler(pid) as sampler:
                matcher.match_space(
                    partial(connect, url),
                    space,
                    k=args.k,
                    ef_search=max(settings) if hnsw else None,
                    probes=None if hnsw else max(settings),
                    workers=args.threads,
                    batch=args.batch,
                    rematch=True,
                )
            for r, _ in out:
                r["peak_rss_mb"] = sampler.peak if pid else float("nan")
    for r, _ in out:
        r.setdefault("peak_rss_mb", float("nan"))
    return out, url


# --------------------------------------------------------------------------- main


def recall_at_k(found: np.ndarray, truth: np.ndarray) -> float:
    hits = [len(set(f[f >= 0]) & set(t)) / len(t) for f, t in zip(found, truth, strict=True)]
    return float(np.mean(hits))


def print_table(rows: list[dict]) -> None:
    head = [
        "n_train",
        "method",
        "setting",
        "matched/s",
        "w/o check/s",
        "recall@k",
        "peak MB",
        "build s",
        "search s",
        "check s",
    ]
    lines = [head]
    for r in rows:
        lines.append(
            [
                f"{r['n_train']:,}",
                r["method"],
                r.get("setting") or (f"ef {r['ef_search']}" if r.get("ef_search") else "-"),
                f"{r['rate']:,.0f}",
                f"{r['rate_without_check']:,.0f}" if "check_s" in r else "-",
                f"{r['recall']:.4f}",
                f"{r['peak_rss_mb']:,.0f}",
                f"{r['build_s']:.1f}",
                f"{r['search_s']:.2f}",
                f"{r['check_s']:.2f}" if "check_s" in r else "-",
            ]
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(head))]
    for i, line in enumerate(lines):
        print(
            "  ".join(
                c.ljust(w) if j in (1, 2) else c.rjust(w)
                for j, (c, w) in enumerate(zip(line, widths, strict=True))
            )
        )
        if i == 0:
            print("  ".join("-" * w for w in widths))


def print_targets(rows: list[dict], target: float) -> None:
    """Per size: each method's fastest run with recall >= target, and its rate against numpy and FAISS."""
    for n in sorted({r["n_train"] for r in rows}):
        best: dict[str, dict] = {}
        for r in rows:
            if (
                r["n_train"] == n
                and r["recall"] >= target
                and r["rate"] > best.get(r["method"], {}).get("rate", 0)
            ):
                best[r["method"]] = r
        numpy_rate = next(
            (r["rate"] for r in rows if r["n_train"] == n and r["method"].startswith("numpy")), None
        )
        faiss_rate = best.get("FAISS HNSWFlat", {}).get("rate")
        print(f"\n{n:,} training: fastest run per method with recall@k >= {target}")
        if not best:
            continue
        for method, r in best.items():
            vs = [
                f"{r['rate'] / numpy_rate:.1f}x numpy" if numpy_rate else "",
                f"{r['rate'] / faiss_rate:.2f}x FAISS" if faiss_rate else "",
            ]
            setting = r.get("setting") or (f"ef {r['ef_search']}" if r.get("ef_search") else "-")
            if faiss_rate and "rate_without_check" in r:
                vs.append(f"without the recall check {r['rate_without_check'] / faiss_rate:.2f}x FAISS")
            print(
                f"  {method:40s} {setting:44s} {r['rate']:8,.0f}/s  recall {r['recall']:.4f}  "
                + ", ".join(v for v in vs if v)
            )


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "_worker":
        a = sys.argv[2:]
        worker(
            a[0],
            a[1],
            a[2],
            int(a[3]),
            int(a[4]),
            int(a[5]),
            [int(e) for e in a[6].split(",")],
            int(a[7]),
            a[8],
        )
        return
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="200000,1000000", help="comma-separated training-set sizes")
    p.add_argument("--generated", type=int, default=2000)
    p.add_argument("--dim", type=int, default=512)
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--m", type=int, default=16)
    p.add_argument("--ef-construction", type=int, default=64)
    p.add_argument(
        "--ef-search",
        default="64,80,100,200,400",
        help="comma-separated ef_search values: every HNSW method is searched at each (one build)",
    )
    p.add_argument(
        "--threads", type=int, default=os.cpu_count() or 1, help="threads / connections per method"
    )
    p.add_argument("--methods", default="sql,faiss,faiss-ivf,hnswlib,numpy")
    p.add_argument(
        "--dataset",
        choices=["synthetic", "fashion-mnist"],
        default="synthetic",
        help="synthetic clustered vectors, or Fashion-MNIST raw pixels (60k training, --generated test images)",
    )
    p.add_argument(
        "--gmv-index",
        default="hnsw-full,hnsw-half,ivfflat-half",
        help="comma-separated gmv indexes KIND-PRECISION (hnsw|ivfflat)-(full|half), each built and matched",
    )
    p.add_argument(
        "--space",
        choices=["pixels", "efficientnet"],
        default="pixels",
        help="with --dataset fashion-mnist: raw pixels (784-d) or efficientnet-lite0 at 64 px (1280-d, embedded "
        "once by gmv's embedder with onnxruntime and cached in ~/.cache/gmv_sql/bench)",
    )
    p.add_argument("--probes", default="1,2,4,8,16", help="comma-separated IVFFlat probes (gmv and FAISS)")
    p.add_argument(
        "--memory", action="store_true", help="also sample PostgreSQL's peak memory (one more run)"
    )
    # Kept so the commands recorded in docs/BENCHMARKS.md still run: the refresh timing moved to
    # benchmarks/report.py when the credit views became tables (migration 0011).
    p.add_argument("--refresh-rows", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument(
        "--shared-buffers",
        default="4GB",
        help="shared_buffers of the embedded server (the HNSW index should fit; '' keeps the default)",
    )
    p.add_argument(
        "--database-url", help="admin URL of a PostgreSQL with pgvector (default: an embedded server)"
    )
    p.add_argument(
        "--workdir", type=Path, default=None, help="vectors and the embedded server (default: a temp dir)"
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", type=Path, help="also write the results here")
    p.add_argument("--batch", type=int, default=None, help="gmv match --batch-size [default: gmv's own, 200]")
    p.add_argument(
        "--recall-sample",
        type=int,
        default=100,
        help="gmv match --recall-sample: the run's recall check (its seconds are shown apart as 'check s')",
    )
    p.add_argument(
        "--variants",
        default="default",
        help="comma-separated gmv match variants, each swept over every setting: default, sync-off "
        "(synchronous_commit off for the batches), batch-N (N images per statement)",
    )
    p.add_argument(
        "--target-recall", type=float, default=0.95, help="recall for the 'fastest at recall >=' summary"
    )
    args = p.parse_args()
    args.ef_list = [int(e) for e in args.ef_search.split(",")]
    args.probes_list = [int(e) for e in args.probes.split(",")]
    args.gmv_index = args.gmv_index.split(",")
    args.variants = args.variants.split(",")
    load_start = os.getloadavg()[0]
    if args.batch is None:
        from gmv_sql.match.matcher import DEFAULT_BATCH

        args.batch = DEFAULT_BATCH
    if args.dataset == "fashion-mnist" and args.sizes == "200000,1000000":
        args.sizes = "60000"
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="gmv_bench_"))
    workdir.mkdir(parents=True, exist_ok=True)
    methods = args.methods.split(",")
    if args.refresh_rows:
        print("note: --refresh-rows is ignored; time the refresh with benchmarks/report.py", file=sys.stderr)
    admin_url, pid = server(args, workdir) if "sql" in methods else (None, None)
    rows: list[dict] = []
    for n in [int(s) for s in args.sizes.split(",")]:
        if args.dataset == "fashion-mnist" and args.space == "efficientnet":
            train_path, gen_path = make_fashion_embedded(workdir, n, args.generated)
            args.dim = int(np.load(train_path, mmap_mode="r").shape[1])
        elif args.dataset == "fashion-mnist":
            train_path, gen_path = make_fashion(workdir, n, args.generated)
            args.dim = 784
        else:
            train_path, gen_path = make_data(workdir, n, args.generated, args.dim, args.seed)
        print(f"# {n:,} x {args.dim} training, {args.generated:,} generated", file=sys.stderr, flush=True)
        [(exact, truth)] = run_worker("numpy", train_path, gen_path, args, workdir)

        def record(result: dict, idx: np.ndarray, n: int = n, truth: np.ndarray = truth) -> None:
            result.update(n_train=n, recall=recall_at_k(idx, truth), rate=args.generated / result["search_s"])
            if "check_s" in result:
                result["rate_without_check"] = args.generated / max(
                    1e-9, result["search_s"] - result["check_s"]
                )
            rows.append(result)
            print(
                json.dumps(result), file=sys.stderr, flush=True
            )  # partial results survive an interrupted run

        if "numpy" in methods:
            record({**exact, "method": "numpy exact (BLAS)"}, truth)
        if "sql" in methods:
            per_ef, _ = run_sql(admin_url, pid, train_path, gen_path, args)
            for result, idx in per_ef:
                record(result, idx)
        for lib in ("faiss", "faiss-ivf", "hnswlib"):
            if lib in methods:
                for result, idx in run_worker(lib, train_path, gen_path, args, workdir):
                    result["method"] = {
                        "faiss": "FAISS HNSWFlat",
                        "faiss-ivf": f"FAISS IVFFlat lists={ivf_lists(n)}",
                        "hnswlib": "hnswlib",
                    }[lib]
                    record(result, idx)
    print(
        f"\nk={args.k}, M={args.m}, ef_construction={args.ef_construction}, ef_search={args.ef_search}, "
        f"{args.threads} threads/connections, {args.generated:,} generated, dim {args.dim}, "
        f"dataset {args.dataset}{' (' + args.space + ')' if args.dataset == 'fashion-mnist' else ''}, load average {load_start:.1f} at the start, {os.getloadavg()[0]:.1f} at the end, on {os.cpu_count()} CPUs"
    )
    print_table(rows)
    print_targets(rows, args.target_recall)
    if args.json:
        args.json.write_text(
            json.dumps(
                {"args": {k: str(v) for k, v in vars(args).items()}, "rows": rows},
                indent=2,
            )
        )


if __name__ == "__main__":
    main()
