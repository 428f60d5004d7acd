"""The schema: migrations up and down, every promised object, frozen SQL in step with sql/."""

from pathlib import Path

import psycopg
import pytest

from gmv_sql.db.connect import connect
from gmv_sql.db.migrate import current_revision, downgrade, head_revision, upgrade
from gmv_sql.resources import migrations_dir, sql_dir

TABLES = [
    "owner",
    "license",
    "training_image",
    "generator",
    "generation_run",
    "generated_image",
    "embedding_space",
    "match",
    "valuation_scheme",
    "revenue_pool",
    "scheme_calibration",
]
REPORT_VIEWS = [
    "training_value",
    "owner_value",
    "license_value",
    "attribution",
    "royalty_statement",
    "scheme_setting",
    "rights_change",
]
CREDIT = ["training_credit", "training_credit_monthly"]  # tables since 0011 (materialized views before)


def _objects(conn, schema: str, kinds: str) -> set[str]:
    rows = conn.execute(
        "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = %s AND c.relkind = ANY(%s)",
        (schema, list(kinds)),
    ).fetchall()
    return {r[0] for r in rows}


def test_every_table_and_view_exists(conn):
    assert set(TABLES) <= _objects(conn, "gmv", "r")
    assert set(CREDIT) <= _objects(conn, "gmv", "r")
    assert set(REPORT_VIEWS) <= _objects(conn, "report", "v")
    comments = dict(
        conn.execute(
            "SELECT c.relname, obj_description(c.oid) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = 'report'"
        ).fetchall()
    )
    assert all(comments[v] for v in REPORT_VIEWS), comments
    schemes = conn.execute("SELECT name FROM gmv.valuation_scheme WHERE is_default").fetchall()
    assert schemes == [("softmax_calibrated",)]  # for new spaces (docs/VALUATION.md)
    assert {r[0] for r in conn.execute("SELECT name FROM gmv.valuation_scheme")} == {
        "rank_linear",
        "reciprocal_rank",
        "softmax_distance",
        "softmax_calibrated",
        "uniform",
    }


def test_report_columns_match_design(conn):
    design = {
        "training_value": [
            "space",
            "scheme",
            "training_id",
            "uri",
            "sha256",
            "owner",
            "license",
            "value",
            "n_matches",
            "share",
        ],
        "owner_value": ["space", "scheme", "owner", "value", "share", "n_images"],
        "attribution": [
            "space",
            "scheme",
            "generated_id",
            "generated_uri",
            "rank",
            "training_id",
            "training_uri",
            "owner",
            "license",
            "distance",
            "weight",
        ],
        "royalty_statement": ["period", "space", "scheme", "owner", "credit", "share", "amount", "currency"],
    }
    for view, columns in design.items():
        have = [
            r[0]
            for r in conn.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_schema='report' AND table_name=%s "
                "ORDER BY ordinal_position",
                (view,),
            )
        ]
        assert all(c in have for c in columns), (view, have)


def test_upgrade_downgrade_upgrade(empty_db_url):
    upgrade(empty_db_url)
    downgrade(empty_db_url, "base")
    with connect(empty_db_url, register_vector=False, autocommit=True) as conn:
        assert current_revision(conn) is None
        assert conn.execute("SELECT to_regnamespace('gmv'), to_regnamespace('report')").fetchone() == (
            None,
            None,
        )
    upgrade(empty_db_url)
    with connect(empty_db_url, autocommit=True) as conn:
        assert current_revision(conn) == head_revision()
        owner = conn.execute("INSERT INTO gmv.owner (name) VALUES ('a') RETURNING owner_id").fetchone()[0]
        lic = conn.execute("INSERT INTO gmv.license (name) VALUES ('cc-by') RETURNING license_id").fetchone()[
            0
        ]
        conn.execute(
            "INSERT INTO gmv.training_image (sha256, uri, owner_id, license_id) VALUES (%s, 'x.png', %s, %s)",
            ("a" * 64, owner, lic),
        )
        conn.execute("SELECT gmv.refresh_credit()")
        assert conn.execute("SELECT count(*) FROM report.owner_value").fetchone()[0] == 0


def test_downgrade_of_derived_objects_keeps_rows(db_url):
    with connect(db_url, autocommit=True) as conn:
        conn.execute("INSERT INTO gmv.owner (name) VALUES ('keeps')")
    downgrade(db_url, "0001_tables")
    upgrade(db_url)
    with connect(db_url, autocommit=True) as conn:
        assert conn.execute("SELECT name FROM gmv.owner").fetchall() == [("keeps",)]
        assert conn.execute("SELECT to_regclass('report.training_value')").fetchone()[0] is not None


def test_newest_frozen_sql_matches_sql_folder():
    """sql/derived/ is the source; the newest migration's frozen copy must equal it (add a migration when editing)."""
    frozen_dirs = sorted(
        p for p in (migrations_dir() / "versions").iterdir() if p.is_dir() and p.name[0].isdigit()
    )
    newest: dict[str, Path] = {}
    for folder in frozen_dirs:
        for f in folder.glob("*.sql"):
            newest[f.name] = f
    for source in (sql_dir() / "derived").glob("*.sql"):
        assert source.name in newest, f"{source.name} is applied by no migration"
        assert newest[source.name].read_text() == source.read_text(), (
            f"sql/derived/{source.name} changed since {newest[source.name].parent.name}; add a migration freezing it"
        )


def test_reader_can_read_reports_only(db_url):
    from gmv_sql.db.commands import with_user

    reader_url = with_user(db_url, "gmv_reader")
    with psycopg.connect(reader_url, autocommit=True) as reader:
        assert reader.execute("SELECT count(*) FROM report.training_value").fetchone() == (0,)
        assert reader.execute("SHOW default_transaction_read_only").fetchone() == ("on",)
        assert reader.execute("SHOW statement_timeout").fetchone() == ("1min",)
        for statement in (
            "SELECT * FROM gmv.owner",
            "SELECT * FROM gmv.training_credit",
            "INSERT INTO gmv.owner (name) VALUES ('x')",
            "DELETE FROM gmv.revenue_pool",
            "CREATE TABLE report.x (a int)",
            "CREATE TABLE public.x (a int)",
        ):
            with pytest.raises(psycopg.Error):
                reader.execute(statement)
        # Even with read-only switched off, privileges forbid writing.
        reader.execute("SET default_transaction_read_only = off")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            reader.execute("INSERT INTO gmv.owner (name) VALUES ('x')")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            reader.execute("CREATE TABLE report.x (a int)")


def test_unmigrated_database_says_run_db_up(empty_db_url, tmp_path):
    from tests.conftest import Gmv

    gmv = Gmv(empty_db_url, tmp_path)
    result = gmv("value", "refresh", ok=False) if _has_command("value") else gmv("db", "status")
    if _has_command("value"):
        assert "gmv db up" in result.output
    gmv("db", "up")
    out = gmv("db", "status", "--format", "json").output
    assert head_revision() in out


def _has_command(name: str) -> bool:
    from gmv_sql.cli import cli

    return name in cli.commands


def _derived_state(conn) -> dict:
    """Triggers, gmv functions and matview options: what 0003 and 0004 create besides views."""
    return {
        "triggers": sorted(
            conn.execute(
                "SELECT tgrelid::regclass::text, tgname FROM pg_trigger WHERE NOT tgisinternal"
            ).fetchall()
        ),
        "functions": sorted(
            r[0]
            for r in conn.execute(
                "SELECT oid::regprocedure::text FROM pg_proc WHERE pronamespace = 'gmv'::regnamespace"
            )
        ),
        # The credit relations: materialized views before 0011, tables since; vacuum_truncate off in both.
        "options": sorted(
            conn.execute(
                "SELECT relname, reloptions FROM pg_class WHERE relkind IN ('m', 'r') AND relname = ANY(%s) "
                "AND relnamespace = 'gmv'::regnamespace",
                (CREDIT,),
            ).fetchall()
        ),
    }


def test_consolidate_down_and_up_keeps_rows_and_cascades(db_url):
    """0004 re-applies sql/derived (cascades and vacuum_truncate included) and goes back to 0003's objects."""
    from tests.factories import seed

    with connect(db_url) as conn:
        world = seed(conn, n_training=6, n_generated=3, dim=4, seed=1)
        conn.execute("SELECT gmv.refresh_credit()")
        at_head = _derived_state(conn)
        counts = conn.execute(
            "SELECT (SELECT count(*) FROM gmv.training_image), (SELECT count(*) FROM gmv.owner)"
        ).fetchone()
    assert ("gmv.training_image", "cascade_delete") in at_head["triggers"]
    assert "gmv.embedding_table(text,integer)" in at_head["functions"]
    assert at_head["options"] == [
        ("training_credit", ["vacuum_truncate=false"]),
        ("training_credit_monthly", ["vacuum_truncate=false"]),
    ]
    downgrade(db_url, "0003_set_based_cascades")
    with connect(db_url) as conn:
        at_0003 = _derived_state(conn)
        assert (
            conn.execute(
                "SELECT (SELECT count(*) FROM gmv.training_image), (SELECT count(*) FROM gmv.owner)"
            ).fetchone()
            == counts
        )
    # Later revisions add triggers of their own (0006: the ledger's, 0007: the rights log, 0011: credit marks); 0003's cascades are all back.
    later = {
        t
        for t in at_head["triggers"]
        if t[0].startswith("gmv.statement") or t[1].startswith(("log_rights", "mark_credit"))
    }
    assert at_0003["triggers"] == [t for t in at_head["triggers"] if t not in later]
    assert at_0003["options"] == at_head["options"]
    assert "gmv.embedding_table(text,integer)" not in at_0003["functions"]
    upgrade(db_url)
    with connect(db_url) as conn:
        assert _derived_state(conn) == at_head
        # The re-created cascade still deletes a training image's vectors.
        space_id = world["space"].space_id
        conn.execute(
            "DELETE FROM gmv.training_image WHERE training_id = %s", (int(world["training_ids"][0]),)
        )
        assert conn.execute(f"SELECT count(*) FROM gmv.training_embedding_{space_id}").fetchone()[0] == 5


def test_embedding_table_names_agree(conn):
    from gmv_sql import spaces
    from tests.factories import seed

    space = seed(conn, n_training=1, n_generated=1, dim=2)["space"]
    for kind in spaces.KINDS:
        in_sql = conn.execute("SELECT gmv.embedding_table(%s, %s)::text", (kind, space.space_id)).fetchone()[
            0
        ]
        assert in_sql == f"gmv.{spaces.table_name(kind, space.space_id)}"
        assert space.table(kind).as_string(conn) == f'gmv."{spaces.table_name(kind, space.space_id)}"'
