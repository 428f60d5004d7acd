"""What gmv needs of a server (PostgreSQL >= 16, pgvector >= 0.8), decided from the versions alone.

A real server cannot be made to report an old PostgreSQL or an old pgvector (pgvector ships only its
newest install script; ALTER EXTENSION goes forward only), so the decision is a pure function that
check_pgvector feeds from the server; tests/db/test_server_requirements.py checks that path for real.
"""

import pytest

from gmv_sql.db.connect import MIN_PGVECTOR, MIN_SERVER_VERSION, parse_version, pgvector_refusal

WHERE = "database 'gmv' on db.example"


def test_parse_version_compares_as_numbers():
    assert parse_version("0.10.0") > parse_version("0.8.0") > parse_version("0.7.4")
    assert parse_version("0.8") == (0, 8) and parse_version("0.8") < MIN_PGVECTOR  # (0, 8) < (0, 8, 0)
    assert parse_version("17.2 (Debian 17.2-1.pgdg120+1)") >= (MIN_SERVER_VERSION // 10000,)


@pytest.mark.parametrize(
    ("server_version", "installed", "available"),
    [
        (160000, "0.8.0", "0.8.0"),
        (170002, "0.8.1", "0.8.1"),
        (180000, "0.10.0", "0.10.0"),  # "0.10.0" < "0.8" as strings: must still pass
        (170002, "0.8.0", None),
        (160004, "0.12.3", "0.12.3"),
    ],
)
def test_supported_servers_pass(server_version, installed, available):
    assert pgvector_refusal(WHERE, server_version, installed, available) is None


def test_missing_extension_passes_only_where_gmv_db_up_may_create_it():
    assert pgvector_refusal(WHERE, 170002, None, "0.8.0", allow_missing=True) is None
    reason = pgvector_refusal(WHERE, 170002, None, "0.8.0")
    assert reason == f"{WHERE} is not set up for gmv (no vector extension yet); run `gmv db up`"


@pytest.mark.parametrize(
    ("server_version", "installed", "available", "says"),
    [
        (None, None, None, "has no pgvector extension; install pgvector >= 0.8 on that server"),
        (150008, "0.8.0", "0.8.0", "runs PostgreSQL 15, gmv needs 16 or newer"),
        (140000, None, "0.8.0", "runs PostgreSQL 14, gmv needs 16 or newer"),
        (170002, "0.7.4", "0.8.0", "has pgvector 0.7.4, gmv needs >= 0.8 (iterative index scans)"),
        (170002, None, "0.7.0", "has pgvector 0.7.0, gmv needs >= 0.8"),
        (170002, "0.5", "0.5", "has pgvector 0.5, gmv needs >= 0.8"),
    ],
    ids=["no-pgvector", "pg15", "pg14-not-installed", "pgvector-0.7.4", "available-0.7.0", "pgvector-0.5"],
)
@pytest.mark.parametrize("allow_missing", [False, True])
def test_refusals_are_one_line_and_say_what_to_do(server_version, installed, available, says, allow_missing):
    reason = pgvector_refusal(
        WHERE, server_version or 170002, installed, available, allow_missing=allow_missing
    )
    assert reason is not None and reason.startswith(WHERE) and says in reason, reason
    assert "\n" not in reason
    if "pgvector 0." in says:
        assert "ALTER EXTENSION vector UPDATE" in reason
    if "PostgreSQL" in says:
        assert "upgrade the server" in reason
