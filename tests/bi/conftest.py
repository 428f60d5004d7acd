"""A private embedded gmv server with data, served over TCP by `gmv db serve` as a user would: what
BI tools and clients connect to in tests/bi (module scope: one server per test file)."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import pytest

from tests.conftest import REPO

OWNERS = ["Alice Studio", "bob", "carol"]


@dataclass
class Served:
    home: Path
    admin_url: str  # Unix socket, the owning account
    port: int
    reader_password: str

    @property
    def reader_url(self) -> str:
        return f"postgresql://gmv_reader:{quote(self.reader_password, safe='')}@127.0.0.1:{self.port}/gmv"


def _gmv(env: dict, *args: str) -> str:
    proc = subprocess.run(
        [sys.executable, "-m", "gmv_sql.cli", *args],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, f"gmv {' '.join(args)}: {proc.stdout}\n{proc.stderr}"
    return proc.stdout


@pytest.fixture(scope="module")
def served():
    from gmv_sql.db.connect import connect
    from tests.factories import seed

    # Not pytest's tmp_path: a concurrent pytest resets pytest-of-<user> to 0700, and the server may run
    # as another OS user (pgserver's, under root) that must traverse the path.
    root = Path(tempfile.mkdtemp(prefix="gmv-test-bi-"))
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("GMV_DATABASE_URL", "DATABASE_URL", "GMV_READER_PASSWORD")
    }
    env["GMV_HOME"] = str(root / "home")
    proc = None
    try:
        _gmv(env, "db", "up")
        admin_url = _gmv(env, "db", "url", "--show-password").strip()
        with connect(admin_url) as conn:
            seed(conn, n_training=60, n_generated=24, dim=8, k=5, owners=OWNERS, pool="900.00")
        _gmv(env, "value", "refresh")
        proc = subprocess.Popen(
            [sys.executable, "-m", "gmv_sql.cli", "db", "serve", "--port", "0"],
            env=env,
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        first = proc.stdout.readline()
        port = int(re.search(r":(\d+) \(Ctrl-C", first).group(1))
        password = (root / "home" / "secrets" / "gmv_reader@embedded.password").read_text().strip()
        yield Served(root / "home", admin_url, port, password)
    finally:
        if proc is not None:
            proc.send_signal(signal.SIGINT)
            proc.communicate(timeout=30)
        subprocess.run(
            [sys.executable, "-m", "gmv_sql.cli", "db", "stop"], env=env, cwd=REPO, capture_output=True
        )
        shutil.rmtree(root, ignore_errors=True)
