"""Apache Superset, end to end: register the gmv database with the reader's URL (over `gmv db serve`,
with its password), create a dataset on report.owner_value, run a chart query through Superset's API,
save a chart and render its page in headless Chromium to a PNG that must not be blank.

Superset lives in its own virtualenv, made here on first use from superset-requirements.txt and kept in
~/.cache/gmv_sql/superset-venv-<hash of that file> (GMV_SUPERSET_VENV overrides the place): several
minutes the first time. Marked `bi`: `make test` and CI run it, `pytest -m "not bi"` skips it.
GMV_SUPERSET_SCREENSHOT=FILE keeps a copy of the PNG (docs/img/superset_owner_value.png came from it).
"""

from __future__ import annotations

import hashlib
import http.cookiejar
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlencode

import numpy as np
import psycopg
import pytest

pytestmark = [pytest.mark.bi, pytest.mark.slow, pytest.mark.timeout(2400)]

REQUIREMENTS = Path(__file__).with_name("superset-requirements.txt")
ADMIN = {"username": "admin", "password": "admin-test-only"}


def superset_venv() -> Path:
    """The Superset virtualenv, created (pip install -r superset-requirements.txt) when missing."""
    import fasteners

    key = hashlib.sha256(REQUIREMENTS.read_bytes() + sys.version.encode()).hexdigest()[:12]
    default = Path.home() / ".cache" / "gmv_sql" / f"superset-venv-{key}"
    venv = Path(os.environ.get("GMV_SUPERSET_VENV") or default)
    installed = venv / ".gmv-installed"
    if installed.exists():
        return venv
    venv.parent.mkdir(parents=True, exist_ok=True)
    with fasteners.InterProcessLock(str(venv) + ".lock"):
        if not installed.exists():
            shutil.rmtree(venv, ignore_errors=True)
            started = time.monotonic()
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
            subprocess.run(
                [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "-r", str(REQUIREMENTS)],
                check=True,
                timeout=1800,
            )
            installed.write_text(f"installed in {time.monotonic() - started:.0f} s\n")
    return venv


def _chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    if os.environ.get("CI") == "true":
        pytest.fail("chromium is not installed; .ci/run installs it (apt-get install chromium)")
    pytest.skip("chromium is not installed (apt-get install chromium); CI installs it and runs this test")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Superset:
    """One Superset web server on a private SQLite metadata database, driven through its HTTP API."""

    def __init__(self, venv: Path, folder: Path):
        self.venv = venv
        self.folder = folder
        self.port = _free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        config = folder / "superset_config.py"
        # Anonymous visitors get the Admin role, so headless Chromium renders the chart page without
        # a login form; API calls log in with a session, as the web UI does. Test-only settings.
        config.write_text(
            f'SECRET_KEY = "{hashlib.sha256(str(folder).encode()).hexdigest()}"\n'
            f'SQLALCHEMY_DATABASE_URI = "sqlite:///{folder / "superset.db"}"\n'
            f"DATA_DIR = {str(folder)!r}\n"
            "WTF_CSRF_ENABLED = False\nTALISMAN_ENABLED = False\n"
            'AUTH_ROLE_PUBLIC = "Admin"\nPUBLIC_ROLE_LIKE = "Admin"\n'
        )
        self.env = {**os.environ, "SUPERSET_CONFIG_PATH": str(config), "HOME": str(folder)}
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar())
        )
        self.process: subprocess.Popen | None = None

    def cli(self, *args: str) -> None:
        done = subprocess.run(
            [str(self.venv / "bin" / "superset"), *args],
            env=self.env,
            cwd=self.folder,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert done.returncode == 0, (
            f"superset {' '.join(args)}: {done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        )

    def start(self) -> None:
        self.cli("db", "upgrade")
        self.cli("fab", "create-admin", "--firstname", "a", "--lastname", "b", "--email", "a@example.org",
                 "--username", ADMIN["username"], "--password", ADMIN["password"])  # fmt: skip
        self.cli("init")
        self.log = open(self.folder / "server.log", "w")  # noqa: SIM115
        self.process = subprocess.Popen(
            [
                str(self.venv / "bin" / "superset"),
                "run",
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "--with-threads",
            ],
            env=self.env,
            cwd=self.folder,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            assert self.process.poll() is None, (self.folder / "server.log").read_text()[-3000:]
            try:
                with urllib.request.urlopen(self.base + "/health", timeout=5) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                time.sleep(1)
        else:
            raise AssertionError("superset did not answer /health in 180 s")
        login = urllib.request.Request(self.base + "/login/", data=urlencode(ADMIN).encode(), method="POST")
        with self.opener.open(login, timeout=60) as answer:
            assert answer.status == 200

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
            self.log.close()

    def api(self, method: str, path: str, body: dict | None = None) -> dict:
        request = urllib.request.Request(
            self.base + path,
            data=None if body is None else json.dumps(body).encode(),
            method=method,
            headers={"Content-Type": "application/json"},
        )
        try:
            with self.opener.open(request, timeout=180) as answer:
                return json.loads(answer.read())
        except urllib.error.HTTPError as exc:
            raise AssertionError(f"{method} {path}: HTTP {exc.code}: {exc.read().decode()[:2000]}") from exc


@pytest.fixture(scope="module")
def superset(tmp_path_factory):
    server = Superset(superset_venv(), tmp_path_factory.mktemp("superset"))
    try:
        server.start()
        yield server
    finally:
        server.stop()


def test_superset_charts_owner_value_through_the_reader(served, superset, tmp_path):
    chromium = _chromium()
    database = superset.api(
        "POST", "/api/v1/database/", {"database_name": "gmv", "sqlalchemy_uri": served.reader_url}
    )
    # Superset stores the password and shows it masked; it logged in over TCP with it.
    assert served.reader_password not in json.dumps(database)
    dataset = superset.api(
        "POST",
        "/api/v1/dataset/",
        {"database": database["id"], "schema": "report", "table_name": "owner_value", "owners": [1]},
    )
    columns = superset.api("GET", f"/api/v1/dataset/{dataset['id']}")["result"]["columns"]
    described = {c["column_name"]: c.get("description") or "" for c in columns}
    assert "quality × rank weight" in described["value"]  # the COMMENT ON COLUMN, shown by Superset
    assert all(described.values()), described

    metric = {
        "expressionType": "SIMPLE",
        "column": {"column_name": "value"},
        "aggregate": "SUM",
        "label": "credit",
    }
    scheme = {"expressionType": "SIMPLE", "subject": "scheme", "operator": "==", "comparator": "rank_linear",
              "clause": "WHERE"}  # fmt: skip
    query = {
        "datasource": {"id": dataset["id"], "type": "table"},
        "queries": [
            {
                "columns": ["owner"],
                "metrics": [metric],
                "filters": [{"col": "scheme", "op": "==", "val": "rank_linear"}],
                "row_limit": 100,
            }
        ],  # fmt: skip
        "result_format": "json",
        "result_type": "full",
    }
    result = superset.api("POST", "/api/v1/chart/data", query)["result"][0]
    assert result["status"] == "success", result
    got = {row["owner"]: row["credit"] for row in result["data"]}
    with psycopg.connect(served.admin_url) as admin:
        expected = dict(
            admin.execute(
                "SELECT owner, sum(value) FROM report.owner_value WHERE scheme = 'rank_linear' GROUP BY owner"
            ).fetchall()
        )
    assert got.keys() == expected.keys() and len(got) == 3
    assert all(got[o] == pytest.approx(expected[o], rel=1e-12) for o in got)
    assert sum(got.values()) == pytest.approx(24.0)  # credit adds up to the number of generated images

    params = {
        "viz_type": "pie",
        "datasource": f"{dataset['id']}__table",
        "groupby": ["owner"],
        "metric": metric,
        "adhoc_filters": [scheme],
        "row_limit": 100,
        "show_labels": True,
        "show_legend": True,
        "label_type": "key_value",
    }
    chart = superset.api(
        "POST",
        "/api/v1/chart/",
        {
            "slice_name": "Credit per owner (rank_linear)",
            "viz_type": "pie",
            "datasource_id": dataset["id"],
            "datasource_type": "table",
            "params": json.dumps(params),
            "owners": [1],
        },
    )

    shot = tmp_path / "superset_owner_value.png"
    done = subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={tmp_path / 'chromium-profile'}",
            f"--screenshot={shot}",
            "--window-size=1200,800",
            "--virtual-time-budget=30000",
            f"{superset.base}/explore/?slice_id={chart['id']}&standalone=1",
        ],  # fmt: skip
        capture_output=True,
        text=True,
        timeout=180,
        env={**os.environ, "HOME": str(tmp_path)},
    )
    assert shot.is_file(), done.stderr[-3000:]
    if os.environ.get("GMV_SUPERSET_SCREENSHOT"):
        shutil.copyfile(shot, os.environ["GMV_SUPERSET_SCREENSHOT"])
    from PIL import Image

    with Image.open(shot) as image:
        rgb = np.asarray(image.convert("RGB"), dtype=np.int16)
    assert rgb.shape == (800, 1200, 3)
    # Not blank: the pie's slices cover a good part of the page in saturated colours, unlike the grey
    # background of an empty page, an error message or a login form.
    saturation = rgb.max(axis=2) - rgb.min(axis=2)
    coloured = (saturation > 60).mean()
    assert coloured > 0.05, f"chart page nearly blank: {coloured:.3f} of the pixels coloured"
    assert len(np.unique(rgb.reshape(-1, 3), axis=0)) > 100
