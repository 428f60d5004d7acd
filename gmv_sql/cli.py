"""The `gmv` command line. Each pipeline stage defines its commands in <stage>/commands.py; this
file assembles them and turns every GmvError into a one-line message and exit status 1."""

from __future__ import annotations

import sys

import click

from gmv_sql import __version__
from gmv_sql.app import App
from gmv_sql.audit.commands import audit
from gmv_sql.db.commands import db
from gmv_sql.demo.commands import demo
from gmv_sql.embed.commands import embed
from gmv_sql.errors import GmvError
from gmv_sql.index.commands import index
from gmv_sql.ingest.commands import ingest
from gmv_sql.ledger.commands import statement
from gmv_sql.match.commands import match
from gmv_sql.quality.commands import consistency, near_copies, quality, space
from gmv_sql.report.commands import report
from gmv_sql.rights.commands import license_group, rights_group
from gmv_sql.value.commands import value


class GmvGroup(click.Group):
    """A click group that reports domain errors as one line instead of a traceback."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except GmvError as exc:
            raise click.ClickException(str(exc)) from exc
        except KeyboardInterrupt:
            click.echo(
                "Interrupted: work done so far is committed; run the same command again to finish.", err=True
            )
            ctx.exit(130)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(self.commands)  # the order they were added: the pipeline's order


@click.group(cls=GmvGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option(
    "--database-url",
    metavar="URL",
    help="PostgreSQL URL (default: $GMV_DATABASE_URL, then $DATABASE_URL, then the embedded server in $GMV_HOME).",
)
@click.version_option(__version__, prog_name="gmv")
@click.pass_context
def cli(ctx: click.Context, database_url: str | None) -> None:
    """Value the training data of generative image models (GMValuator) in PostgreSQL + pgvector.

    \b
    Pipeline:  ingest -> embed -> match -> value -> report
    Try:       gmv demo --quick
    """
    ctx.obj = App(cli_database_url=database_url)


for command in (
    db,
    ingest,
    embed,
    index,
    match,
    value,
    report,
    audit,
    demo,
    rights_group,
    license_group,
):  # the pipeline's order in --help
    cli.add_command(command)
cli.add_command(statement)  # the ledger: issued royalty statements
cli.add_command(space)
cli.add_command(quality)
report.add_command(near_copies)
audit.add_command(consistency)


def main() -> None:
    cli(prog_name="gmv")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
