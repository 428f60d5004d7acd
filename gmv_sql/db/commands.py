"""`gmv db …`: set up, inspect, expose and stop the database."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from urllib.parse import quote

import click
from psycopg.conninfo import conninfo_to_dict

from gmv_sql.app import App, pass_app
from gmv_sql.db import access, catalog, embedded
from gmv_sql.db.connect import connect, mask_password, pgvector_versions
from gmv_sql.errors import ConfigError, DatabaseError
from gmv_sql.output import emit, format_option
from gmv_sql.resources import query

TCP_LOOPBACK = "127.0.0.1"


@click.group()
def db() -> None:
    """Set up and inspect the database (embedded or external)."""


@db.command()
@pass_app
def up(app: App) -> None:
    """Create or migrate the gmv schema to the newest version, and give gmv_reader its password.

    The reader's password is GMV_READER_PASSWORD when set, else the one saved earlier, else a new
    one; it is saved in GMV_HOME/secrets/ (mode 0600) and printed only by --show-password options.

    Example: GMV_READER_PASSWORD=… gmv db up
    """
    from gmv_sql.db.migrate import current_revision, head_revision, upgrade

    upgrade(app.url)
    with connect(app.url, register_vector=False) as conn:
        revision = current_revision(conn)
        click.echo(f"database {mask_password(app.url)} is at migration {revision} (head {head_revision()})")
        try:
            path, how = access.ensure_reader_password(conn, app.url, app.embedded)
        except DatabaseError as exc:
            click.echo(f"warning: {exc}", err=True)
        else:
            click.echo(f"{access.READER_ROLE} (read-only, for BI tools): {how}, saved in {path} (mode 0600)")


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
            rows += _index_rows(conn)
    emit(rows, ("item", "value"), fmt)


def _index_rows(conn) -> list[tuple[str, object]]:
    """One row per space: its training index, and STALE with the rebuild command when it is."""
    from gmv_sql.embed import store
    from gmv_sql.index.builder import stale_reason
    from gmv_sql.spaces import list_spaces

    out: list[tuple[str, object]] = []
    for space in list_spaces(conn):
        text = space.describe_index()
        reason = stale_reason(space, store.count_vectors(conn, space))
        if reason:
            text += f"; STALE: {reason}"
        out.append((f"index {space.name}", text))
    return out


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
    empties the credit tables. The schema (at its migration) and the valuation schemes stay. Asks
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


def _reader_url(app: App, show_password: bool) -> str:
    value = with_user(app.url, access.READER_ROLE)
    password, path = access.reader_password(app.url, app.embedded)
    if password is None and app.embedded and show_password:
        with connect(app.url, register_vector=False) as conn:
            access.ensure_reader_password(conn, app.url, app.embedded)
        password, path = access.reader_password(app.url, app.embedded)
    if password is None:
        if show_password:
            raise ConfigError(
                f"no password is known for {access.READER_ROLE} on {mask_password(app.url)} (no "
                f"{access.READER_PASSWORD_ENV}, no {path}); run `gmv db up` or `gmv db reader-password --rotate`"
            )
        return value
    return access.url_with_password(value, password)


@db.command()
@click.option("--show-password", is_flag=True, help="Print the password instead of ***.")
@click.option("--reader", is_flag=True, help="The URL of the read-only role gmv_reader (for BI tools).")
@pass_app
def url(app: App, show_password: bool, reader: bool) -> None:
    """Print a URL that psql and BI tools accept (passwords masked unless --show-password).

    Examples: psql "$(gmv db url --show-password)" -c 'select * from report.owner_value'
              gmv db url --reader --show-password
    """
    value = _reader_url(app, show_password) if reader else app.url
    click.echo(value if show_password else mask_password(value))


@db.command("reader-password")
@click.option(
    "--rotate", is_flag=True, help="Generate a new password, set it and save it (the old one stops working)."
)
@click.option(
    "--show-password", is_flag=True, help="Print the password (it is otherwise only in its 0600 file)."
)
@pass_app
def reader_password(app: App, rotate: bool, show_password: bool) -> None:
    """Show where gmv_reader's password is kept, or change it with --rotate.

    Example: gmv db reader-password --rotate
    """
    if rotate and os.environ.get(access.READER_PASSWORD_ENV):
        raise ConfigError(
            f"{access.READER_PASSWORD_ENV} is set, so gmv would keep using it; change it there and run "
            f"`gmv db up`, or unset it to --rotate"
        )
    password, path = access.reader_password(app.url, app.embedded)
    if rotate or (password is None and app.embedded):
        with app.connect() as conn:
            path, how = access.ensure_reader_password(conn, app.url, app.embedded, rotate=rotate)
        password, _ = access.reader_password(app.url, app.embedded)
        click.echo(f"{access.READER_ROLE}: {how}, saved in {path} (mode 0600)")
    elif password is None:
        raise ConfigError(
            f"no password is known for {access.READER_ROLE} on {mask_password(app.url)}; "
            "run `gmv db up` or `gmv db reader-password --rotate`"
        )
    else:
        where = access.READER_PASSWORD_ENV if os.environ.get(access.READER_PASSWORD_ENV) else str(path)
        click.echo(f"{access.READER_ROLE}: password in {where}")
    if show_password:
        click.echo(password)


def _superuser_refusal(app: App, admin: bool):
    def refusal(user: str) -> str | None:
        if admin:
            return None
        try:
            with connect(app.url, register_vector=False) as conn:
                superuser = conn.execute(query("access", "is_superuser"), {"role": user}).fetchone()[0]
        except DatabaseError:
            return "gmv db serve could not check the role; see the terminal running gmv db serve"
        if superuser:
            return (
                f'gmv db serve refuses superuser "{user}" over TCP; log in as {access.READER_ROLE}, '
                "or restart it with gmv db serve --admin (then the admin logs in with its own password)"
            )
        return None

    return refusal


@db.command()
@click.option(
    "--host",
    default=TCP_LOOPBACK,
    show_default=True,
    help="Address to listen on; anything but loopback exposes the port to other machines (a warning says so).",
)
@click.option(
    "--port",
    default=5433,
    show_default=True,
    type=click.IntRange(0, 65535),
    help="TCP port (0: any free one).",
)
@click.option(
    "--admin",
    is_flag=True,
    help="Also let superusers log in over TCP (embedded server: with the admin password in GMV_HOME/secrets).",
)
@pass_app
def serve(app: App, host: str, port: int, admin: bool) -> None:
    """Serve the database on a TCP port for Metabase, Superset, DBeaver… until Ctrl-C.

    Every TCP login needs a password: BI tools log in as gmv_reader (password: gmv db url --reader
    --show-password). Superusers are refused unless --admin. Binds 127.0.0.1 unless --host says otherwise.

    Example: gmv db serve --port 5433   then connect to postgresql://gmv_reader:PASSWORD@127.0.0.1:5433/gmv
    """
    from gmv_sql.db.serve import backend_address, is_loopback
    from gmv_sql.db.serve import serve as run_server

    app.ensure_schema()
    if app.embedded and embedded.tcp_address() is None:
        click.echo("restarting the embedded server to add its password-only TCP listener", err=True)
        embedded.restart()
        app._url = None
    dbname = conninfo_to_dict(app.url).get("dbname", embedded.DATABASE_NAME)
    admin_path = None
    if app.embedded:
        upstream = ("tcp", "{}:{}".format(*embedded.tcp_address()))
        with connect(app.url, register_vector=False) as conn:
            reader_path, _ = access.ensure_reader_password(conn, app.url, app.embedded)
            if admin:
                password, admin_path = access.admin_password(app.url, app.embedded)
                access.set_role_password(conn, access.ADMIN_ROLE, password)
    else:
        upstream = backend_address(app.url)
        _, reader_path = access.reader_password(app.url, app.embedded)
    if not is_loopback(host):
        click.echo(
            f"warning: serving on {host}, not loopback: other machines that reach it can try passwords, and the "
            "traffic is not encrypted; use --host 127.0.0.1 unless that is what you want",
            err=True,
        )
    shown_host = f"[{host}]" if ":" in host else host

    def ready(bound_port: int) -> None:
        where = f"{shown_host}:{bound_port}/{dbname}"
        click.echo(f"serving {mask_password(app.url)} on {host}:{bound_port} (Ctrl-C to stop)")
        click.echo(
            f"BI tools (read-only): postgresql://{access.READER_ROLE}:***@{where}  "
            f"(password in {reader_path}; gmv db url --reader --show-password prints it)"
        )
        if admin:
            saved = f"password in {admin_path}" if admin_path else "its own password"
            click.echo(f"admin:                postgresql://{access.ADMIN_ROLE}:***@{where}  ({saved})")
        else:
            click.echo("admin:                refused over TCP (gmv db serve --admin allows it)")

    try:
        run_server(upstream, host, port, ready, _superuser_refusal(app, admin))
    except OSError as exc:
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror}; pick another --port") from exc
    finally:
        if admin and app.embedded:
            # The admin is reachable over TCP only while `serve --admin` runs.
            with connect(app.url, register_vector=False) as conn:
                access.set_role_password(conn, access.ADMIN_ROLE, None)
    click.echo("stopped serving")


@db.command("grant-owner")
@click.argument("name")
@click.option("--role", help="Login role name (default: gmv_owner_<name>_<owner id>).")
@click.option("--show-password", is_flag=True, help="Print the login's URL with its password.")
@pass_app
def grant_owner(app: App, name: str, role: str | None, show_password: bool) -> None:
    """Create a login role for owner NAME that sees only that owner's rows (schema owner_report).

    The role reads owner_report.training_value, owner_value, attribution, royalty_statement (every report
    view with an owner column), filtered to NAME's rows, and nothing else. Its generated password is
    saved in GMV_HOME/secrets/ (mode 0600). Running it again keeps the role and its password.

    Example: gmv db grant-owner "Alice Studio"   then gmv db serve, and Alice logs in with that role
    """
    from gmv_sql.db.owners import grant_owner as run_grant

    with app.connect() as conn:
        login = run_grant(conn, app.url, app.embedded, name, role)
    verb = "created" if login.created else "kept"
    click.echo(
        f"owner {login.owner!r}: {verb} login role {login.role} (password in {login.password_file}, mode 0600); "
        f"it reads {', '.join('owner_report.' + v for v in login.views)}"
    )
    if show_password:
        password = access.read_password(login.password_file)
        click.echo(access.url_with_password(with_user(app.url, login.role), password))


def _size(n: int) -> str:
    for unit in ("bytes", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:,} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


@db.command()
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@pass_app
def backup(app: App, file: Path) -> None:
    """Back up the whole database into FILE (pg_dump custom format; prints its size and sha256).

    Rows and vectors, index definitions, views, comments, the migration revision and grants are in it;
    restore it with gmv db restore.

    Example: gmv db backup gmv-2026-12.dump
    """
    from gmv_sql.db.backup import backup as run_backup

    done = run_backup(app.url, file)
    click.echo(f"backed up {mask_password(app.url)} to {done.path}: {_size(done.size)}, sha256 {done.sha256}")


@db.command()
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--force", is_flag=True, help="Restore into a database that is not empty (drops gmv's schemas first)."
)
@pass_app
def restore(app: App, file: Path, force: bool) -> None:
    """Restore a gmv db backup FILE into an empty database, in one transaction.

    Refuses a database that holds anything unless --force. Creates the gmv_reader and gmv_owners roles
    when this server lacks them; owners' logins need gmv db grant-owner again on another server.

    Example: GMV_HOME=~/.gmv-restored gmv db restore gmv-2026-12.dump
    """
    from gmv_sql.db.backup import restore as run_restore

    missing = run_restore(app.url, file, force=force)
    click.echo(f"restored {file} into {mask_password(app.url)}")
    if missing:
        click.echo(
            f"owners whose login roles this server lacks: {', '.join(missing)}; run gmv db grant-owner NAME for each"
        )


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
