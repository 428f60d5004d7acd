"""`gmv audit membership`: are the images a generator was trained on valued above held-out ones?"""

from __future__ import annotations

import json
import math
from pathlib import Path

import click

from gmv_sql.app import App, pass_app
from gmv_sql.output import emit, format_option


@click.group()
def audit() -> None:
    """Check a valuation against what is known about the training set."""


@audit.command()
@click.option(
    "--members",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Images the generator was trained on: one sha256 or path per line, or a CSV with a sha256 or path column.",
)
@click.option(
    "--nonmembers",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Held-out images from the same distribution (same format).",
)
@click.option("--space", metavar="NAME", help="Embedding space [default: the only one].")
@click.option("--scheme", metavar="NAME", help="Valuation scheme [default: the default scheme, rank_linear].")
@format_option
@pass_app
def membership(
    app: App, members: Path, nonmembers: Path, space: str | None, scheme: str | None, fmt: str
) -> None:
    """Compare members' and non-members' values: means, medians, Welch's t-test, AUC.

    GMValuator's membership experiment (arXiv 2304.10701, Table 1): a valuation that reflects
    what the generator learnt gives members clearly more credit (small p, AUC above 0.5). Both
    lists must name ingested training images; the values are those of report.training_value.

    Example: gmv audit membership --members members.txt --nonmembers heldout.csv
    """
    from gmv_sql.audit.membership import audit_membership
    from gmv_sql.report.common import resolve_target

    with app.connect() as conn:
        target = resolve_target(conn, space, scheme)
        result = audit_membership(conn, members, nonmembers, space=target.space, scheme=target.scheme)
    if fmt == "json":
        # JSON has no infinity or NaN (t is infinite when both groups are constant and differ).
        plain = {
            k: (v if not isinstance(v, float) or math.isfinite(v) else str(v))
            for k, v in result.as_dict().items()
        }
        click.echo(json.dumps(plain, indent=2))
        return
    emit(result.rows(), ("item", "value"), fmt)
    if fmt == "table":
        click.echo(result.summary())
