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
@click.option("--scheme", metavar="NAME", help="Valuation scheme [default: the space's default scheme].")
@click.option(
    "--sweep",
    is_flag=True,
    help="Test every scheme, temperature (softmax_calibrated x 0.25..4) and k, in SQL over the stored matches.",
)
@click.option(
    "--sweep-k",
    "sweep_k",
    metavar="K,K,…",
    default="1,3,5,10,20",
    show_default=True,
    help="With --sweep: the k values (a k above the space's stored k is searched afresh, not stored).",
)
@click.option(
    "--class-attribute",
    metavar="NAME",
    help="With --sweep: attribute naming the class of training and generated images "
    "[default: class, label, digit or category, if present].",
)
@format_option
@pass_app
def membership(
    app: App,
    members: Path,
    nonmembers: Path,
    space: str | None,
    scheme: str | None,
    sweep: bool,
    sweep_k: str,
    class_attribute: str | None,
    fmt: str,
) -> None:
    """Compare members' and non-members' values: means, medians, Welch's t-test, AUC.

    GMValuator's membership experiment (arXiv 2304.10701, Table 1): a valuation that reflects
    what the generator learnt gives members clearly more credit (small p, AUC above 0.5). Both
    lists must name ingested training images; the values are those of report.training_value.

    With --sweep, the test runs for every scheme, temperature and k (see --sweep-k), and reports
    the credit-weighted class consistency when images carry a class attribute: how robust the
    signal is to the weighting. The last line summarises it.

    Examples: gmv audit membership --members members.txt --nonmembers heldout.csv
              gmv audit membership --members members.txt --nonmembers heldout.csv --sweep --format json
    """
    from gmv_sql.audit.membership import audit_membership
    from gmv_sql.report.common import resolve_target

    if sweep:
        _sweep(app, members, nonmembers, space, scheme, sweep_k, class_attribute, fmt)
        return

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


def _sweep(
    app: App,
    members: Path,
    nonmembers: Path,
    space: str | None,
    scheme: str | None,
    sweep_k: str,
    class_attribute: str | None,
    fmt: str,
) -> None:
    from gmv_sql.audit.sweep import parse_ks, sweep
    from gmv_sql.errors import InputError
    from gmv_sql.spaces import get_space

    if scheme is not None:
        raise InputError(
            f"--scheme {scheme!r} and --sweep do not go together: the sweep tries every scheme; drop one"
        )
    ks = parse_ks(sweep_k)

    def searching(stored: int, k: int) -> None:
        click.echo(f"space matched with k = {stored}; searching k = {k} for the sweep (not stored)", err=True)

    with app.connect() as conn:
        result = sweep(
            conn,
            get_space(conn, space),
            members,
            nonmembers,
            ks=ks,
            class_attribute_name=class_attribute,
            on_search=searching,
        )
    if fmt == "json":
        click.echo(json.dumps(result.as_dict(), indent=2))
        return
    emit(result.table_rows(), result.columns(), fmt)
    if fmt == "table":
        click.echo(result.summary())
