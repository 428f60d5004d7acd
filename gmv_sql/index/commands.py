"""`gmv index build`: choose and (re)build the training index of an embedding space."""

from __future__ import annotations

import click

from gmv_sql.app import App, pass_app
from gmv_sql.embed import store
from gmv_sql.index import builder
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
