"""`gmv report …`: royalty statements, owners, top training images, evidence for generated images."""

from __future__ import annotations

from pathlib import Path

import click

from gmv_sql.app import App, pass_app
from gmv_sql.errors import InputError, NotFoundError
from gmv_sql.output import emit, format_option, read
from gmv_sql.report import royalties as royalty
from gmv_sql.report.common import Target, ineligible_matches, refresh_or_note, resolve_target
from gmv_sql.resources import query
from gmv_sql.value.refresh import refresh

space_option = click.option("--space", metavar="NAME", help="Embedding space [default: the only one].")
scheme_option = click.option(
    "--scheme", metavar="NAME", help="Valuation scheme [default: the space's default scheme]."
)


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
    note = refresh_or_note(conn, target)
    if note:
        click.echo(note, err=True)


@click.group()
def report() -> None:
    """Read valuation results: royalties, owners, top images, evidence."""


@report.command()
@click.option(
    "--period", required=True, metavar="YYYY-MM", help="Month (UTC) whose generated images are paid for."
)
@click.option(
    "--pool",
    metavar="AMOUNT",
    help="Money to split, e.g. 1250.00; recorded for the month and scope [default: the recorded pool].",
)
@click.option("--currency", default="EUR", show_default=True, help="Three-letter currency code.")
@space_option
@scheme_option
@click.option("--generator", metavar="NAME", help="Scope: pay for this generator's outputs only.")
@click.option("--run", metavar="NAME", help="Scope: only this run of --generator.")
@click.option(
    "--issue",
    is_flag=True,
    help="Issue (freeze) the statement; if the month and scope have one already, issue an adjustment.",
)
@click.option("--reason", metavar="TEXT", help="With --issue: why, stored with the statement (adjustments).")
@format_option
@pass_app
def royalties(
    app: App,
    period: str,
    pool: str | None,
    currency: str,
    space: str | None,
    scheme: str | None,
    generator: str | None,
    run: str | None,
    issue: bool,
    reason: str | None,
    fmt: str,
) -> None:
    """Record a month's revenue pool and print each owner's share in cents; --issue freezes it.

    Credit of images under royalty-bearing licences is paid pro rata; the amounts add up exactly
    to the pool. Credit under other licences is shown as unpaid_credit. Without --issue this is a
    draft: running it again replaces the pool. With --issue the statement is written for good
    (gmv statement show ID); issuing again for the same month and scope writes an adjustment (what
    the data says now minus what was issued). --generator [--run] scope a pool to one model's outputs.

    \b
    Example: gmv report royalties --period 2026-01 --pool 1250.00 --currency EUR
             gmv report royalties --period 2026-01 --issue --reason "owner opted out"
    """
    from gmv_sql.ledger import statements
    from gmv_sql.ledger.draft import resolve_scope

    month = royalty.parse_period(period)
    amount = royalty.parse_pool(pool) if pool is not None else None
    code = royalty.parse_currency(currency)
    if reason is not None and not issue:
        raise InputError("--reason is stored with an issued statement; add --issue, or drop --reason")
    with app.connect() as conn:
        target = resolve_target(conn, space, scheme)
        scope = resolve_scope(conn, generator, run)
        if issue:
            issued = statements.issue(conn, target, month, scope, pool=amount, currency=code, reason=reason)
            refresh(conn)  # report views (report.royalty_statement among them) agree with what was issued
            _print_issued(issued, fmt)
            return
        _warn_if_ineligible(conn, target)
        if scope.generator is None and amount is not None:
            # Records the pool and refreshes the credit views, so report views agree with the draft.
            royalty.record_and_split(conn, target, month, amount, code)
            found = statements.draft(conn, target, month, scope)
        else:
            found = statements.draft(conn, target, month, scope, pool=amount, currency=code)
    _print_draft(found, fmt)


def _print_draft(found, fmt: str) -> None:
    label = f"{found.key.period:%Y-%m}"
    rows = [
        (label, line.owner, line.credit, line.unpaid_credit, line.share, line.due, found.pool.currency)
        for line in found.computation.lines
    ]
    emit(rows, ["period", "owner", "credit", "unpaid_credit", "share", "amount", "currency"], fmt)
    scope = "" if found.key.scope.generator is None else f" ({found.key.scope.label})"
    due = found.computation.due
    if not rows:
        click.echo(
            f"note: no generated image created in {label}{scope} is matched in space {found.target.space!r}: "
            "nothing to pay (pool recorded)",
            err=True,
        )
    elif due != found.pool.amount:
        click.echo(
            f"note: no royalty-bearing credit in {label}{scope}: {due} of {found.pool.amount} "
            f"{found.pool.currency} paid",
            err=True,
        )
    else:
        click.echo(
            f"{label} {found.target.space}/{found.target.scheme}{scope}: {found.pool.amount} {found.pool.currency} "
            f"split over {sum(1 for line in found.computation.lines if line.due > 0)} owners (draft)",
            err=True,
        )
    if found.previous:
        change = found.computation.amount
        click.echo(
            f"note: statement(s) {', '.join(str(i) for i, _ in found.previous)} issued for this month; the draft "
            f"differs from them by {change} {found.pool.currency}"
            + (" and per owner" if found.computation.changes_anything() else "")
            + "; add --issue to issue an adjustment",
            err=True,
        )


def _print_issued(issued, fmt: str) -> None:
    from gmv_sql.ledger.statements import Draft

    if isinstance(issued, Draft):
        click.echo(
            f"nothing to adjust: statements {', '.join(str(i) for i, _ in issued.previous)} already pay what the "
            "data says for this month and scope; nothing issued",
            err=True,
        )
        return
    from gmv_sql.ledger.commands import print_lines

    d = issued.draft
    print_lines(issued.draft.computation, d.pool.currency, fmt)
    scope = "" if d.key.scope.generator is None else f", {d.key.scope.label}"
    click.echo(
        f"issued statement {issued.statement_id} ({issued.kind}) for {d.key.period:%Y-%m} "
        f"({d.target.space}/{d.target.scheme}{scope}): {issued.draft.computation.amount} {d.pool.currency} "
        f"over {sum(1 for line in d.computation.lines if line.amount)} owners; show it with "
        f"`gmv statement show {issued.statement_id}`",
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
