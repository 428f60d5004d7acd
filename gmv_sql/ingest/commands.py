"""`gmv ingest training|generated`: image files (a folder or a manifest) into image rows."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import click

from gmv_sql.app import App, pass_app
from gmv_sql.errors import InputError
from gmv_sql.ingest import loader
from gmv_sql.ingest.files import DEFAULT_MAX_PIXELS, scan_folder
from gmv_sql.ingest.loader import DEFAULT_BATCH_SIZE, ON_ERROR_CHOICES, IngestResult
from gmv_sql.ingest.manifest import MANIFEST_SUFFIXES, BadRow, Kind, Row, read_manifest


def _shared_options(func):
    for decorator in reversed(
        (
            click.argument("path", type=click.Path(exists=True, path_type=Path)),
            click.option(
                "--manifest",
                type=click.Path(path_type=Path),
                help="CSV or JSONL listing the files (relative paths resolve against PATH).",
            ),
            click.option(
                "--on-error",
                type=click.Choice(ON_ERROR_CHOICES),
                default="skip",
                show_default=True,
                help="Bad files/rows: skip them (each reported on stderr as 'path: reason') or fail storing nothing.",
            ),
            click.option(
                "--batch-size",
                type=click.IntRange(1, 100_000),
                default=DEFAULT_BATCH_SIZE,
                show_default=True,
                help="Images per transaction.",
            ),
            click.option("--workers", type=click.IntRange(1, 64), help="Threads hashing and decoding files."),
            click.option(
                "--max-pixels",
                type=click.IntRange(1),
                default=DEFAULT_MAX_PIXELS,
                show_default=True,
                help="Larger images are refused as decompression bombs.",
            ),
            click.option("--quiet", "-q", is_flag=True, help="No progress line."),
        )
    ):
        func = decorator(func)
    return func


def _collect(
    path: Path, manifest: Path | None, kind: Kind, *, owner: str | None = None, license: str | None = None
) -> tuple[list[Row], list[BadRow], int]:
    """Rows to ingest from PATH (folder, single image or manifest) and --manifest; also files ignored."""
    if manifest is None and path.is_file() and path.suffix.lower() in MANIFEST_SUFFIXES:
        manifest, path = path, path.parent
    if manifest is not None:
        base = path if path.is_dir() else path.parent
        rows, bad = read_manifest(manifest, kind, base=base, default_owner=owner, default_license=license)
        return rows, bad, 0
    if kind == "training" and not (owner and license):
        raise InputError(
            f"no owner/licence for the images in {str(path)!r}: pass --owner and --license, "
            "or a --manifest with owner and license columns"
        )
    if path.is_dir():
        files, ignored = scan_folder(path)
    else:
        files, ignored = [path], 0
    rows = [Row(path=os.path.abspath(f), owner=owner, license=license) for f in files]
    return rows, [], ignored


def _finish(result: IngestResult, ignored: int) -> None:
    for_ignored = f"; {ignored:,} non-image files ignored (by extension)" if ignored else ""
    click.echo(result.summary() + for_ignored)


@click.group("ingest")
def ingest() -> None:
    """Add images (with owners, licences, generators) to the database; identity is the sha256 of the bytes.

    Example: gmv ingest training ./photos --owner alice --license cc-by
    """


@ingest.command("training")
@_shared_options
@click.option("--owner", help="Owner for files without one (folder ingest needs it).")
@click.option("--license", "license_", metavar="LICENSE", help="Licence for files without one.")
@click.option(
    "--strict",
    is_flag=True,
    help="Refuse owners and licences that do not exist yet (instead of creating them).",
)
@pass_app
def training(
    app: App,
    path: Path,
    manifest: Path | None,
    on_error: str,
    batch_size: int,
    workers: int | None,
    max_pixels: int,
    quiet: bool,
    owner: str | None,
    license_: str | None,
    strict: bool,
) -> None:
    """Ingest training images from a folder (recursive) or a manifest (CSV/JSONL: path, owner, license, …).

    Other manifest columns are kept as attributes. The same bytes under two owners is an error;
    re-ingesting adds nothing.

    Example: gmv ingest training ./data --manifest owners.csv
    """
    rows, bad_rows, ignored = _collect(
        path, manifest, "training", owner=_strip(owner), license=_strip(license_)
    )
    result = _load(
        app, "training", rows, bad_rows, on_error, batch_size, workers, max_pixels, quiet, strict=strict
    )
    _finish(result, ignored)


@ingest.command("generated")
@_shared_options
@click.option("--generator", required=True, help="Name of the generative model that made the images.")
@click.option(
    "--run", "run", help="Name of this batch of outputs (default: run-<UTC timestamp>; reuse it to resume)."
)
@pass_app
def generated(
    app: App,
    path: Path,
    manifest: Path | None,
    on_error: str,
    batch_size: int,
    workers: int | None,
    max_pixels: int,
    quiet: bool,
    generator: str,
    run: str | None,
) -> None:
    """Ingest generated images from a folder or a manifest (CSV/JSONL: path, quality, created_at, prompt, …).

    quality is GMValuator's weight q (default 1); created_at (ISO 8601, default now) picks the
    royalty period. Other manifest columns are kept as attributes.

    Example: gmv ingest generated ./samples --generator ddpm-digits --run epoch-40
    """
    generator = _strip(generator)
    if not generator:
        raise InputError("--generator is empty; name the model that generated the images")
    run = _strip(run) or dt.datetime.now(dt.timezone.utc).strftime("run-%Y%m%dT%H%M%SZ")
    rows, bad_rows, ignored = _collect(path, manifest, "generated")
    result = _load(
        app,
        "generated",
        rows,
        bad_rows,
        on_error,
        batch_size,
        workers,
        max_pixels,
        quiet,
        generator=generator,
        run=run,
    )
    _finish(result, ignored)


def _load(
    app: App,
    kind,
    rows,
    bad_rows,
    on_error: str,
    batch_size: int,
    workers: int | None,
    max_pixels: int,
    quiet: bool,
    **kind_options,
):
    """Both kinds load the same way: bad rows and files reported on stderr, progress unless --quiet."""
    return loader.ingest(
        app.connect,
        kind,
        rows,
        bad_rows,
        on_error=on_error,
        batch_size=batch_size,
        workers=workers,
        max_pixels=max_pixels,
        report=lambda line: click.echo(line, err=True),
        progress=not quiet,
        **kind_options,
    )


def _strip(value: str | None) -> str | None:
    if value is None:
        return None
    return value.strip() or None
