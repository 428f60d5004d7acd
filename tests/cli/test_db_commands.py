"""`gmv db …` on a test database, and the embedded server's whole life cycle."""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import psycopg
import pytest

from gmv_sql.db.connect import MIN_PGVECTOR, MIN_SERVER_VERSION, mask_password, parse_version
from gmv_sql.db.migrate import head_revision
from tests.conftest import REPO


def test_status_shows_versions_and_counts(gmv):
    rows = {r["item"]: r["value"] for r in json.loads(gmv("db", "status", "--format", "json").output)}
    # Versions compare as numbers: as strings "0.10" < "0.8" and "9.6" > "16".
    assert parse_version(rows["postgresql"]) >= (MIN_SERVER_VERSION // 10000,)
    assert parse_version(rows["pgvector"]) >= MIN_PGVECTOR
    assert rows["migration"] == rows["migration head"]
    assert rows["rows gmv.training_image"] == 0


def test_url_masks_password_unless_asked(tmp_path):
    from tests.conftest import Gmv

    gmv = Gmv("postgresql://alice:s3cret@db.example:5432/gmv", tmp_path)
    assert gmv("db", "url").output.strip() == "postgresql://alice:***@db.example:5432/gmv"
    assert "s3cret" in gmv("db", "url", "--show-password").output
    assert "gmv_reader@db.example:5432/gmv" in gmv("db", "url", "--reader").output
    masked = mask_password("host=x password=pw user=u")
    assert "password=***" in masked and "pw" not in masked.replace("password", "")


def test_stop_refuses_external_database(gmv):
    result = gmv("db", "stop", ok=False)
    assert "only stops the embedded server" in result.output


def test_bad_url_is_one_line(tmp_path):
    from tests.conftest import Gmv

    gmv = Gmv("postgresql://nobody@127.0.0.1:1/none", tmp_path)
    result = gmv("db", "status", ok=False)
    assert result.exit_code == 1
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "cannot connect" in lines[0], result.output


def test_serve_forwards_tcp_to_the_database(gmv):
    proc = gmv.popen("db", "serve", "--port", "0", stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        first = proc.stdout.readline()
        port = int(re.search(r":(\d+) \(Ctrl-C", first).group(1))
        with psycopg.connect(
            host="127.0.0.1",
            port=port,
            user="gmv_reader",
            dbname=gmv.url.split("dbname=")[-1].split()[0] if "dbname=" in gmv.url else None,
            connect_timeout=10,
        ) as conn:
            assert conn.execute("SELECT count(*) FROM report.owner_value").fetchone() == (0,)
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=60)


def test_embedded_server_lifecycle():
    """With no URL set: db up starts the embedded server, psql reads report views, db stop stops it."""
    env = {k: v for k, v in os.environ.items() if k not in ("GMV_DATABASE_URL", "DATABASE_URL")}
    # Not pytest's tmp_path: a concurrent pytest resets pytest-of-<user> to 0700, which the server's
    # OS user (pgserver's, when run as root) must traverse.
    root = Path(tempfile.mkdtemp(prefix="gmv-test-life-"))
    env["GMV_HOME"] = str(root / "home")

    def gmv(*args):
        return subprocess.run(
            [sys.executable, "-m", "gmv_sql.cli", *args],
            env=env,
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=180,
        )

    try:
        up = gmv("db", "up")
        assert up.returncode == 0, up.stderr
        assert head_revision() in up.stdout
        assert gmv("db", "status").returncode == 0
        url = gmv("db", "url").stdout.strip()
        with psycopg.connect(url) as conn:  # what psql does with the same URL
            assert conn.execute("SELECT * FROM report.training_value LIMIT 1").fetchall() == []
            # Tuned for vector work on first start (initdb's 128MB cannot hold an HNSW index).
            from gmv_sql.db.embedded import recommended_settings

            wanted = recommended_settings()["shared_buffers"]
            assert conn.execute(
                "SELECT pg_size_bytes(current_setting('shared_buffers')) = pg_size_bytes(%s)", (wanted,)
            ).fetchone()[0]
            assert conn.execute("SHOW jit").fetchone()[0] == "off"
        # The server outlives the gmv process that started it.
        assert psycopg.connect(url).close() is None
    finally:
        stop = gmv("db", "stop")
        shutil.rmtree(root, ignore_errors=True)
    assert stop.returncode == 0 and "stopped" in stop.stdout
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(url, connect_timeout=3)


def test_database_url_option_wins_over_the_environment(db_url, tmp_path):
    from tests.conftest import Gmv

    bogus = "postgresql://nobody:envsecret@127.0.0.1:1/none"
    # Both variables point nowhere; --database-url names the real database and wins.
    gmv = Gmv(bogus, tmp_path)
    gmv.env["DATABASE_URL"] = bogus
    out = gmv("--database-url", db_url, "db", "status", "--format", "json").output
    rows = {r["item"]: r["value"] for r in json.loads(out)}
    assert rows["database"] == mask_password(db_url) and rows["server"] == "external"
    assert rows["migration"] == rows["migration head"]
    # GMV_DATABASE_URL wins over DATABASE_URL.
    gmv = Gmv(db_url, tmp_path)
    gmv.env["DATABASE_URL"] = bogus
    assert json.loads(gmv("db", "status", "--format", "json").output)
    # The reverse: both variables are right, a bad --database-url still wins and is the one reported.
    gmv.env["DATABASE_URL"] = db_url
    result = gmv("--database-url", "postgresql://alice:s3cret@127.0.0.1:1/none", "db", "status", ok=False)
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 1 and len(lines) == 1, result.output
    assert lines[0].startswith("Error: cannot connect to postgresql://alice:***@127.0.0.1:1/none: "), lines[0]
    assert "s3cret" not in result.output
