"""A PostgreSQL without pgvector gets a one-line error that says how to fix it.

Uses the machine's own Debian PostgreSQL (which ships without pgvector) as that server.
"""

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

INITDBS = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))


def _has_pgvector(bindir: Path) -> bool:
    sharedir = subprocess.run([bindir / "pg_config", "--sharedir"], capture_output=True, text=True)
    if sharedir.returncode != 0:
        version = bindir.parent.name
        return Path(f"/usr/share/postgresql/{version}/extension/vector.control").exists()
    return (Path(sharedir.stdout.strip()) / "extension" / "vector.control").exists()


@pytest.fixture
def plain_postgres():
    candidates = [Path(p).parent for p in INITDBS if not _has_pgvector(Path(p).parent)]
    if not candidates:
        pytest.skip("no PostgreSQL without pgvector on this machine to test against")
    bindir = candidates[-1]
    # Not pytest's tmp_path: that is private to root, and the server must run as another user.
    tmp_path = Path(tempfile.mkdtemp(prefix="gmv-nopgvector-"))
    run_as: list[str] = []
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("pgserver")
        except KeyError:
            subprocess.run(["useradd", "--system", "pgserver"], check=True)
        run_as = ["runuser", "-u", "pgserver", "--"]
        shutil.chown(tmp_path, "pgserver")
    data, sock = tmp_path / "data", tmp_path
    subprocess.run(
        [*run_as, bindir / "initdb", "-D", data, "-U", "postgres", "--auth=trust"],
        check=True,
        capture_output=True,
    )
    subprocess.run(
        [
            *run_as,
            bindir / "pg_ctl",
            "-D",
            data,
            "-w",
            "-l",
            tmp_path / "log",
            "-o",
            f"-h '' -k {sock}",
            "start",
        ],
        check=True,
        capture_output=True,
    )
    try:
        yield f"postgresql://postgres@/postgres?host={sock}"
    finally:
        subprocess.run(
            [*run_as, bindir / "pg_ctl", "-D", data, "-m", "immediate", "stop"], capture_output=True
        )
        shutil.rmtree(tmp_path, ignore_errors=True)


def test_missing_pgvector_is_a_one_line_error(plain_postgres, tmp_path):
    from tests.conftest import Gmv

    gmv = Gmv(plain_postgres, tmp_path / "home")
    result = gmv("db", "up", ok=False)
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 1
    assert len(lines) == 1, result.output
    assert "no pgvector extension" in lines[0] and "install pgvector" in lines[0]
