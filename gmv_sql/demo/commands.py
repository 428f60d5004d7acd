"""`gmv demo`: the whole pipeline on real images, offline, in a few minutes on two CPU cores.

Real handwritten digits are split into members and held-out non-members; a small class-conditional
DDPM is trained on the members only and generates new digits; then the pipeline runs through the
very commands a user types, in-process on a demo database. It ends with GMValuator's membership
test (arXiv 2304.10701, Table 1): members should be valued well above non-members.

This module is the command line only: the steps are in gmv_sql/demo/steps.py, the generator run in
gmv_sql/demo/generator.py, the data in gmv_sql/demo/data.py.
"""

from __future__ import annotations

from pathlib import Path

import click

from gmv_sql.app import App, pass_app
from gmv_sql.db.connect import mask_password


@click.command()
@click.option(
    "--quick",
    is_flag=True,
    help="A smaller run with the same steps (fewer generated images, shorter training).",
)
@click.option(
    "--output",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("gmv-demo"),
    show_default=True,
    help="Folder for images, manifests, the evidence page, plots and the royalty statement.",
)
@click.option(
    "--seed",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Seed of the split, owners and generator.",
)
@click.option(
    "--reset",
    is_flag=True,
    help="With --database-url/GMV_DATABASE_URL: delete all gmv data in that database first (as gmv db reset).",
)
@pass_app
@click.pass_context
def demo(ctx: click.Context, app: App, quick: bool, output: Path, seed: int, reset: bool) -> None:
    """Run the whole pipeline on real handwritten digits, offline, and print what it found.

    Trains a small diffusion model on half of the digits it picks (members), generates new digits,
    values every training image by how much the generated ones resemble it (ingest, embed, match,
    value, royalties) and checks that members are valued above the held-out half. Without a
    database URL it uses a fresh `gmv_demo` database on the embedded server.

    Example: gmv demo --quick --output /tmp/gmv-demo
    """
    from gmv_sql.demo.steps import run_demo  # numpy and the demo's data: only when it runs

    gmv = ctx.find_root().command  # the `gmv` group: the steps run its commands in-process
    result = run_demo(gmv, app, quick=quick, output=output, seed=seed, reset=reset)
    click.echo("\nFiles written:")
    width = max(len(name) for name in result.files)
    for name, path in result.files.items():
        click.echo(f"  {name.ljust(width)}  {path}")
    timing = ", ".join(f"{name} {seconds:.0f}s" for name, seconds in result.timings.items())
    click.echo(f"\nTime: {timing}")
    click.echo(f'Explore: gmv --database-url "{mask_password(result.database_url)}" report owners')
