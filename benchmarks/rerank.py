"""Does re-ranking with a second space improve class consistency and the membership test? (docs/DEMO.md)

Runs on the database a `gmv demo` left behind (spaces digits-effnet and digits-pixels over the same
images, matched at k = 3): for each space alone, then for each space's candidates re-ranked by the
other, the membership audit (Welch p, permutation p, AUC) and the class-consistency audit (share of
matches with the digit asked for, chance, binomial p). Every number comes from the gmv commands a
user would run (in-process); the demo's own matches are restored at the end.

    GMV_HOME=/tmp/gh gmv demo --quick --output /tmp/qd
    python benchmarks/rerank.py --database-url "user=postgres dbname=gmv_demo host=/tmp/gh/pgdata" --output /tmp/qd
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gmv_sql.cli import cli  # noqa: E402

K = 3
SPACES = ("digits-effnet", "digits-pixels")


def gmv(url: str, *args: str) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        cli.main(["--database-url", url, *map(str, args)], prog_name="gmv", standalone_mode=False)
    return out.getvalue()


def measure(url: str, output: Path, space: str) -> dict[str, float]:
    gmv(url, "value", "refresh")
    membership = json.loads(
        gmv(
            url,
            "audit",
            "membership",
            "--space",
            space,
            "--members",
            output / "members.csv",
            "--nonmembers",
            output / "nonmembers.csv",
            "--format",
            "json",
        )
    )
    consistency = json.loads(
        gmv(url, "audit", "consistency", "--attribute", "digit", "--space", space, "--format", "json")
    )
    return {
        "welch_p": membership["p_value"],
        "permutation_p": membership["permutation_p_value"],
        "auc": membership["auc"],
        "auc_ci": f"{membership['auc_ci_low']:.2f}-{membership['auc_ci_high']:.2f}",
        "mean_m": membership["mean_members"],
        "mean_n": membership["mean_nonmembers"],
        "rank1": consistency["rows"][0]["share"],
        "all": consistency["rows"][-1]["share"],
        "chance": consistency["chance"],
        "binomial_p": consistency["rows"][-1]["p_value"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--output", required=True, type=Path, help="the demo's output folder (member lists)")
    parser.add_argument("--candidates", type=int, nargs="+", default=[10, 50])
    args = parser.parse_args()
    url, output = args.database_url, args.output
    print(
        "| candidates from | re-ranked by | N | members' vs non-members' mean | Welch p | permutation p | AUC (95% CI) "
        "| same digit: rank 1 / top-3 (chance) | binomial p |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for space in SPACES:
        other = SPACES[1 - SPACES.index(space)]
        runs = [(None, None)] + [(other, n) for n in args.candidates]
        for rerank, n in runs:
            extra = ["--rerank-space", rerank, "--candidates", str(n)] if rerank else []
            gmv(url, "match", "--space", space, "--k", str(K), "--rematch", *extra)
            r = measure(url, output, space)
            print(
                f"| {space} | {rerank or '-'} | {n or '-'} | {r['mean_m']:.2f} vs {r['mean_n']:.2f} | {r['welch_p']:.2g} "
                f"| {r['permutation_p']:.2g} | {r['auc']:.3f} ({r['auc_ci']}) | {r['rank1']:.3f} / {r['all']:.3f} "
                f"({r['chance']:.3f}) | {r['binomial_p']:.2g} |",
                flush=True,
            )
        gmv(url, "match", "--space", space, "--k", str(K), "--rematch")  # the demo's matches again
    gmv(url, "value", "refresh")


if __name__ == "__main__":
    main()
