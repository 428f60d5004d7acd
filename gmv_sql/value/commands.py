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
    """Refresh the credit views from gmv.match without blocking readers (CONCURRENTLY).

    Prints the total credit per space and scheme: it equals the sum of generated images' quality.

    Example: gmv value refresh
    """
    with app.connect() as conn:
        results = refresh_views(conn)
        for r in results:
            click.echo(f"refreshed {r.view}: {r.rows:,} rows in {r.seconds:.2f}s", err=True)
        summary = read(conn, query("value", "credit_summary"))
    emit(summary.rows, summary.columns, fmt)
