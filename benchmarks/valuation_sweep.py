"""Benchmark: which weighting carries the membership signal? Schemes x temperature rules x k, two datasets.

For each dataset and seed: split per class into members and held-out non-members, train the demo's
class-conditional DDPM (gmv_sql/demo/ddpm.py, the demo's QUICK plan) on the members only, sample
generated digits, and embed everything the way `gmv demo` does (32x32 PNG pixels -> efficientnet-lite0
at 64 px; and the `pixels` embedder at 8x8). Then, per embedding space, cosine k-NN (exact, numpy) of
every generated image among members + non-members, and for every weighting and k in {1, 3, 5, 10, 20}:

  * Welch p (two-sided) and AUC of members' vs non-members' values (gmv_sql.audit.membership),
  * class consistency: the share of credit that goes to a training image of the generated image's class.

Weightings: rank_linear, reciprocal_rank, uniform, softmax_distance at fixed T (0.1, the shipped
temperature, and 0.02), and softmax with T from each calibration rule of gmv_sql/value/calibration.py
(T = c * a statistic of the space's own match distances) for several c.

    python benchmarks/valuation_sweep.py prepare          # DDPM + embeddings, cached (1-6 minutes per run)
    python benchmarks/valuation_sweep.py analyse          # the tables (seconds), from the cache
    python benchmarks/valuation_sweep.py analyse --json results.json

Datasets: scikit-learn's 1,797 digits (8x8) and the 5,000 MNIST digits of Debian's opencv-doc
(/usr/share/doc/opencv-doc/examples/data/digits.png, 20x20, box-downscaled to 8x8 like the demo's).
The maths is numpy; tests/db/test_calibration.py checks that SQL computes the same weights.
Results (2 datasets x 3 seeds x 2 spaces) and the rule they chose, T = 0.5 * median(d2 - d1)
(gmv_sql/value/calibration.py): docs/VALUATION.md.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

OPENCV_DIGITS = Path("/usr/share/doc/opencv-doc/examples/data/digits.png")
DATASETS = ("sklearn-digits", "opencv-digits")
KS = (1, 3, 5, 10, 20)
SPACES = ("effnet64", "pixels8")


def load_dataset(name: str) -> tuple[np.ndarray, np.ndarray]:
    """(images in [0, 1] ink, shape (n, 8, 8); labels 0..9)."""
    if name == "sklearn-digits":
        from gmv_sql.demo import data

        return data.load_digits()
    if name == "opencv-digits":
        import gzip

        from PIL import Image

        path = OPENCV_DIGITS
        if not path.exists() and path.with_suffix(".png.gz").exists():
            path = path.with_suffix(".png.gz")
        if not path.exists():
            raise SystemExit(f"{OPENCV_DIGITS} not found: apt-get install opencv-doc")
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rb") as handle:
            sheet = np.asarray(Image.open(handle).convert("L"), dtype=np.float32) / 255.0
        # 50 rows x 100 columns of 20x20 cells; each block of 5 rows is one digit (500 per class).
        cells = sheet.reshape(50, 20, 100, 20).transpose(0, 2, 1, 3).reshape(5000, 20, 20)
        labels = np.repeat(np.arange(10), 500)
        small = np.stack(
            [
                np.asarray(Image.fromarray(cell).resize((8, 8), Image.Resampling.BOX), dtype=np.float32)
                for cell in cells
            ]
        )
        # Thin MNIST strokes average out in the box filter: stretch each digit to full ink, as
        # scikit-learn's digits are (ink counts 0..16).
        small = small / np.maximum(small.max(axis=(1, 2), keepdims=True), 1e-9)
        return small.astype(np.float64), labels.astype(np.int64)
    raise SystemExit(f"unknown dataset {name!r}; use one of {', '.join(DATASETS)}")


def embed_all(images: np.ndarray, embedders) -> dict[str, np.ndarray]:
    """Vectors of each image as `gmv embed` computes them from the demo's 32x32 PNGs."""
    import torch
    from PIL import Image

    from gmv_sql.demo.data import to_png_pixels
    from gmv_sql.embed.models import l2_normalise

    pictures = [Image.fromarray(to_png_pixels(image), mode="L").convert("RGB") for image in images]
    out = {}
    for name, embedder in embedders.items():
        chunks = []
        with torch.inference_mode():
            for start in range(0, len(pictures), 128):
                batch = torch.stack([embedder.transform(p) for p in pictures[start : start + 128]])
                chunks.append(np.asarray(embedder.forward(batch), dtype=np.float64))
        out[name] = l2_normalise(np.concatenate(chunks))
    return out


def prepare(args) -> None:
    import torch

    from gmv_sql.demo.data import split_per_class
    from gmv_sql.demo.ddpm import DDPM, DDPMConfig
    from gmv_sql.demo.generator import QUICK
    from gmv_sql.embed.models import efficientnet_lite0, pixels

    torch.set_num_threads(1)
    plan = QUICK
    embedders = {"effnet64": efficientnet_lite0(image_size=64), "pixels8": pixels(8)}
    args.cache.mkdir(parents=True, exist_ok=True)
    for dataset in args.datasets:
        images, labels = load_dataset(dataset)
        for seed in args.seeds:
            target = args.cache / f"{dataset}_seed{seed}.npz"
            if target.exists():
                print(f"{target.name}: cached", flush=True)
                continue
            started = time.monotonic()
            split = split_per_class(labels, plan.members_per_class, plan.nonmembers_per_class, seed)
            config = DDPMConfig(
                timesteps=plan.timesteps,
                hidden=plan.hidden,
                train_steps=plan.train_steps,
                learning_rate=plan.learning_rate,
            )
            model = DDPM(images.shape[1:], 10, config, seed=seed)
            losses = model.train(images[split.members], labels[split.members])
            generated_labels = np.repeat(np.arange(10), plan.generated_per_class)
            generated = model.sample(generated_labels)
            trained = time.monotonic() - started
            training_index = np.concatenate([split.members, split.nonmembers])
            vectors_training = embed_all(images[training_index], embedders)
            vectors_generated = embed_all(generated, embedders)
            np.savez_compressed(
                target,
                training_index=training_index,
                is_member=np.r_[np.ones(len(split.members), bool), np.zeros(len(split.nonmembers), bool)],
                training_labels=labels[training_index],
                generated_labels=generated_labels,
                generated=generated,
                **{f"training_{k}": v for k, v in vectors_training.items()},
                **{f"generated_{k}": v for k, v in vectors_generated.items()},
            )
            print(
                f"{target.name}: final loss {losses[-1]:.4f}, DDPM {trained:.0f}s, "
                f"total {time.monotonic() - started:.0f}s",
                flush=True,
            )


# Weightings measured: (label, formula, temperature rule). Rules: ("fixed", T) or (statistic, c) with
# T = c * statistic of the space's matches at the k in use (the statistics of gmv_sql/value/calibration.py).
RULE_FACTORS = (0.25, 0.5, 1.0, 2.0)
RULE_STATISTICS = ("median_gap2", "median_gapk", "median_d1")


def weightings() -> list[tuple[str, str, tuple]]:
    out = [
        ("rank_linear", "rank_linear", ()),
        ("reciprocal_rank", "reciprocal_rank", ()),
        ("uniform", "uniform", ()),
        ("softmax T=0.1", "softmax", ("fixed", 0.1)),
        ("softmax T=0.02", "softmax", ("fixed", 0.02)),
    ]
    for statistic in RULE_STATISTICS:
        for c in RULE_FACTORS:
            out.append((f"calibrated {c:g}*{statistic}", "softmax", (statistic, c)))
    return out


def statistics_of(distances: np.ndarray) -> dict[str, float]:
    """The calibration statistics of sorted (n, k) match distances (as sql/queries/calibration.sql)."""
    d1 = distances[:, 0]
    stats = {"median_d1": float(np.median(d1)), "median_gapk": float(np.median(distances[:, -1] - d1))}
    stats["median_gap2"] = float(np.median(distances[:, 1] - d1)) if distances.shape[1] > 1 else float("nan")
    return stats


def raw_weights(formula: str, distances: np.ndarray, temperature: float | None) -> np.ndarray:
    n, k = distances.shape
    ranks = np.arange(1, k + 1, dtype=np.float64)[None, :].repeat(n, axis=0)
    if formula == "rank_linear":
        return k - ranks + 1
    if formula == "reciprocal_rank":
        return 1.0 / ranks
    if formula == "uniform" or k == 1:
        return np.ones_like(ranks)
    return np.exp(-np.minimum((distances - distances[:, :1]) / temperature, 700.0))


def evaluate(run: dict, space: str, k_values=KS) -> list[dict]:
    """Every weighting x k on one run and space: p, AUC, class consistency, temperature."""
    from gmv_sql.audit.membership import membership_test

    training = run[f"training_{space}"]
    generated = run[f"generated_{space}"]
    distance_all = 1.0 - generated @ training.T  # cosine distance (unit vectors), as pgvector <=>
    order = np.argsort(distance_all, axis=1, kind="stable")[:, : max(k_values)]
    nearest = np.take_along_axis(distance_all, order, axis=1)
    is_member = run["is_member"]
    same_class = run["training_labels"][order] == run["generated_labels"][:, None]
    rows = []
    for k in k_values:
        distances, neighbours = nearest[:, :k], order[:, :k]
        stats = statistics_of(distances)
        for label, formula, rule in weightings():
            temperature = None
            if rule:
                temperature = rule[1] if rule[0] == "fixed" else rule[1] * stats[rule[0]]
                if not np.isfinite(temperature) or temperature <= 0:
                    temperature = 1.0  # k = 1: weights do not depend on T
            raw = raw_weights(formula, distances, temperature)
            weights = raw / raw.sum(axis=1, keepdims=True)
            values = np.bincount(neighbours.ravel(), weights=weights.ravel(), minlength=len(training))
            test = membership_test(values[is_member], values[~is_member])
            rows.append(
                {
                    "weighting": label,
                    "k": k,
                    "temperature": temperature,
                    "p": test.p_value,
                    "auc": test.auc,
                    "class_consistency": float((weights * same_class[:, :k]).sum() / len(weights)),
                    "members_mean": test.mean_members,
                    "nonmembers_mean": test.mean_nonmembers,
                }
            )
    return rows


def analyse(args) -> None:
    from collections import defaultdict

    results = []
    for dataset in args.datasets:
        for seed in args.seeds:
            path = args.cache / f"{dataset}_seed{seed}.npz"
            if not path.exists():
                print(f"{path} missing: run `prepare` first", file=sys.stderr)
                continue
            run = dict(np.load(path))
            for space in SPACES:
                for row in evaluate(run, space):
                    results.append({"dataset": dataset, "seed": seed, "space": space, **row})
    if args.json:
        args.json.write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
    # Per dataset and space: log10 p (geometric mean over seeds), AUC and class consistency (means), per k.
    groups = defaultdict(list)
    for r in results:
        groups[(r["dataset"], r["space"], r["weighting"], r["k"])].append(r)
    labels = [w[0] for w in weightings()]
    for dataset in args.datasets:
        for space in SPACES:
            print(
                f"\n### {dataset}, {space}: log10 p / AUC / class consistency (mean of seeds {args.seeds})\n"
            )
            print("| weighting | " + " | ".join(f"k = {k}" for k in KS) + " |")
            print("|---|" + "---|" * len(KS))
            for label in labels:
                cells = []
                for k in KS:
                    rs = groups.get((dataset, space, label, k))
                    if not rs:
                        cells.append("")
                        continue
                    logp = np.mean([np.log10(max(r["p"], 1e-300)) for r in rs])
                    cells.append(
                        f"{logp:.1f} / {np.mean([r['auc'] for r in rs]):.2f} / "
                        f"{np.mean([r['class_consistency'] for r in rs]):.2f}"
                    )
                print(f"| {label} | " + " | ".join(cells) + " |")
    # At gmv match's default k = 10: per dataset, means over seeds and both spaces.
    print(
        "\n### At k = 10 (gmv match's default): log10 p / AUC / class consistency, mean over seeds and spaces\n"
    )
    print("| weighting | " + " | ".join(args.datasets) + " |")
    print("|---|" + "---|" * len(args.datasets))
    for label in labels:
        cells = []
        for dataset in args.datasets:
            rs = [r for s in SPACES for r in groups.get((dataset, s, label, 10), [])]
            if not rs:
                cells.append("")
                continue
            cells.append(
                f"{np.mean([np.log10(max(r['p'], 1e-300)) for r in rs]):.1f} / "
                f"{np.mean([r['auc'] for r in rs]):.2f} / {np.mean([r['class_consistency'] for r in rs]):.2f}"
            )
        print(f"| {label} | " + " | ".join(cells) + " |")
    # Summary: per weighting, mean log10 p over seeds and spaces, per dataset, at each k.
    print("\n### Summary: mean log10 p over seeds and both spaces (lower is stronger)\n")
    print("| weighting | " + " | ".join(f"{d} k={k}" for d in args.datasets for k in KS[1:]) + " |")
    print("|---|" + "---|" * (len(args.datasets) * (len(KS) - 1)))
    for label in labels:
        cells = []
        for dataset in args.datasets:
            for k in KS[1:]:
                rs = [r for s in SPACES for r in groups.get((dataset, s, label, k), [])]
                cells.append(f"{np.mean([np.log10(max(r['p'], 1e-300)) for r in rs]):.1f}" if rs else "")
        print(f"| {label} | " + " | ".join(cells) + " |")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("stage", choices=("prepare", "analyse"))
    parser.add_argument("--cache", type=Path, default=Path("/tmp/gmv-valuation-sweep"))
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=DATASETS)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--json", type=Path, help="also write every row as JSON")
    args = parser.parse_args(argv)
    if args.stage == "prepare":
        prepare(args)
    else:
        analyse(args)


if __name__ == "__main__":
    main()
