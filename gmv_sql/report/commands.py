"""`gmv report …`: royalty statements, owners, top training images, evidence for generated images."""

from __future__ import annotations

from pathlib import Path

import click

from gmv_sql.app import App, pass_app
from gmv_sql.errors import InputError, NotFoundError
from gmv_sql.output import emit, format_option, read
from gmv_sql.report import royalties as royalty
from gmv_sql.report.common import Target, ineligible_matches, resolve_target, stale_credit_note
from gmv_sql.resources import query

space_option = click.option("--space", metavar="NAME", help="Embedding space [default: the only one].")
scheme_option = click.option("--scheme", metavar="NAME", help="Valuation scheme [default: rank_linear].")


def _warn_if_ineligible(conn, target: Target) -> None:
    n = ineligible_matches(conn, target)
    if n:
        click.echo(
            f"note: {n:,} matches in space {target.space!r} point at training images opted out or under excluded "
            f"licences since matching; run `gmv match --space {target.space}` to re-match them",
            err=True,
        )


def _warn_if_stale(conn, target: Target) -> None:
    _warn_if_ineligible(conn, target)
    note = stale_credit_note(conn, target)
    if note:
        click.echo(note, err=True)


@click.group()
def report() -> None:
    """Read valuation results: royalties, owners, top images, evidence."""


@report.command()
@click.option(
    "--period", required=True, metavar="YYYY-MM", help="Month (UTC) whose generated images are paid for."
)
@click.option("--pool", required=True, metavar="AMOUNT", help="Money to split, e.g. 1250.00.")
@click.option("--currency", default="EUR", show_default=True, help="Three-letter currency code.")
@space_option
@scheme_option
@format_option
@pass_app
def royalties(
    app: App, period: str, pool: str, currency: str, space: str | None, scheme: str | None, fmt: str
) -> None:
    """Record a month's revenue pool, refresh credit and print each owner's share in cents.

    Credit of images under royalty-bearing licences is paid pro rata; the amounts add up exactly
    to the pool. Credit under other licences is shown as unpaid_credit. Running it again for the
    same month, space and scheme replaces the pool.

    Example: gmv report royalties --period 2026-01 --pool 1250.00 --currency EUR
    """
    month = royalty.parse_period(period)
    amount = royalty.parse_pool(pool)
    code = royalty.parse_currency(currency)
    with app.connect() as conn:
        target = resolve_target(conn, space, scheme)
        _warn_if_ineligible(conn, target)
        statement = royalty.record_and_split(conn, target, month, amount, code)
    emit(statement.rows, statement.table.columns, fmt)
    if not statement.rows:
        click.echo(
            f"note: no generated image created in {statement.period} is matched in space {target.space!r}: "
            "nothing to pay (pool recorded)",
            err=True,
        )
    elif statement.paid != statement.pool:
        click.echo(
            f"note: no royalty-bearing credit in {statement.period}: {statement.paid} of {statement.pool} "
            f"{statement.currency} paid",
            err=True,
        )
    else:
        click.echo(
            f"{statement.period} {target.space}/{target.scheme}: {statement.pool} {statement.currency} split over "
            f"{sum(1 for r in statement.rows if r.amount > 0)} owners",
            err=True,
        )


@report.command()
@space_option
@scheme_option
@format_option
@pass_app
def owners(app: App, space: str | None, scheme: str | None, fmt: str) -> None:
    """Value per owner (all months), largest first.

    Example: gmv report owners --format csv
    """
    with app.connect() as conn:
        target = resolve_target(conn, space, scheme)
        _warn_if_stale(conn, target)
        values = read(conn, query("report", "owners"), {"space": target.space, "scheme": target.scheme})
    emit(values.rows, values.columns, fmt)


@report.command()
@click.option("--limit", type=click.IntRange(min=1), default=20, show_default=True, help="How many images.")
@space_option
@scheme_option
@format_option
@pass_app
def top(app: App, limit: int, space: str | None, scheme: str | None, fmt: str) -> None:
    """The most valuable training images.

    Example: gmv report top --limit 10
    """
    with app.connect() as conn:
        target = resolve_target(conn, space, scheme)
        _warn_if_stale(conn, target)
        images = read(
            conn, query("report", "top"), {"space": target.space, "scheme": target.scheme, "limit": limit}
        )
    emit(images.rows, images.columns, fmt)


@report.command()
@click.argument("generated_ids", nargs=-1, type=click.IntRange(min=1), metavar="[GENERATED_ID]...")
@click.option(
    "--html", "html_path", type=click.Path(dir_okay=False, path_type=Path), help="Write an HTML page instead."
)
@click.option(
    "--sample",
    type=click.IntRange(min=1),
    default=12,
    show_default=True,
    help="With --html and no ids: how many generated images to show.",
)
@space_option
@scheme_option
@format_option
@pass_app
def evidence(
    app: App,
    generated_ids: tuple[int, ...],
    html_path: Path | None,
    sample: int,
    space: str | None,
    scheme: str | None,
    fmt: str,
) -> None:
    """A generated image's top-k training images with owner, licence, distance and weight.

    Example: gmv report evidence 42    (or: gmv report evidence --html evidence.html)
    """
    if not generated_ids and html_path is None:
        raise InputError(
            "give a GENERATED_ID (see `gmv report top` or report.attribution), or --html FILE for a sample"
        )
    with app.connect() as conn:
        target = resolve_target(conn, space, scheme)
        if generated_ids:
            known = {
                r[0] for r in conn.execute(query("report", "generated_known"), {"ids": list(generated_ids)})
            }
            unknown = [g for g in generated_ids if g not in known]
            if unknown:
                raise NotFoundError(
                    f"no generated image with id {unknown[0]}; ids are in gmv.generated_image / report.attribution"
                )
        if html_path is not None:
            from gmv_sql.report.evidence_html import write_evidence_page  # helper module with heavier imports

            written = write_evidence_page(
                conn,
                html_path,
                space=target.space,
                scheme=target.scheme,
                generated_ids=list(generated_ids) or None,
                sample=sample,
            )
            click.echo(str(written))
            return
        found = read(
            conn,
            query("report", "evidence"),
            {"space": target.space, "scheme": target.scheme, "ids": list(generated_ids)},
        )
    unmatched = sorted(set(generated_ids) - {r.generated_id for r in found.rows})
    if unmatched:
        raise NotFoundError(
            f"generated image {unmatched[0]} has no matches in space {target.space!r}; run `gmv match --space {target.space}`"
        )
    emit(found.rows, found.columns, fmt)
