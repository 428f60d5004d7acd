"""TCP access to the embedded server: every login needs a password, the admin only with `serve --admin`.

One private embedded server (its own GMV_HOME) for the module, started by `gmv db up` as a user would;
`gmv db serve` runs as a real process and clients connect over TCP as a BI tool would.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import psycopg
import pytest

from tests.conftest import REPO


def _gmv_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("GMV_DATABASE_URL", "DATABASE_URL")}
    env.pop("GMV_READER_PASSWORD", None)
    env["GMV_HOME"] = str(home)
    return env


class Embedded:
    def __init__(self, home: Path):
        self.home = home
        self.env = _gmv_env(home)

    def __call__(self, *args: str, ok: bool = True, env: dict | None = None) -> subprocess.CompletedProcess:
        proc = subprocess.run(
            [sys.executable, "-m", "gmv_sql.cli", *args],
            env={**self.env, **(env or {})},
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=180,
        )
        if ok and proc.returncode != 0:
            raise AssertionError(
                f"gmv {' '.join(args)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
            )
        if not ok and proc.returncode == 0:
            raise AssertionError(f"gmv {' '.join(args)} unexpectedly succeeded:\n{proc.stdout}")
        return proc

    @property
    def reader_file(self) -> Path:
        return self.home / "secrets" / "gmv_reader@embedded.password"

    def reader_password(self) -> str:
        return self.reader_file.read_text().strip()

    @contextlib.contextmanager
    def serving(self, *args: str, stop_with: int = signal.SIGINT):
        """`gmv db serve --port 0 ARGS` in the background; yields (port, the lines it printed)."""
        proc = subprocess.Popen(
            [sys.executable, "-m", "gmv_sql.cli", "db", "serve", "--port", "0", *args],
            env=self.env,
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            lines = []
            while not lines or not lines[-1].startswith("admin:"):
                line = proc.stdout.readline()
                assert line, f"gmv db serve exited early: {proc.stderr.read()}"
                lines.append(line.rstrip("\n"))
            port = int(re.search(r":(\d+) \(Ctrl-C", lines[0]).group(1))
            yield port, lines
        finally:
            proc.send_signal(stop_with)
            out, err = proc.communicate(timeout=30)
            assert proc.returncode == 0, err
            lines.extend(out.splitlines())
            lines.extend(err.splitlines())


@pytest.fixture(scope="module")
def embedded():
    # Not pytest's tmp_path: a concurrent pytest resets pytest-of-<user> to 0700, and the server may
    # run as another OS user (pgserver's, under root) that must traverse the path.
    root = Path(tempfile.mkdtemp(prefix="gmv-test-tcp-"))
    server = Embedded(root / "home")
    try:
        server("db", "up")
        yield server
    finally:
        server("db", "stop")
        shutil.rmtree(root, ignore_errors=True)


def tcp(port: int, user: str, password: str | None, **kwargs) -> psycopg.Connection:
    return psycopg.connect(
        host="127.0.0.1", port=port, user=user, password=password, dbname="gmv", connect_timeout=10, **kwargs
    )


def test_password_files_are_private_and_never_printed_unless_asked(embedded):
    secrets = embedded.home / "secrets"
    assert stat.S_IMODE(secrets.stat().st_mode) == 0o700
    assert stat.S_IMODE(embedded.reader_file.stat().st_mode) == 0o600
    password = embedded.reader_password()
    assert len(password) >= 24
    shown = [
        embedded("db", "up").stdout,
        embedded("db", "url").stdout,
        embedded("db", "url", "--reader").stdout,
        embedded("db", "reader-password").stdout,
        embedded("db", "status").stdout,
    ]
    with embedded.serving() as (_port, lines):
        pass
    shown += lines
    assert not [text for text in shown if password in text]
    assert str(embedded.reader_file) in shown[0]
    assert password in embedded("db", "url", "--reader", "--show-password").stdout
    assert embedded("db", "reader-password", "--show-password").stdout.splitlines()[-1] == password


def test_reader_logs_in_over_tcp_with_its_password_only(embedded):
    with embedded.serving() as (port, _lines):
        with tcp(port, "gmv_reader", embedded.reader_password()) as conn:
            assert conn.execute("SELECT current_user, count(*) FROM report.owner_value").fetchone() == (
                "gmv_reader",
                0,
            )
        for wrong in ("wrong", embedded.reader_password() + "x", ""):
            with pytest.raises(psycopg.OperationalError, match="password"):
                tcp(port, "gmv_reader", wrong)
        # Straight to the server's own TCP listener (bypassing serve): the same rule.
        backend_port = _backend_port(embedded)
        with pytest.raises(psycopg.OperationalError, match="password"):
            tcp(backend_port, "gmv_reader", "wrong")


def _backend_port(embedded: Embedded) -> int:
    lines = (embedded.home / "pgdata" / "postmaster.pid").read_text().splitlines()
    assert lines[5] == "127.0.0.1", lines  # listen address: loopback only
    return int(lines[3])


def test_superuser_is_refused_over_tcp_unless_serve_admin(embedded):
    backend_port = _backend_port(embedded)
    with embedded.serving() as (port, lines):
        assert "refused over TCP" in lines[2]
        with pytest.raises(psycopg.OperationalError, match='refuses superuser "postgres"'):
            tcp(port, "postgres", None)
        # Without a password set, the admin cannot log in on the server's own listener either.
        with pytest.raises(psycopg.OperationalError, match="password"):
            tcp(backend_port, "postgres", "anything")

    with embedded.serving("--admin") as (port, lines):
        admin_file = embedded.home / "secrets" / "postgres@embedded.password"
        assert str(admin_file) in lines[2] and stat.S_IMODE(admin_file.stat().st_mode) == 0o600
        admin_password = admin_file.read_text().strip()
        with tcp(port, "postgres", admin_password) as conn:
            assert conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user").fetchone() == (
                True,
            )
        with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
            tcp(port, "postgres", "wrong")

    # serve --admin has ended: its password no longer works anywhere over TCP.
    with pytest.raises(psycopg.OperationalError, match="password"):
        tcp(backend_port, "postgres", admin_password)
    with embedded.serving() as (port, _lines):
        with pytest.raises(psycopg.OperationalError, match="refuses superuser"):
            tcp(port, "postgres", admin_password)


def test_serve_admin_stopped_by_sigterm_also_removes_the_admin_password(embedded):
    with embedded.serving("--admin", stop_with=signal.SIGTERM) as (port, _lines):
        password = (embedded.home / "secrets" / "postgres@embedded.password").read_text().strip()
        with tcp(port, "postgres", password) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
    with pytest.raises(psycopg.OperationalError, match="password"):
        tcp(_backend_port(embedded), "postgres", password)


def test_rotate_changes_the_reader_password(embedded):
    old = embedded.reader_password()
    out = embedded("db", "reader-password", "--rotate").stdout
    new = embedded.reader_password()
    assert new != old and old not in out and new not in out
    with embedded.serving() as (port, _lines):
        with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
            tcp(port, "gmv_reader", old)
        with tcp(port, "gmv_reader", new) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
    refused = embedded("db", "reader-password", "--rotate", ok=False, env={"GMV_READER_PASSWORD": "x"})
    assert "GMV_READER_PASSWORD is set" in refused.stderr + refused.stdout
    assert embedded.reader_password() == new


def test_reader_password_from_the_environment(embedded):
    chosen = "chosen-by-the-operator-0123456789"
    out = embedded("db", "up", env={"GMV_READER_PASSWORD": chosen}).stdout
    assert "GMV_READER_PASSWORD" in out and chosen not in out
    with embedded.serving() as (port, _lines):
        with tcp(port, "gmv_reader", chosen) as conn:
            assert conn.execute("SELECT current_user").fetchone() == ("gmv_reader",)
    embedded("db", "reader-password", "--rotate")


def test_serving_beyond_loopback_needs_host_and_warns(embedded):
    with embedded.serving() as (_port, lines):
        assert " on 127.0.0.1:" in lines[0]
    assert not [line for line in lines if "warning" in line]
    with embedded.serving("--host", "0.0.0.0") as (_port, lines):
        pass
    assert any("warning: serving on 0.0.0.0, not loopback" in line for line in lines), lines


def test_the_socket_is_for_the_owning_account_only(embedded):
    hba = (embedded.home / "pgdata" / "pg_hba.conf").read_text()
    rules = [line.split() for line in hba.splitlines() if line.strip() and not line.startswith("#")]
    assert rules == [
        ["local", "all", "all", "peer", "map=gmv"],
        ["host", "all", "all", "127.0.0.1/32", "scram-sha-256"],
        ["host", "all", "all", "::1/128", "scram-sha-256"],
    ]
    # The owning account still uses the socket without a password, as before.
    url = embedded("db", "url").stdout.strip()
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT current_user").fetchone() == ("postgres",)
