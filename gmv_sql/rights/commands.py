"""`gmv rights …` (opt-outs of training images) and `gmv license …` (licence terms), without SQL."""

from __future__ import annotations

import click

from gmv_sql.app import App, pass_app
from gmv_sql.errors import InputError
from gmv_sql.output import emit, format_option, read
from gmv_sql.resources import query
from gmv_sql.rights import rights

_TARGETS = click.argument("targets", nargs=-1, metavar="TARGET...")
_OWNERS = click.option(
    "--owner",
    "owners",
    multiple=True,
    metavar="NAME",
    help="Every training image of this owner (repeatable).",
)


def _need_targets(targets: tuple[str, ...], owners: tuple[str, ...], command: str) -> None:
    if not targets and not owners:
        raise InputError(
            f"gmv rights {command} needs training images: give sha256s or paths, or --owner NAME"
        )


def _next_steps(result: rights.RightsResult) -> None:
    for space in result.spaces:
        click.echo(f"next: gmv match --space {space} && gmv value refresh")


@click.group("rights")
def rights_group() -> None:
    """Opt training images out of (or back into) matching and royalties; every change is logged.

    Example: gmv rights opt-out --owner "Ann Lee" --from 2026-03-01
    """


@rights_group.command("opt-out")
@_TARGETS
@_OWNERS
@click.option(
    "--from",
    "from_day",
    metavar="YYYY-MM-DD",
    help="Only generated images created on or after this day (UTC) lose the image; earlier ones keep its "
    "credit in their period [default: every generated image].",
)
@pass_app
def opt_out(app: App, targets: tuple[str, ...], owners: tuple[str, ...], from_day: str | None) -> None:
    """Opt training images out: the next gmv match re-matches the generated images they were matched to.

    TARGET is a training image's sha256, or the path of its file (hashed) or as ingested. Without
    --from the opt-out covers every generated image, past ones included (drafts change; issued
    statements never do). Logged in report.rights_change.

    Example: gmv rights opt-out 3f0a…e9 photos/cat.png --owner "Ann Lee" --from 2026-03-01
    """
    _need_targets(targets, owners, "opt-out")
    day = rights.parse_day(from_day)
    with app.connect() as conn:
        result = rights.opt_out(conn, targets, owners, from_day=day)
    scope = (
        f"for generated images created on or after {day.isoformat()}" if day else "for every generated image"
    )
    click.echo(
        f"opted out {result.images:,} training images {scope} ({result.changed:,} changed, "
        f"{result.images - result.changed:,} already so)"
    )
    for space, n in result.affected.items():
        click.echo(f"space {space!r}: {n:,} generated images will be re-matched without them")
    _next_steps(result)


@rights_group.command("opt-in")
@_TARGETS
@_OWNERS
@pass_app
def opt_in(app: App, targets: tuple[str, ...], owners: tuple[str, ...]) -> None:
    """Opt training images back in: at the next gmv match they compete again for every generated image.

    TARGET as for opt-out. Only the generated images whose top-k they would enter are re-matched.

    Example: gmv rights opt-in --owner "Ann Lee"
    """
    _need_targets(targets, owners, "opt-in")
    with app.connect() as conn:
        result = rights.opt_in(conn, targets, owners)
    click.echo(
        f"opted in {result.images:,} training images ({result.changed:,} changed, "
        f"{result.images - result.changed:,} were not opted out)"
    )
    _next_steps(result)


@rights_group.command("log")
@click.option("--owner", metavar="NAME", default=None, help="Only changes of this owner's images.")
@click.option("--limit", type=click.IntRange(min=1), default=100, show_default=True, help="Newest N changes.")
@format_option
@pass_app
def log(app: App, owner: str | None, limit: int, fmt: str) -> None:
    """The rights log, newest first: who changed which opt-out or licence term, when, before and after.

    The same rows as the view report.rights_change.

    Example: gmv rights log --owner "Ann Lee" --format csv
    """
    with app.connect() as conn:
        rows = read(conn, query("rights", "log"), {"owner": owner, "limit": limit})
    emit(rows.rows, rows.columns, fmt)


@click.group("license")
def license_group() -> None:
    """Licence terms: royalty-bearing or not, excluded from matching or not, URL; every change is logged.

    Example: gmv license set cc-by-nc --no-royalty-bearing
    """


@license_group.command("set")
@click.argument("name")
@click.option(
    "--royalty-bearing/--no-royalty-bearing",
    default=None,
    help="Whether credit of images under it is paid (not paid: shown as unpaid_credit).",
)
@click.option(
    "--excluded/--included",
    default=None,
    help="Excluded: its images are never matched (the next gmv match re-matches their generated images).",
)
@click.option("--url", metavar="URL", default=None, help="Where the licence text is ('' clears it).")
@format_option
@pass_app
def license_set(
    app: App, name: str, royalty_bearing: bool | None, excluded: bool | None, url: str | None, fmt: str
) -> None:
    """Change a licence's terms; options not given keep their value.

    Example: gmv license set cc-by-nc --no-royalty-bearing --url https://creativecommons.org/licenses/by-nc/4.0/
    """
    with app.connect() as conn:
        rights.set_license(conn, name, royalty_bearing=royalty_bearing, excluded=excluded, url=url)
        rows = read(conn, query("rights", "licenses"), {"name": name})
        spaces = [r[0] for r in conn.execute(query("rights", "matched_spaces"))]
    emit(rows.rows, rows.columns, fmt)
    if excluded is not None:
        for space in spaces:
            click.echo(f"next: gmv match --space {space} && gmv value refresh", err=True)


@license_group.command("list")
@format_option
@pass_app
def license_list(app: App, fmt: str) -> None:
    """Every licence with its terms and number of training images.

    Example: gmv license list --format json
    """
    with app.connect() as conn:
        rows = read(conn, query("rights", "licenses"), {"name": None})
    emit(rows.rows, rows.columns, fmt)
