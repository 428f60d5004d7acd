"""`gmv db backup` / `gmv db restore`: a populated database comes back equal, row for row."""

from __future__ import annotations

import hashlib

import psycopg
from psycopg import sql

from gmv_sql.db.connect import connect
from tests.conftest import Gmv
from tests.factories import fingerprints, refused, relations, seed


def _differences(a: dict, b: dict) -> list:
    out = []
    for key in a.keys() | b.keys():
        if isinstance(a.get(key), dict) and isinstance(b.get(key), dict):
            out += [f"{key}.{k}" for k in a[key].keys() | b[key].keys() if a[key].get(k) != b[key].get(k)]
        elif a.get(key) != b.get(key):
            out.append(key)
    return sorted(out)


def _rows(conn, schema: str, relation: str) -> list[tuple]:
    """The rows, sorted, with doubles to 12 significant digits: the credit views sum doubles in the order
    the plan reads them, and the plan depends on statistics (measured: the same database refreshed
    before and after ANALYZE differs in the last bit for 10 of 236 credit rows). Tables compare exactly."""
    rows = conn.execute(
        sql.SQL("SELECT * FROM {}.{}").format(sql.Identifier(schema), sql.Identifier(relation))
    ).fetchall()
    rounded = [tuple(float(f"{v:.12g}") if isinstance(v, float) else v for v in row) for row in rows]
    return sorted(rounded, key=repr)


def _state(url: str) -> dict:
    """Everything a restore must bring back: rows of every table, materialized and report view, index
    definitions, grants, comments and the migration revision."""
    with connect(url) as conn:
        state = {"gmv": fingerprints(conn, "gmv", "r")}
        for schema, kinds in (("gmv", "m"), ("report", "v"), ("owner_report", "v")):
            state[schema + " views"] = {v: _rows(conn, schema, v) for v in relations(conn, schema, kinds)}
        for name, stmt in {
            "indexes": "SELECT schemaname, indexname, indexdef FROM pg_indexes WHERE schemaname = 'gmv' ORDER BY 2",
            "grants": "SELECT c.oid::regclass::text, a.grantee::regrole::text, a.privilege_type "
            "FROM pg_class c, aclexplode(coalesce(c.relacl, acldefault('r', c.relowner))) a "
            "WHERE c.relnamespace IN ('gmv'::regnamespace, 'report'::regnamespace, 'owner_report'::regnamespace) "
            "AND a.grantee <> c.relowner ORDER BY 1, 2, 3",
            "comments": "SELECT c.oid::regclass::text, a.attname, col_description(c.oid, a.attnum) FROM pg_class c "
            "JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 "
            "WHERE c.relnamespace = 'report'::regnamespace ORDER BY 1, 2",
            "revision": "SELECT version_num FROM public.alembic_version",
        }.items():
            state[name] = conn.execute(stmt).fetchall()
    return state


def test_backup_restores_row_for_row_into_an_empty_database(gmv, conn, db_url, empty_db_url, tmp_path):
    seed(conn, n_training=60, n_generated=20, dim=8, k=5, pool="1000.00", owners=3)
    seed(
        conn,
        n_training=30,
        n_generated=10,
        dim=6,
        k=3,
        space="half",
        storage="halfvec",
        owners=["h-0"],
        seed=1,
    )
    gmv("value", "refresh")
    gmv("db", "grant-owner", "owner-0")
    # A login whose role another server would lack: restore names its owner.
    conn.execute(
        "INSERT INTO gmv.owner_login (role_name, owner_id) SELECT 'gmv_owner_elsewhere', owner_id "
        "FROM gmv.owner WHERE name = 'owner-1'"
    )
    before = _state(db_url)
    assert (
        before["gmv"]["match"][0] == 20 * 5 + 10 * 3 and len(before["report views"]["royalty_statement"]) == 3
    )
    assert ("report.owner_value", "gmv_reader", "SELECT") in before["grants"]
    assert any("hnsw" in row[2] for row in before["indexes"])

    file = tmp_path / "gmv.dump"
    out = gmv("db", "backup", file).output
    digest = hashlib.sha256(file.read_bytes()).hexdigest()
    assert f"sha256 {digest}" in out and str(file) in out

    target = Gmv(empty_db_url, tmp_path / "restored_home")
    out = target("db", "restore", file).output
    assert "owners whose login roles this server lacks: owner-1;" in out
    assert not _differences(_state(empty_db_url), before)
    target("db", "status")  # at head, usable

    # Restoring over a database that holds anything is refused, and changes nothing.
    with psycopg.connect(empty_db_url, autocommit=True) as restored:
        restored.execute("DELETE FROM gmv.revenue_pool")
    changed = _state(empty_db_url)
    refused(target, "db", "restore", file, reason="is not empty")
    assert not _differences(_state(empty_db_url), changed)
    # --force replaces gmv's schemas.
    target("db", "restore", file, "--force")
    assert not _differences(_state(empty_db_url), before)


def test_restore_refuses_a_file_that_is_not_a_backup(gmv, tmp_path):
    bogus = tmp_path / "not-a-dump.sql"
    bogus.write_text("SELECT 1;\n")
    refused(gmv, "db", "restore", bogus, reason="not a pg_dump custom-format archive")
    refused(gmv, "db", "restore", tmp_path / "missing.dump", reason="does not exist")
    refused(gmv, "db", "backup", tmp_path / "no" / "such" / "folder.dump", reason="does not exist")
