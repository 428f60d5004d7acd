"""`gmv index build`: choose and (re)build the training index of an embedding space."""

from __future__ import annotations

import click

from gmv_sql.app import App, pass_app
from gmv_sql.embed import store
from gmv_sql.index import advise as advisor
from gmv_sql.index import builder
from gmv_sql.match import tuning
from gmv_sql.output import emit, format_option
from gmv_sql.spaces import get_space


@click.group("index")
def index() -> None:
    """The training index of an embedding space: HNSW or IVFFlat, on halfvec or full precision."""


@index.command()
@click.option("--space", "space_name", required=True, metavar="NAME", help="Embedding space.")
@click.option(
    "--kind",
    type=click.Choice(["hnsw", "ivfflat"]),
    help="Index kind [default: the space's]. IVFFlat is built from the rows present: build it after loading.",
)
@click.option(
    "--precision",
    type=click.Choice(["half", "full"]),
    help="half: index vec::halfvec(dim) (half the size; the table keeps full precision); "
    "full: the stored column [default: the space's].",
)
@click.option("--m", type=click.IntRange(2, 100), help="HNSW links per node [default: the space's, 16].")
@click.option(
    "--ef-construction",
    type=click.IntRange(4, 1000),
    help="HNSW candidate list while building [default: the space's, 64].",
)
@click.option(
    "--lists",
    type=click.IntRange(1, store.IVFFLAT_MAX_LISTS),
    help="IVFFlat lists [default: rows / 1000 up to 1M rows, sqrt(rows) above].",
)
@pass_app
def build(
    app: App,
    space_name: str,
    kind: str | None,
    precision: str | None,
    m: int | None,
    ef_construction: int | None,
    lists: int | None,
) -> None:
    """Replace the space's training index (in one transaction; matching waits meanwhile).

    Rebuild an IVFFlat index when `gmv db status` or `gmv match` says it is stale.

    Example: gmv index build --space effnet --kind ivfflat
    """
    with app.connect() as conn:
        space = get_space(conn, space_name)
        click.echo(
            f"building the index of space {space.name!r} ({store.count_vectors(conn, space):,} training vectors)…"
        )
        result = builder.build(
            conn, space, kind=kind, precision=precision, m=m, ef_construction=ef_construction, lists=lists
        )
    click.echo(result.summary())
    click.echo(f"next: gmv match --space {result.space.name}")


@index.command()
@click.option("--space", "space_name", required=True, metavar="NAME", help="Embedding space.")
@click.option(
    "--target-recall",
    type=click.FloatRange(0, 1, min_open=True),
    default=tuning.DEFAULT_TARGET_RECALL,
    show_default=True,
    help="Recall@k each kind must reach; its rate is measured at the cheapest setting reaching it.",
)
@click.option(
    "--rows",
    type=click.IntRange(min=1),
    default=advisor.DEFAULT_ROWS,
    show_default=True,
    help="Training vectors sampled to build both kinds on.",
)
@click.option(
    "--queries",
    type=click.IntRange(min=1),
    default=advisor.DEFAULT_QUERIES,
    show_default=True,
    help="Generated vectors sampled as queries.",
)
@format_option
@pass_app
def advise(app: App, space_name: str, target_recall: float, rows: int, queries: int, fmt: str) -> None:
    """Build HNSW and IVFFlat on a sample of the space and recommend the faster at the target recall.

    Nothing is written: the measurement runs in a transaction that is rolled back.

    Example: gmv index advise --space effnet --rows 100000
    """
    with app.connect() as conn:
        space = get_space(conn, space_name)
        advice = advisor.advise(
            conn,
            space,
            target=target_recall,
            rows=rows,
            queries=queries,
            progress=lambda line: click.echo(line, err=True),
        )
    emit(
        [
            (
                c.kind,
                c.describe,
                f"{c.setting}={c.value}",
                None if c.recall is None else round(c.recall, 4),
                c.reached,
                round(c.rate, 1),
                round(c.build_seconds, 2),
                round(c.size_mb, 2),
            )
            for c in advice.candidates
        ],
        ["kind", "index", "setting", "recall", "reached", "per_s", "build_s", "size_mb"],
        fmt,
    )
    best = advice.best
    if best is not None:
        others = [c for c in advice.candidates if c is not best]
        versus = (
            f" ({best.rate / others[0].rate:.1f}x the rate of {others[0].kind})"
            if others and others[0].rate
            else ""
        )
        click.echo(
            f"recommended for space {advice.space!r}: {best.kind}{versus}, measured on {advice.rows:,} of its "
            f"{advice.space_rows:,} training vectors and {advice.queries:,} generated; "
            f"apply with: gmv index build --space {advice.space} --kind {best.kind}",
            err=True,
        )
