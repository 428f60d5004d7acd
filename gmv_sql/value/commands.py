"""`gmv value …`: the valuation stage (GMValuator credit per training image, as materialized views)."""

from __future__ import annotations

import click

from gmv_sql.app import App, pass_app
from gmv_sql.output import emit, format_option, read
from gmv_sql.resources import query
from gmv_sql.value.refresh import refresh as refresh_views


@click.group()
def value() -> None:
    """Compute training-image credit from matches (materialized views)."""


@value.command()
@format_option
@pass_app
def refresh(app: App, fmt: str) -> None:
    """Bring the credit tables up to date with gmv.match, recomputing only what changed; readers never wait.

    Only the (space, month) slices touched since the last refresh are recomputed (new or deleted
    matches, changed quality or dates, a new temperature), then the totals they touch. Prints the
    total credit per space and scheme: it equals the sum of generated images' quality.

    Example: gmv value refresh
    """
    with app.connect() as conn:
        result = refresh_views(conn)
        click.echo(f"refreshed: {result.describe()}", err=True)
        summary = read(conn, query("value", "credit_summary"))
    emit(summary.rows, summary.columns, fmt)


def _show_settings(conn, space: str | None, fmt: str) -> None:
    settings = read(conn, query("calibration", "settings"), {"space": space})
    emit(settings.rows, settings.columns, fmt)


@value.command()
@click.option("--space", "space_name", metavar="NAME", help="Embedding space [default: the only one].")
@click.option("--scheme", metavar="NAME", help="A softmax_calibrated scheme [default: all of them].")
@format_option
@pass_app
def calibrate(app: App, space_name: str | None, scheme: str | None, fmt: str) -> None:
    """Compute the space's softmax temperature from its own match distances, then refresh.

    T = factor * a statistic of the stored matches (the rule, docs/VALUATION.md); the rule and the
    statistics are stored with it (report.scheme_setting). Replaces an explicit temperature.

    Example: gmv value calibrate --space effnet
    """
    from gmv_sql.spaces import get_space
    from gmv_sql.value.calibration import calibrate as calibrate_space

    with app.connect() as conn:
        space = get_space(conn, space_name)
        # One transaction: the credit never disagrees with the stored temperature.
        with conn.transaction():
            calibrations = calibrate_space(conn, space, scheme)
            refresh_views(conn)
        for c in calibrations:
            click.echo(
                f"space {c.space!r}, scheme {c.scheme!r}: temperature {c.temperature:.6g} ({c.rule})",
                err=True,
            )
        _show_settings(conn, space.name, fmt)


@value.command("set-temperature")
@click.argument("temperature", metavar="T")
@click.option("--space", "space_name", metavar="NAME", help="Embedding space [default: the only one].")
@click.option("--scheme", metavar="NAME", help="A softmax_calibrated scheme [default: all of them].")
@format_option
@pass_app
def set_temperature(app: App, temperature: str, space_name: str | None, scheme: str | None, fmt: str) -> None:
    """Fix the softmax temperature of a space explicitly (a finite number > 0), then refresh.

    `gmv value calibrate` goes back to the rule's temperature.

    Example: gmv value set-temperature 0.02 --space effnet
    """
    from gmv_sql.spaces import get_space
    from gmv_sql.value.calibration import parse_temperature
    from gmv_sql.value.calibration import set_temperature as set_space_temperature

    value_t = parse_temperature(temperature)
    with app.connect() as conn:
        space = get_space(conn, space_name)
        with conn.transaction():  # as in calibrate: temperature and credit change together
            calibrations = set_space_temperature(conn, space, value_t, scheme)
            refresh_views(conn)
        for c in calibrations:
            click.echo(
                f"space {c.space!r}, scheme {c.scheme!r}: temperature {c.temperature:.6g} (explicit)",
                err=True,
            )
        _show_settings(conn, space.name, fmt)


@value.command("default-scheme")
@click.argument("scheme", metavar="[SCHEME]", required=False)
@click.option(
    "--space",
    "space_name",
    metavar="NAME",
    help="Set this space's default [default: spaces created from now on].",
)
@format_option
@pass_app
def default_scheme(app: App, scheme: str | None, space_name: str | None, fmt: str) -> None:
    """Show the schemes and temperatures of every space, or set the scheme reports use by default.

    With --space, that space's default changes; without, the default of spaces created from now on
    (existing spaces keep theirs). Without SCHEME, prints report.scheme_setting.

    Examples: gmv value default-scheme;  gmv value default-scheme softmax_calibrated --space effnet
    """
    from gmv_sql.errors import NotFoundError
    from gmv_sql.spaces import get_space

    with app.connect() as conn:
        if scheme is not None:
            row = conn.execute(query("calibration", "scheme"), {"name": scheme}).fetchone()
            if row is None:
                known = ", ".join(r[0] for r in conn.execute(query("calibration", "scheme_names")))
                raise NotFoundError(f"no valuation scheme {scheme!r} (known: {known}); pick one of those")
            with conn.transaction():
                if space_name is not None:
                    space = get_space(conn, space_name)
                    conn.execute(
                        query("calibration", "set_space_default"),
                        {"space_id": space.space_id, "scheme_id": row[0]},
                    )
                    click.echo(f"space {space.name!r}: default scheme {scheme!r}", err=True)
                else:
                    conn.execute(query("calibration", "pin_space_defaults"))
                    conn.execute(query("calibration", "clear_global_default"))
                    conn.execute(query("calibration", "set_global_default"), {"scheme_id": row[0]})
                    click.echo(f"spaces created from now on: default scheme {scheme!r}", err=True)
        elif space_name is not None:
            get_space(conn, space_name)
        _show_settings(conn, space_name, fmt)
