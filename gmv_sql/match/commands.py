"""`gmv match`: SQL k-NN of generated images against training images, and `gmv match recall`."""

from __future__ import annotations

import click

from gmv_sql.app import App, pass_app
from gmv_sql.errors import InputError
from gmv_sql.match import matcher, tuning
from gmv_sql.output import emit, format_option
from gmv_sql.progress import Progress
from gmv_sql.spaces import get_space


@click.group(invoke_without_command=True)
@click.option("--space", "space_name", metavar="NAME", help="Embedding space to match in (required).")
@click.option(
    "--k",
    type=click.IntRange(1, 1000),
    default=None,
    help=f"Neighbours per generated image [default: the space's k, else {matcher.DEFAULT_K}].",
)
@click.option(
    "--ef-search",
    type=click.IntRange(1, matcher.MAX_EF_SEARCH),
    default=None,
    help="HNSW candidate list size (>= k), instead of calibrating one for --target-recall.",
)
@click.option(
    "--probes",
    type=click.IntRange(1, matcher.MAX_PROBES),
    default=None,
    help="IVFFlat lists to search, instead of calibrating for --target-recall.",
)
@click.option(
    "--target-recall",
    type=click.FloatRange(0, 1, min_open=True),
    default=tuning.DEFAULT_TARGET_RECALL,
    show_default=True,
    help="Before matching, measure recall@k against exact search on a sample of generated images and "
    "use the cheapest ef_search (HNSW) or probes (IVFFlat) reaching it.",
)
@click.option(
    "--calibration-sample",
    type=click.IntRange(1, 10_000),
    default=None,
    help="Generated images the --target-recall calibration compares "
    "[default: 50 at 0.95, growing as 2.5 / (1 - target) up to 1000].",
)
@click.option("--exact", is_flag=True, help="Exact search without the index (slow; for audits).")
@click.option(
    "--batch-size",
    "batch",
    type=click.IntRange(min=1),
    default=matcher.DEFAULT_BATCH,
    show_default=True,
    help="Generated images per transaction.",
)
# The old spelling, kept working for scripts written against the first release.
@click.option("--batch", "batch_alias", type=click.IntRange(min=1), hidden=True, default=None)
@click.option(
    "--workers",
    type=click.IntRange(1, 64),
    default=None,
    help="Parallel database connections [default: CPU count, max 8].",
)
@click.option(
    "--rematch",
    is_flag=True,
    help="Delete this space's matches first and match everything again (to change k).",
)
@click.option(
    "--recall-sample",
    type=click.IntRange(min=0),
    default=100,
    show_default=True,
    help="Generated images of this run whose recall@k against exact search is measured and recorded (0: skip).",
)
@click.option(
    "--rerank-space",
    "rerank_space_name",
    metavar="B",
    help="Re-rank: candidates from --space's index, final top-k by space B's distance (docs/DEMO.md).",
)
@click.option(
    "--candidates",
    type=click.IntRange(1, 1000),
    default=None,
    help="With --rerank-space: candidates taken from --space's index [default: max(50, 10k)].",
)
@click.pass_context
def match(
    ctx: click.Context,
    space_name: str | None,
    k: int | None,
    ef_search: int | None,
    probes: int | None,
    target_recall: float,
    calibration_sample: int,
    exact: bool,
    batch: int,
    batch_alias: int | None,
    workers: int | None,
    rematch: bool,
    recall_sample: int,
    rerank_space_name: str | None,
    candidates: int | None,
) -> None:
    """Find the k nearest training images of every generated image not yet matched (SQL + HNSW).

    Opted-out training images and those under excluded licences are never matched. Work is
    committed per batch: after an interruption, run the same command again to finish. The index
    setting is calibrated first to reach --target-recall (spaces under 1,000 training vectors use
    the defaults); --ef-search or --probes skip that.

    Each run is recorded in gmv.match_run (report.match_run) with its settings and the recall@k
    it measured on a sample of the images it matched; every match row names its run.

    With --rerank-space B, the N nearest training images in --space are re-ordered by space B's
    distance and the first k kept (GMValuator's re-ranking by a second, perceptual distance).

    Example: gmv match --space effnet --k 10 --target-recall 0.98 --recall-sample 200
    """
    if ctx.invoked_subcommand is not None:
        return
    batch = batch_alias or batch
    if not space_name:
        raise InputError("gmv match needs --space NAME; list spaces with `gmv db status`")
    app = ctx.ensure_object(App)
    if candidates is not None and not rerank_space_name:
        raise InputError("--candidates only works with --rerank-space B; add it or drop --candidates")
    with app.connect() as conn:
        space = get_space(conn, space_name)
        rerank_space = get_space(conn, rerank_space_name) if rerank_space_name else None
    bar: list[Progress] = []  # created once the work is known, so refusals print only their error

    def start(total: int) -> None:
        bar.append(Progress(f"match {space.name}", total, unit="generated"))

    try:
        result = matcher.match_space(
            app.connect,
            space,
            k=k,
            ef_search=ef_search,
            probes=probes,
            target_recall=target_recall,
            calibration_sample=calibration_sample,
            exact=exact,
            batch=batch,
            workers=workers,
            rematch=rematch,
            on_progress=lambda n: bar[0].update(n),
            on_total=start,
            recall_sample=recall_sample,
            rerank_space=rerank_space,
            candidates=candidates,
        )
    finally:
        if bar:
            bar[0].close()
    _calibrate_near_copies(app, space.name)
    if result.rerank_space:
        _calibrate_near_copies(app, result.rerank_space)
    if result.stale_index:
        click.echo(f"note: {result.stale_index}", err=True)
    if result.tuning is not None:
        # A tiny space keeps the default setting: say so without claiming a calibration.
        verb = "calibrated" if result.tuning.recall is not None else "setting"
        click.echo(f"{verb} for recall {result.tuning.target:g}: {result.tuning.describe()}")
        if not result.tuning.reached:
            click.echo(
                "note: no setting reached the target recall; rebuild the index with more --m / --ef-construction "
                f"(HNSW) or fewer --lists (IVFFlat), or use --exact: gmv index build --space {result.space}",
                err=True,
            )
    how = result.setting
    if result.rerank_space:
        how += f", {result.candidates} candidates re-ranked by space {result.rerank_space!r}"
    click.echo(
        f"matched {result.matched:,} generated images in space {result.space!r} (k={result.k}, {how}, "
        f"{result.workers} connections): {result.rows:,} rows in {result.seconds:.1f}s ({result.rate:,.0f}/s)"
    )
    if result.recall_status == "measured":
        click.echo(
            f"recall@{result.k} {result.recall:.3f} against exact search on {result.recall_sample:,} "
            f"of the images matched (match run {result.run_id})"
        )
    elif result.recall_status == "skipped":
        click.echo(
            f"recall not measured (--recall-sample 0), recorded as skipped (match run {result.run_id})"
        )
    else:
        click.echo(f"match run {result.run_id} recorded")
    if result.pending and not result.eligible_training:
        click.echo(
            f"no training image in space {result.space!r} can be matched (none has a vector, or all are opted out "
            f"or under excluded licences); run `gmv embed --space {result.space}` on training images first"
        )
    if result.unmatched_ineligible:
        click.echo(
            f"re-matched {result.unmatched_ineligible:,} generated images whose matches included opted-out or excluded training images"
        )
    if result.late_rematched:
        click.echo(
            f"re-matched {result.late_rematched:,} generated images that training images embedded (or made eligible) "
            "after their matching could enter"
        )
    if result.exact_fallback:
        click.echo(
            f"{result.exact_fallback:,} images got too few rows from the index and were matched exactly"
        )
    if result.without_vector:
        click.echo(
            f"{result.without_vector:,} generated images have no vector in this space; run `gmv embed --space {result.space}`"
        )
    _calibrate_new_space(app, space)
    if result.matched:
        click.echo("next: gmv value refresh")


def _calibrate_new_space(app: App, space) -> None:
    """The first matches of a space give its softmax_calibrated temperature (kept until recalibrated)."""
    from gmv_sql.value.calibration import calibrate_missing

    with app.connect() as conn, conn.transaction():
        for c in calibrate_missing(conn, space.space_id):
            click.echo(
                f"calibrated scheme {c.scheme!r} in space {c.space!r}: temperature {c.temperature:.4g} ({c.rule})"
            )


def _calibrate_near_copies(app: App, space_name: str) -> None:
    """The near-copy distance of report.near_copy follows the space's training data (unless set by hand)."""
    from gmv_sql.quality import near_copy

    with app.connect() as conn:
        near_copy.calibrate_if_needed(conn, get_space(conn, space_name))


@match.command()
@click.option("--space", "space_name", required=True, metavar="NAME", help="Embedding space.")
@click.option(
    "--sample",
    type=click.IntRange(min=1),
    default=100,
    show_default=True,
    help="Generated images to compare.",
)
@click.option("--k", type=click.IntRange(1, 1000), default=None, help="k [default: the space's k, else 10].")
@click.option(
    "--ef-search",
    type=click.IntRange(1, matcher.MAX_EF_SEARCH),
    default=None,
    help="ef_search to test (HNSW) [default: max(100, 2k)].",
)
@click.option(
    "--probes",
    type=click.IntRange(1, matcher.MAX_PROBES),
    default=None,
    help="probes to test (IVFFlat) [default: sqrt(lists)].",
)
@format_option
@pass_app
def recall(
    app: App, space_name: str, sample: int, k: int | None, ef_search: int | None, probes: int | None, fmt: str
) -> None:
    """Recall@k of the space's index against exact search on a sample of generated images.

    Example: gmv match recall --space effnet --sample 200
    """
    with app.connect() as conn:
        space = get_space(conn, space_name)
        result = matcher.recall(conn, space, k=k, ef_search=ef_search, sample=sample, probes=probes)
    emit(
        [
            (
                result.space,
                result.k,
                result.ef_search,
                result.sample,
                round(result.recall, 4),
                round(result.worst, 4),
                round(result.index_seconds, 3),
                round(result.exact_seconds, 3),
                result.probes,
            )
        ],
        ["space", "k", "ef_search", "sample", "recall", "worst", "index_s", "exact_s", "probes"],
        fmt,
    )
