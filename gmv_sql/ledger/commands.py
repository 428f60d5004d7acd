"""`gmv statement list|show|verify|reverse`: read, audit and withdraw issued royalty statements.

Statements are issued by `gmv report royalties --issue` (gmv_sql/ledger/statements.py).
"""

from __future__ import annotations

import json

import click

from gmv_sql.app import App, pass_app
from gmv_sql.ledger.draft import Computation
from gmv_sql.output import _plain, emit, format_option, read
from gmv_sql.resources import query

LINE_COLUMNS = ["owner", "credit", "unpaid_credit", "share", "due", "issued_before", "amount", "currency"]
CREDIT_COLUMNS = [
    "training_id",
    "owner",
    "license",
    "royalty_bearing",
    "credit",
    "n_matches",
    "due",
    "issued_before",
    "amount",
    "currency",
    "uri",
]


def line_rows(comp: Computation, currency: str) -> list[tuple]:
    return [
        (x.owner, x.credit, x.unpaid_credit, x.share, x.due, x.issued_before, x.amount, currency)
        for x in comp.lines
    ]


def credit_rows(comp: Computation, currency: str) -> list[tuple]:
    return [
        (
            c.info.training_id,
            c.info.owner,
            c.info.license,
            c.info.royalty_bearing,
            c.credit,
            c.n_matches,
            c.due,
            c.issued_before,
            c.amount,
            currency,
            c.info.uri,
        )
        for c in comp.credits
    ]


def print_lines(comp: Computation, currency: str, fmt: str) -> None:
    emit(line_rows(comp, currency), LINE_COLUMNS, fmt)


@click.group()
def statement() -> None:
    """Issued royalty statements: list, show, verify, reverse (issue with gmv report royalties --issue)."""


@statement.command("list")
@click.option("--period", metavar="YYYY-MM", help="Only this month.")
@format_option
@pass_app
def list_(app: App, period: str | None, fmt: str) -> None:
    """Every issued statement, oldest first: originals, adjustments and reversals.

    Example: gmv statement list --period 2026-01
    """
    from gmv_sql.report.royalties import parse_period

    month = parse_period(period) if period is not None else None
    with app.connect() as conn:
        found = read(conn, query("ledger", "list"), {"period": month})
    emit(found.rows, found.columns, fmt)


@statement.command()
@click.argument("statement_id", type=click.IntRange(min=1), metavar="ID")
@click.option(
    "--credits", is_flag=True, help="Show the per-training-image lines instead of the per-owner ones."
)
@format_option
@pass_app
def show(app: App, statement_id: int, credits: bool, fmt: str) -> None:
    """One issued statement: its header and provenance (on stderr, or in the JSON) and its lines.

    Example: gmv statement show 3 --format json
    """
    from gmv_sql.ledger import statements

    with app.connect() as conn:
        stored = statements.load(conn, statement_id)
    h = stored.header
    currency = h["currency"]
    if fmt == "json":
        header = {k: _plain(v) for k, v in h.items() if k != "period_date"}
        body = {
            "statement": header,
            "lines": [
                dict(zip(LINE_COLUMNS, map(_plain, r), strict=True))
                for r in line_rows(stored.computation, currency)
            ],
        }
        if credits:
            body["credits"] = [
                dict(zip(CREDIT_COLUMNS, map(_plain, r), strict=True))
                for r in credit_rows(stored.computation, currency)
            ]
        click.echo(json.dumps(body, ensure_ascii=False, indent=2, default=str))
        return
    prov = h["provenance"]
    click.echo(
        f"statement {h['statement_id']} ({h['kind']}) {h['period']}, {h['space']}/{h['scheme']}, scope {h['scope']}: "
        f"{h['amount']} {currency} (pool {h['pool']}), issued {h['issued_at']:%Y-%m-%d %H:%M:%S %Z} by {h['issued_by']}"
        + (f", reverses {h['reverses']}" if h["reverses"] else "")
        + (f"; reason: {h['reason']}" if h["reason"] else ""),
        err=True,
    )
    if h["kind"] != "reversal":
        runs = ", ".join(
            f"run {r['run_id']} recall {r['recall_at_k'] if r['recall_at_k'] is not None else r['recall_status']}"
            for r in prov.get("match_runs", [])
        )
        space = prov["space"]
        click.echo(
            f"provenance: model {space['model']} (weights {space['weights_sha256'] or 'none'}), {space['distance']}, "
            f"k={prov['k']}, scheme {prov['scheme']['formula']} (T={prov['scheme']['temperature']}), "
            f"{prov['counts']['generated_images']:,} generated images, {prov['counts']['match_rows']:,} match rows; "
            f"match runs: {runs or 'none recorded'}",
            err=True,
        )
    if credits:
        emit(credit_rows(stored.computation, currency), CREDIT_COLUMNS, fmt)
    else:
        print_lines(stored.computation, currency, fmt)


@statement.command()
@click.argument("statement_id", type=click.IntRange(min=1), metavar="ID")
@pass_app
def verify(app: App, statement_id: int) -> None:
    """Recompute a statement from its stored match rows, and say what changed in the data since.

    Exit status 0 when the stored rows reproduce the statement exactly (whether or not the data
    changed since; the changes are listed), 1 when they do not.

    Example: gmv statement verify 3
    """
    from gmv_sql.errors import ConflictError
    from gmv_sql.ledger.verify import verify as run_verify

    with app.connect() as conn:
        result = run_verify(conn, statement_id)
    if not result.reproduces:
        raise ConflictError(
            f"statement {statement_id} does NOT reproduce from its stored rows: {'; '.join(result.mismatches)}"
        )
    if result.kind == "reversal":
        click.echo(f"statement {statement_id} reproduces exactly: it negates the statement it reverses")
        return
    if result.current_same and not result.changes:
        click.echo(
            f"statement {statement_id} reproduces exactly: from its {result.n_rows:,} stored match rows, "
            "and the data today still gives the same amounts"
        )
        return
    click.echo(
        f"statement {statement_id} reproduces exactly from its {result.n_rows:,} stored match rows; "
        + (
            "the data today gives the same amounts due"
            if result.current_same
            else "the data today gives other amounts"
        )
    )
    if result.changes:
        click.echo("changed since it was issued: " + "; ".join(result.changes))
    for line in result.differences:
        click.echo(f"  {line}")
    if not result.current_same:
        click.echo(
            "issue an adjustment with: gmv report royalties --period PERIOD --issue --reason TEXT (same scope)"
        )


@statement.command()
@click.argument("statement_id", type=click.IntRange(min=1), metavar="ID")
@click.option(
    "--reason", metavar="TEXT", required=True, help="Why it is withdrawn (stored with the reversal)."
)
@format_option
@pass_app
def reverse(app: App, statement_id: int, reason: str, fmt: str) -> None:
    """Withdraw an issued statement by issuing a reversing one (every line negated).

    Example: gmv statement reverse 3 --reason "issued with the wrong pool"
    """
    from gmv_sql.ledger import statements

    with app.connect() as conn:
        issued = statements.reverse(conn, statement_id, reason)
    print_lines(issued.draft.computation, issued.draft.pool.currency, fmt)
    click.echo(
        f"issued statement {issued.statement_id} (reversal of {statement_id}): {issued.draft.computation.amount} "
        f"{issued.draft.pool.currency}",
        err=True,
    )
