"""Unit tests that need torch carry the `torch` marker: `pytest -m "not torch"` runs without torch."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import REPO


def test_unit_tests_run_without_torch():
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "tests.tools.block_torch",
            "-p",
            "no:cacheprovider",
            "-q",
            "-m",
            "not torch",
            "tests/unit",
            "--deselect",
            "tests/unit/test_torch_marker.py",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert " passed" in proc.stdout and "error" not in proc.stdout.lower().split("short test summary")[-1]
