"""The demo's output folder: refuse one holding other files, and clear what an earlier demo wrote."""

from __future__ import annotations

import shutil
from pathlib import Path

from gmv_sql.errors import ConfigError

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


def check_output(output: Path) -> None:
    """Refuse a file, or a folder holding files the demo did not write (before any work is done)."""
    if output.exists() and not output.is_dir():
        raise ConfigError(f"--output {str(output)!r} is a file; pick a folder")
    if output.is_dir() and any(output.iterdir()) and not (output / MARKER).exists():
        raise ConfigError(
            f"--output {str(output)!r} is a folder with other files in it; pick a new or empty folder "
            "(the demo replaces only folders it made itself)"
        )


def prepare_output(output: Path) -> None:
    """Create the folder, or clear what an earlier demo wrote there; never delete other files."""
    check_output(output)
    output.mkdir(parents=True, exist_ok=True)
    (output / MARKER).write_text(
        "written by gmv demo; a re-run replaces this folder's demo files\n", encoding="utf-8"
    )
    for name in OUR_ENTRIES:
        target = output / name
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        elif target.exists() or target.is_symlink():
            target.unlink()
