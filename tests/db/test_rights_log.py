"""The rights log: triggers write gmv.rights_change whoever changes a right; report.rights_change shows
it to BI (gmv_reader may read the view, not the table), with a comment on the view and every column."""

from __future__ import annotations

import psycopg
import pytest

from tests.factories import reader_url, seed


def _log(conn) -> list[tuple]:
    return conn.execute(
        "SELECT target, training_id, license, field, before, after FROM report.rights_change ORDER BY change_id"
    ).fetchall()


def test_view_and_every_column_have_comments(conn):
    assert conn.execute("SELECT obj_description('report.rights_change'::regclass)").fetchone()[0]
    columns = conn.execute(
        "SELECT a.attname, col_description(a.attrelid, a.attnum) FROM pg_attribute AS a"
        " WHERE a.attrelid = 'report.rights_change'::regclass AND a.attnum > 0 AND NOT a.attisdropped"
    ).fetchall()
    assert len(columns) >= 10
    assert [name for name, comment in columns if not comment] == []


def test_reader_reads_the_view_not_the_table(conn, db_url):
    seed(conn, n_training=2, n_generated=1, dim=4)
    conn.execute("UPDATE gmv.training_image SET opted_out = true")
    with psycopg.connect(reader_url(db_url), autocommit=True) as reader:
        assert reader.execute("SELECT count(*) FROM report.rights_change").fetchone() == (2,)
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            reader.execute("SELECT * FROM gmv.rights_change")
        with pytest.raises(psycopg.Error):
            reader.execute("DELETE FROM report.rights_change")


def test_every_kind_of_change_is_logged_with_who_and_when(conn):
    world = seed(conn, n_training=3, n_generated=1, dim=4, licenses=["cc-by"])
    first, second = (int(t) for t in world["training_ids"][:2])
    conn.execute("SET application_name = 'by hand'")
    with conn.transaction():
        conn.execute(
            "UPDATE gmv.training_image SET opted_out = true, opted_out_from = '2026-05-01' WHERE training_id = %s",
            (first,),
        )
        conn.execute("UPDATE gmv.training_image SET opted_out_from = NULL WHERE training_id = %s", (first,))
    conn.execute(
        "UPDATE gmv.training_image SET opted_out = false, opted_out_from = NULL WHERE training_id = %s",
        (first,),
    )
    conn.execute("UPDATE gmv.license SET royalty_bearing = false, excluded = true, url = 'u'")
    conn.execute("INSERT INTO gmv.license (name, excluded) VALUES ('banned', true)")
    conn.execute(
        "UPDATE gmv.training_image SET opted_out = opted_out WHERE training_id = %s", (second,)
    )  # no change
    assert _log(conn) == [
        ("training_image", first, "cc-by", "opted_out", "false", "true"),
        ("training_image", first, "cc-by", "opted_out_from", None, "2026-05-01"),
        ("training_image", first, "cc-by", "opted_out_from", "2026-05-01", None),
        ("training_image", first, "cc-by", "opted_out", "true", "false"),
        ("license", None, "cc-by", "excluded", "false", "true"),
        ("license", None, "cc-by", "royalty_bearing", "true", "false"),
        ("license", None, "cc-by", "url", None, "u"),
        ("license", None, "banned", "excluded", None, "true"),
    ]
    who = conn.execute(
        "SELECT DISTINCT changed_by, session_user_name, application, changed_at <= now() FROM report.rights_change"
    ).fetchall()
    user = conn.execute("SELECT current_user").fetchone()[0]
    assert who == [(user, user, "by hand", True)]
    # SET ROLE: changed_by is the role in effect, session_user_name who logged in.
    conn.execute("DROP ROLE IF EXISTS gmv_test_clerk")
    conn.execute("CREATE ROLE gmv_test_clerk")
    try:
        conn.execute("GRANT USAGE ON SCHEMA gmv TO gmv_test_clerk")
        conn.execute("GRANT SELECT, UPDATE ON gmv.training_image TO gmv_test_clerk")
        conn.execute("GRANT SELECT, INSERT ON gmv.rights_change TO gmv_test_clerk")
        conn.execute("GRANT SELECT, DELETE ON gmv.match_coverage TO gmv_test_clerk")
        with conn.transaction():
            conn.execute("SET LOCAL ROLE gmv_test_clerk")
            conn.execute("UPDATE gmv.training_image SET opted_out = true WHERE training_id = %s", (second,))
        last = conn.execute(
            "SELECT changed_by, session_user_name FROM gmv.rights_change ORDER BY change_id DESC LIMIT 1"
        ).fetchone()
        assert last == ("gmv_test_clerk", user)
    finally:
        conn.execute("DROP OWNED BY gmv_test_clerk")
        conn.execute("DROP ROLE gmv_test_clerk")


def test_a_rights_change_makes_the_image_compete_again(conn):
    world = seed(conn, n_training=4, n_generated=1, dim=4, k=2)
    space_id = world["space"].space_id
    conn.execute(
        "INSERT INTO gmv.match_coverage SELECT %s, training_id, embedded_at FROM gmv.training_embedding_1",
        (space_id,),
    )
    first = int(world["training_ids"][0])
    conn.execute(
        "UPDATE gmv.training_image SET uri = uri || '?' WHERE training_id = %s", (first,)
    )  # not a right
    assert conn.execute("SELECT count(*) FROM gmv.match_coverage").fetchone() == (4,)
    conn.execute("UPDATE gmv.training_image SET opted_out = true WHERE training_id = %s", (first,))
    assert conn.execute(
        "SELECT count(*) FROM gmv.match_coverage WHERE training_id = %s", (first,)
    ).fetchone() == (0,)
    conn.execute("UPDATE gmv.license SET royalty_bearing = false")  # not an eligibility change
    assert conn.execute("SELECT count(*) FROM gmv.match_coverage").fetchone() == (3,)
    conn.execute("UPDATE gmv.license SET excluded = true")
    assert conn.execute("SELECT count(*) FROM gmv.match_coverage").fetchone() == (0,)
