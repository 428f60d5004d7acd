"""`gmv space show|set|calibrate` (per-space settings such as the near-copy distance) and
`gmv report near-copies` (generated images that nearly copy a training image)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import click

from gmv_sql.app import App, pass_app
from gmv_sql.output import emit, format_option, read
from gmv_sql.resources import query
from gmv_sql.spaces import get_space


@click.group("space")
def space() -> None:
    """Show and change per-space settings (the near-copy distance of report.near_copy)."""


@space.command("show")
@click.argument("name")
@format_option
@pass_app
def space_show(app: App, name: str, fmt: str) -> None:
    """Show a space: model, dimension, distance, k, near-copy distance and how it was chosen.

    Example: gmv space show digits-effnet
    """
    with app.connect() as conn:
        found = get_space(conn, name)
        rows = read(conn, query("quality", "space_show"), {"space_id": found.space_id})
    emit(rows.rows, rows.columns, fmt)


def _near_copy_distance(ctx, param, value):
    if value is not None and (not math.isfinite(value) or value < 0):
        raise click.BadParameter(f"{value} is not a finite distance >= 0; e.g. 0.02", ctx=ctx, param=param)
    return value


@space.command("set")
@click.argument("name")
@click.option(
    "--near-copy-distance",
    type=float,
    callback=_near_copy_distance,
    metavar="D",
    help="Generated images at most D from a matched training image are near-copies (kept until `gmv space calibrate`).",
)
@pass_app
def space_set(app: App, name: str, near_copy_distance: float | None) -> None:
    """Set a space's near-copy distance by hand (in the space's own distance units).

    Example: gmv space set digits-effnet --near-copy-distance 0.02
    """
    from gmv_sql.quality import near_copy

    if near_copy_distance is None:
        raise click.UsageError("nothing to set; give --near-copy-distance D")
    with app.connect() as conn:
        found = get_space(conn, name)
        near_copy.set_distance(conn, found, near_copy_distance)
    click.echo(f"space {found.name!r}: near-copy distance {near_copy_distance:g} (set by hand)")


@space.command("calibrate")
@click.argument("name")
@click.option(
    "--percentile",
    type=click.FloatRange(0, 100, min_open=True, max_open=True),
    default=None,
    help="Percentile of nearest-other-training distances [default: 1, docs/NEAR_COPIES.md].",
)
@pass_app
def space_calibrate(app: App, name: str, percentile: float | None) -> None:
    """Calibrate the near-copy distance from the space's own training images (replaces a hand-set one).

    The threshold is a low percentile of the distances between training images and their nearest
    other training image: closer than almost any two distinct training images are.

    Example: gmv space calibrate digits-effnet
    """
    from gmv_sql.quality import near_copy

    with app.connect() as conn:
        found = get_space(conn, name)
        result = near_copy.calibrate(
            conn, found, percentile=percentile or near_copy.PERCENTILE, override=True
        )
    if not result.changed:
        raise click.ClickException(
            f"space {found.name!r} has {result.sampled} training vectors ({result.duplicates} duplicates), too few "
            f"to calibrate (need {near_copy.MIN_SAMPLE} distinct); embed more training images, or set one with "
            f"`gmv space set {found.name} --near-copy-distance D`"
        )
    click.echo(
        f"space {found.name!r}: near-copy distance {result.threshold:.6g} "
        f"(percentile {percentile or near_copy.PERCENTILE:g} of {result.sampled} training images' nearest-other "
        f"distances; {json.dumps({k: round(v, 6) for k, v in result.percentiles.items()})})"
    )


@click.command("near-copies")
@click.option("--space", "space_name", metavar="NAME", help="Embedding space [default: the only one].")
@format_option
@pass_app
def near_copies(app: App, space_name: str | None, fmt: str) -> None:
    """Generated images that are near-copies of a training image (possible memorisation).

    A near-copy is at most the space's near-copy distance from a matched training image; shown
    with the training image's owner and licence and both URIs. The distance is calibrated from
    the space's own training data unless set with `gmv space set NAME --near-copy-distance D`.

    Example: gmv report near-copies --space digits-effnet --format csv
    """
    from gmv_sql.quality import near_copy

    with app.connect() as conn:
        found = get_space(conn, space_name)
        calibration = near_copy.calibrate_if_needed(conn, found)
        rows = read(conn, query("quality", "near_copies"), {"space": found.name})
        setting = conn.execute(query("quality", "near_copy_setting"), {"space_id": found.space_id}).fetchone()
    emit(rows.rows, rows.columns, fmt)
    n = len({r.generated_id for r in rows.rows})
    if setting[0] is None:
        click.echo(
            f"note: space {found.name!r} has too few training vectors to calibrate a near-copy distance; "
            f"set one with `gmv space set {found.name} --near-copy-distance D`",
            err=True,
        )
    else:
        how = "calibrated" if setting[1] == "calibrated" else "set by hand"
        fresh = " (just calibrated)" if calibration and calibration.changed else ""
        click.echo(
            f"{n:,} near-copies in space {found.name!r} (distance <= {setting[0]:.6g}, {how}{fresh})",
            err=True,
        )


@click.command("consistency")
@click.option(
    "--attribute",
    required=True,
    metavar="NAME",
    help="A manifest attribute on both training and generated images (e.g. the class asked for).",
)
@click.option("--space", "space_name", metavar="NAME", help="Embedding space [default: the only one].")
@format_option
@pass_app
def consistency(app: App, attribute: str, space_name: str | None, fmt: str) -> None:
    """Share of top-k matches whose training image has the generated image's attribute value, vs chance.

    GMValuator's class-consistency check: per rank and overall, the share of matches with the same
    value, the chance level from the value's frequency among training images that can be matched,
    and a one-sided binomial test (share > chance).

    Example: gmv audit consistency --attribute digit --space digits-effnet
    """
    from gmv_sql.audit.consistency import consistency as audit_consistency

    with app.connect() as conn:
        found = get_space(conn, space_name)
        result = audit_consistency(conn, found, attribute)
    if fmt == "json":
        plain = result.as_dict()
        for row in plain["rows"]:
            row["lift"] = row["lift"] if math.isfinite(row["lift"]) else str(row["lift"])
        click.echo(json.dumps(plain, indent=2))
        return
    emit(
        [
            (r.rank, r.n, r.same, round(r.share, 4), round(r.chance, 4), round(r.lift, 2), r.p_value)
            for r in result.rows
        ],
        ("rank", "matches", "same", "share", "chance", "lift", "p_value"),
        fmt,
    )
    if fmt == "table":
        click.echo(result.summary())


@click.group("quality")
def quality() -> None:
    """Quality weights q_j of generated images: credit is multiplied by them (default 1)."""


@quality.command("import")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@pass_app
def quality_import(app: App, file: Path) -> None:
    """Set q_j from a CSV: a sha256 or path column and a quality column (numbers >= 0).

    Every row is checked first (unknown images, negative or non-numeric values are one-line errors)
    and all are written in one transaction, or none. Run `gmv value refresh` afterwards.

    Example: gmv quality import quality.csv
    """
    from gmv_sql.quality import weights

    with app.connect() as conn:
        qualities = weights.read_quality_file(conn, file)
        update = weights.store(conn, qualities)
    click.echo(f"quality of {update.total:,} generated images set ({update.changed:,} changed)")
    if update.changed:
        click.echo("next: gmv value refresh")


@quality.command("score")
@click.option(
    "--scorer",
    required=True,
    metavar="MODULE:FUNCTION",
    help="A function taking a PIL image and returning a number >= 0, e.g. gmv_sql.quality.scorers:sharpness.",
)
@pass_app
def quality_score(app: App, scorer: str) -> None:
    """Score every generated image with a function and store the result as its quality q_j.

    The function gets a PIL image (RGB) and returns a number >= 0; every image is scored before
    anything is written, and a failure or a bad value names the image. Offline scorers ship in
    gmv_sql.quality.scorers (sharpness, contrast). Run `gmv value refresh` afterwards.

    Example: gmv quality score --scorer gmv_sql.quality.scorers:sharpness
    """
    from gmv_sql.progress import Progress
    from gmv_sql.quality import weights

    function = weights.load_scorer(scorer)
    with app.connect() as conn:
        total = conn.execute(query("quality", "count_generated")).fetchone()[0]
        bar = Progress(f"quality {scorer}", total, unit="images")
        # Closed (its final line drawn) only on success, so a refusal prints only its error.
        scores = weights.score_all(conn, function, scorer, on_progress=bar.update)
        bar.close()
        if not scores:
            raise click.ClickException("no generated images to score; run `gmv ingest generated` first")
        update = weights.store(conn, scores)
    values = sorted(scores.values())
    click.echo(
        f"quality of {update.total:,} generated images scored by {scorer} ({update.changed:,} changed; "
        f"min {values[0]:.4g}, median {values[len(values) // 2]:.4g}, max {values[-1]:.4g})"
    )
    if update.changed:
        click.echo("next: gmv value refresh")
