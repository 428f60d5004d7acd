"""`gmv db …`: set up, inspect, expose and stop the database."""

from __future__ import annotations

import sys
from urllib.parse import quote

import click
from psycopg.conninfo import conninfo_to_dict

from gmv_sql.app import App, pass_app
from gmv_sql.db import catalog, embedded
from gmv_sql.db.connect import connect, mask_password, pgvector_versions
from gmv_sql.errors import ConfigError
from gmv_sql.output import emit, format_option
from gmv_sql.resources import query


@click.group()
def db() -> None:
    """Set up and inspect the database (embedded or external)."""


@db.command()
@pass_app
def up(app: App) -> None:
    """Create or migrate the gmv schema to the newest version.

    Example: gmv db up
    """
    from gmv_sql.db.migrate import current_revision, head_revision, upgrade

    upgrade(app.url)
    with connect(app.url, register_vector=False) as conn:
        revision = current_revision(conn)
    click.echo(f"database {mask_password(app.url)} is at migration {revision} (head {head_revision()})")


@db.command()
@format_option
@pass_app
def status(app: App, fmt: str) -> None:
    """Show server and pgvector versions, the migration revision and row counts.

    Example: gmv db status --format json
    """
    from gmv_sql.db.migrate import current_revision, head_revision

    rows: list[tuple[str, object]] = []
    with connect(app.url, register_vector=False) as conn:
        pg_version = conn.execute(query("db", "server_version")).fetchone()[0]
        installed, available = pgvector_versions(conn)
        revision = current_revision(conn)
        rows += [
            ("database", mask_password(app.url)),
            ("server", "embedded" if app.embedded else "external"),
            ("postgresql", pg_version),
            ("pgvector", installed or f"not installed (available: {available or 'no'})"),
            ("migration", revision or "none (run gmv db up)"),
            ("migration head", head_revision()),
        ]
        if app.embedded:
            rows.append(("data directory", str(embedded.pgdata_dir())))
        if revision is not None:
            rows += [(f"rows gmv.{table}", n) for table, n in catalog.data_row_counts(conn).items()]
            rows += [
                (f"vectors {v.space} ({v.kind})", catalog.count_rows(conn, v.table))
                for v in catalog.vector_tables(conn)
            ]
            rows += [(f"space {name}", text) for name, text in _space_lines(conn)]
    emit(rows, ("item", "value"), fmt)


def _space_lines(conn) -> list[tuple[str, str]]:
    """Each embedding space's model, inference runtime and precision (spaces from before runtimes: torch fp32)."""
    from gmv_sql import spaces

    out = []
    for space in spaces.list_spaces(conn):
        runtime = space.preprocessing.get("runtime", "torch")
        precision = space.preprocessing.get("precision", "fp32")
        if space.model == "pixels" or space.model.startswith("imported:"):
            runtime, precision = "-", "-"
        out.append(
            (space.name, f"{space.model}, {space.dim}-d {space.storage}, runtime {runtime} {precision}")
        )
    return out


def _describe(rows: dict[str, int]) -> str:
    held = [f"{n:,} {table}" for table, n in rows.items() if n]
    return ", ".join(held) if held else "no rows"


@db.command()
@click.option("--yes", is_flag=True, help="Confirm: delete all gmv data in this database.")
@pass_app
def reset(app: App, yes: bool) -> None:
    """Delete all gmv data in this database: images, owners, licences, embeddings, matches, pools.

    In one transaction: drops every embedding space's vector tables, empties the data tables and
    refreshes the credit views. The schema (at its migration) and the valuation schemes stay. Asks
    for confirmation on a terminal; elsewhere it refuses without --yes.

    Example: gmv db reset --yes
    """
    from gmv_sql.db.reset import empty_database

    where = mask_password(app.url)
    with app.connect() as conn:
        if not yes:
            held = _describe(catalog.data_row_counts(conn))
            if not sys.stdin.isatty():
                raise ConfigError(
                    f"gmv db reset deletes all gmv data in {where} ({held}); add --yes to do it"
                )
            click.confirm(f"Delete all gmv data in {where} ({held})?", abort=True, err=True)
        result = empty_database(conn)
    if not result.deleted_anything:
        click.echo(f"{where} holds no gmv data: nothing deleted")
        return
    spaces = list(dict.fromkeys(v.space for v in result.vector_tables))
    vectors = (
        f" and the vector tables of space{'s' if len(spaces) > 1 else ''} {', '.join(spaces)}"
        if spaces
        else ""
    )
    click.echo(f"deleted all gmv data in {where} ({_describe(result.rows)}){vectors}")


def with_user(url: str, user: str) -> str:
    """The same server and database, logged in as another role (no password)."""
    params = conninfo_to_dict(url)
    dbname = params.get("dbname", embedded.DATABASE_NAME)
    host = params.get("host", "")
    port = params.get("port")
    if "@" in host:
        # libpq split an unescaped '@' of the password into the host: printing it would leak the rest.
        raise ConfigError(
            f"cannot read the host of {mask_password(url)}: write an '@' inside a password as %40"
        )
    if host.startswith("/"):
        query = f"?host={quote(host, safe='/')}" + (f"&port={port}" if port else "")
        return f"postgresql://{quote(user)}@/{quote(dbname)}{query}"
    return f"postgresql://{quote(user)}@{host}{':' + port if port else ''}/{quote(dbname)}"


@db.command()
@click.option("--show-password", is_flag=True, help="Print the password instead of ***.")
@click.option("--reader", is_flag=True, help="The URL of the read-only role gmv_reader (for BI tools).")
@pass_app
def url(app: App, show_password: bool, reader: bool) -> None:
    """Print a URL that psql and BI tools accept.

    Example: psql "$(gmv db url)" -c 'select * from report.owner_value'
    """
    value = app.url
    if reader:
        value = with_user(value, "gmv_reader")
    click.echo(value if show_password else mask_password(value))


@db.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on (keep it local).")
@click.option(
    "--port",
    default=5433,
    show_default=True,
    type=click.IntRange(0, 65535),
    help="TCP port (0: any free one).",
)
@pass_app
def serve(app: App, host: str, port: int) -> None:
    """Serve the database on a localhost TCP port for Metabase, Superset, DBeaver… until Ctrl-C.

    Example: gmv db serve --port 5433   then connect to postgresql://gmv_reader@127.0.0.1:5433/gmv
    """
    from gmv_sql.db.serve import serve as run_server

    app.ensure_schema()
    dbname = conninfo_to_dict(app.url).get("dbname", embedded.DATABASE_NAME)

    def ready(bound_port: int) -> None:
        click.echo(f"serving {mask_password(app.url)} on {host}:{bound_port} (Ctrl-C to stop)")
        click.echo(f"BI tools (read-only): postgresql://gmv_reader@{host}:{bound_port}/{dbname}")
        click.echo(f"admin:                postgresql://postgres@{host}:{bound_port}/{dbname}", err=False)

    try:
        run_server(app.url, host, port, ready)
    except OSError as exc:
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror}; pick another --port") from exc
    click.echo("stopped serving")


@db.command()
@pass_app
def stop(app: App) -> None:
    """Stop the embedded server (it otherwise keeps running in the background).

    Example: gmv db stop
    """
    if not app.embedded:
        raise ConfigError(
            "gmv db stop only stops the embedded server, and a database URL is set "
            "(--database-url / GMV_DATABASE_URL / DATABASE_URL); stop that server with its own tools"
        )
    if embedded.stop():
        click.echo(f"stopped the embedded server in {embedded.pgdata_dir()}")
    else:
        click.echo(f"the embedded server in {embedded.pgdata_dir()} was not running")
