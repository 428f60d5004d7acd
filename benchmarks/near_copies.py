"""How far are near-copies, and how far are distinct images? Decides the near-copy calibration rule.

For each data set and embedding space: the distance from each training image to its nearest OTHER
training image (the calibration sample), the distance from planted copies of training images
(flipped, noised, re-encoded as JPEG, slightly cropped) to their nearest training image, and the
same for disjoint images (never in the training set). Then, for candidate rules "threshold = the
q-th percentile of the nearest-other-training distances", the share of planted copies flagged and of
disjoint images flagged (false alarms). numpy only, no database: cosine distance as pgvector's <=>.

    python benchmarks/near_copies.py            # all sets (minutes: efficientnet-lite0 on CPU)
    python benchmarks/near_copies.py --quick    # pixels spaces only

Data (all offline): scikit-learn's digits as the demo writes them (32x32 PNGs; the demo's 200
training images, and a 1,000-image training set), and 96x96 patches of real photos (scikit-learn's
sample images and matplotlib's grace_hopper.jpg).
"""

from __future__ import annotations

import argparse
import io
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gmv_sql.quality.near_copy import PERCENTILE, distinct, nearest_other_distances, threshold_from  # noqa: E402

PERCENTILES = (0.5, 1.0, 2.0, 5.0)


def flipped(im: Image.Image, rng) -> Image.Image:
    return ImageOps.mirror(im)


def noised(im: Image.Image, rng) -> Image.Image:
    a = np.asarray(im, dtype=np.float32)
    return Image.fromarray(np.clip(a + rng.normal(0, 8.0, a.shape), 0, 255).astype(np.uint8), mode=im.mode)


def jpeg(im: Image.Image, rng) -> Image.Image:
    buffer = io.BytesIO()
    im.save(buffer, format="JPEG", quality=75)
    return Image.open(io.BytesIO(buffer.getvalue())).convert(im.mode)


def cropped(im: Image.Image, rng) -> Image.Image:
    w, h = im.size
    dx, dy = max(1, round(0.04 * w)), max(1, round(0.04 * h))
    return im.crop((dx, dy, w - dx, h - dy))


TRANSFORMS = {"flipped": flipped, "noised": noised, "jpeg q75": jpeg, "cropped 4%": cropped}


def digits_images(n_train: int | None, seed: int = 0):
    from sklearn.datasets import load_digits

    from gmv_sql.demo import data

    images, labels = data.load_digits()
    pil = [Image.fromarray(data.to_png_pixels(x), mode="L") for x in images]
    if n_train is None:  # the demo's training set: 4 members + 16 non-members per class
        split = data.split_per_class(labels, 4, 16, seed)
        train = sorted([*split.members.tolist(), *split.nonmembers.tolist()])
    else:
        train = sorted(np.random.default_rng(seed).permutation(len(pil))[:n_train].tolist())
    rest = sorted(set(range(len(pil))) - set(train))
    rest = np.random.default_rng(seed + 1).permutation(rest)[:200].tolist()
    del load_digits
    return [pil[i] for i in train], [pil[i] for i in rest]


def photo_patches(seed: int = 0, side: int = 96):
    import matplotlib
    from sklearn.datasets import load_sample_images

    photos = [Image.fromarray(a) for a in load_sample_images().images]
    photos.append(
        Image.open(Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg").convert("RGB")
    )
    patches = []
    for photo in photos:
        w, h = photo.size
        for y in range(0, h - side + 1, side):
            for x in range(0, w - side + 1, side):
                patches.append(photo.crop((x, y, x + side, y + side)))
    order = np.random.default_rng(seed).permutation(len(patches))
    n_train = (2 * len(patches)) // 3
    return [patches[i] for i in order[:n_train]], [patches[i] for i in order[n_train:]]


def embedder_for(name: str):
    from gmv_sql.embed.models import build_embedder

    if name == "pixels 8 gray":
        return build_embedder("pixels", pixels_size=8, pixels_color="gray")
    if name == "pixels 16 rgb":
        return build_embedder("pixels", pixels_size=16, pixels_color="rgb")
    if name == "pixels 8 gray mirror":
        return build_embedder("pixels", pixels_size=8, pixels_color="gray", pixels_mirror=True)
    if name == "pixels 16 rgb mirror":
        return build_embedder("pixels", pixels_size=16, pixels_color="rgb", pixels_mirror=True)
    if name == "efficientnet-lite0 64":
        return build_embedder("efficientnet-lite0", image_size=64)
    if name == "efficientnet-lite0 224":
        return build_embedder("efficientnet-lite0")
    raise ValueError(name)


def embed(embedder, images) -> np.ndarray:
    import torch

    from gmv_sql.embed.models import l2_normalise

    out = []
    with torch.inference_mode():
        for start in range(0, len(images), 64):
            batch = torch.stack([embedder.transform(im.convert("RGB")) for im in images[start : start + 64]])
            out.append(embedder.forward(batch).float().numpy())
    return l2_normalise(np.concatenate(out))


def nearest(queries: np.ndarray, training: np.ndarray) -> np.ndarray:
    return (1.0 - queries @ training.T).min(axis=1)


def measure(set_name: str, space: str, train, disjoint, rng) -> list[str]:
    started = time.monotonic()
    embedder = embedder_for(space)
    t = embed(embedder, train)
    calibration = nearest_other_distances(t)
    planted_idx = rng.permutation(len(train))[: min(50, len(train))]
    planted = {
        name: nearest(embed(embedder, [f(train[i], rng) for i in planted_idx]), t)
        for name, f in TRANSFORMS.items()
    }
    outside = nearest(embed(embedder, disjoint), t)
    lines = []
    q = np.percentile(distinct(calibration), [0.5, 1, 2, 5, 50])
    lines.append(
        f"| {set_name} | {space} | {len(train)} ({len(train) - len(distinct(calibration))} dup.) | {q[0]:.4f} / {q[1]:.4f} / {q[2]:.4f} / {q[3]:.4f} / {q[4]:.4f} | "
        + " | ".join(f"{np.median(d):.4f} ({d.max():.4f})" for d in planted.values())
        + f" | {outside.min():.4f} / {np.percentile(outside, 5):.4f} |"
    )
    for p in PERCENTILES:
        threshold = threshold_from(calibration, p)
        flagged = [f"{(d <= threshold).mean():.0%}" for d in planted.values()]
        lines.append(
            f"|  | rule: {p:g}th percentile{' (default)' if p == PERCENTILE else ''} | | threshold {threshold:.4f} | "
            + " | ".join(flagged)
            + f" | {(outside <= threshold).mean():.1%} of {len(outside)} |"
        )
    print(f"  ({set_name}, {space}: {time.monotonic() - started:.0f}s)", file=sys.stderr)
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="pixels spaces only")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    sets = {
        "digits, demo's training set": digits_images(None),
        "digits, 1,000 training": digits_images(1000),
        "photo patches 96 px": photo_patches(),
    }
    spaces = {
        "digits, demo's training set": ["pixels 8 gray", "pixels 8 gray mirror", "efficientnet-lite0 64"],
        "digits, 1,000 training": ["pixels 8 gray", "pixels 8 gray mirror", "efficientnet-lite0 64"],
        "photo patches 96 px": ["pixels 16 rgb", "pixels 16 rgb mirror", "efficientnet-lite0 224"],
    }
    print(
        "| set | space | training | nearest-other-training distance p0.5 / p1 / p2 / p5 / median | "
        + " | ".join(f"{name}: median (max)" for name in TRANSFORMS)
        + " | disjoint: min / p5 |"
    )
    print("|---|---|---|---|" + "---|" * len(TRANSFORMS) + "---|")
    for set_name, (train, disjoint) in sets.items():
        for space in spaces[set_name]:
            if args.quick and not space.startswith("pixels"):
                continue
            for line in measure(set_name, space, train, disjoint, rng):
                print(line)


if __name__ == "__main__":
    main()
