"""`gmv rights` and `gmv license`: opt-outs and licence terms without SQL, every change logged,
manifest columns opted_out / royalty_bearing honoured at ingest, bad input refused writing nothing."""

from __future__ import annotations

from pathlib import Path

from tests.factories import refused, seed, sha256, write_image


def _rights(conn) -> list[tuple]:
    """(sha256, opted_out, opted_out_from) of every training image, by uri (the files' order)."""
    return conn.execute(
        "SELECT t.sha256, t.opted_out, t.opted_out_from::text FROM gmv.training_image AS t ORDER BY t.uri"
    ).fetchall()


def _log(conn) -> list[tuple]:
    return conn.execute(
        "SELECT target, coalesce(sha256, license), field, before, after FROM report.rights_change ORDER BY change_id"
    ).fetchall()


def _ingest_files(gmv, tmp_path: Path, n: int = 4) -> list[Path]:
    files = [write_image(tmp_path / "imgs" / f"t{i}.png", seed=100 + i) for i in range(n)]
    manifest = tmp_path / "m.csv"
    manifest.write_text(
        "path,owner,license\n"
        + "".join(f"{f},{'ann' if i < 2 else 'bob'},cc-by\n" for i, f in enumerate(files))
    )
    gmv("ingest", "training", tmp_path / "imgs", "--manifest", manifest, "-q")
    return files


def test_opt_out_by_sha256_path_and_owner_then_opt_in(gmv, conn, tmp_path):
    files = _ingest_files(gmv, tmp_path)
    shas = [sha256(f) for f in files]
    out = gmv("rights", "opt-out", shas[0].upper(), str(files[1]), "--from", "2026-03-01").output
    assert "opted out 2 training images for generated images created on or after 2026-03-01 (2 changed" in out
    assert _rights(conn) == [
        (shas[0], True, "2026-03-01"),
        (shas[1], True, "2026-03-01"),
        (shas[2], False, None),
        (shas[3], False, None),
    ]
    # By owner, without a date: every generated image; bob's two images.
    out = gmv("rights", "opt-out", "--owner", "bob").output
    assert "opted out 2 training images for every generated image (2 changed, 0 already so)" in out
    assert [r[1:] for r in _rights(conn)][2:] == [(True, None), (True, None)]
    # The same again changes nothing and logs nothing.
    logged = len(_log(conn))
    assert "(0 changed, 2 already so)" in gmv("rights", "opt-out", "--owner", "bob").output
    assert len(_log(conn)) == logged
    # A path as ingested still names the image after its file is gone.
    files[2].unlink()
    assert "opted in 1 training images (1 changed" in gmv("rights", "opt-in", str(files[2])).output
    assert _rights(conn)[2][1:] == (False, None)
    # One row per changed field; rows of one statement in training_id order, hence compared sorted.
    log = _log(conn)
    assert sorted(log[:4]) == sorted(
        [
            ("training_image", shas[0], "opted_out", "false", "true"),
            ("training_image", shas[0], "opted_out_from", None, "2026-03-01"),
            ("training_image", shas[1], "opted_out", "false", "true"),
            ("training_image", shas[1], "opted_out_from", None, "2026-03-01"),
        ]
    )
    assert sorted(log[4:6]) == sorted(
        [
            ("training_image", shas[2], "opted_out", "false", "true"),
            ("training_image", shas[3], "opted_out", "false", "true"),
        ]
    )
    assert log[6:] == [("training_image", shas[2], "opted_out", "true", "false")]
    who = conn.execute(
        "SELECT DISTINCT changed_by = current_user, session_user_name = session_user, application LIKE 'gmv rights %%'"
        " , owner FROM report.rights_change ORDER BY owner"
    ).fetchall()
    assert who == [(True, True, True, "ann"), (True, True, True, "bob")]
    shown = gmv("rights", "log", "--owner", "ann", "--format", "csv").output
    assert shown.count("\n") == 1 + 4 and "opted_out_from" in shown


def test_opt_out_tells_which_generated_images_the_next_match_rematches(gmv, conn):
    world = seed(conn, n_training=40, n_generated=12, dim=8, k=3, owners=["ann", "bob"])
    n_ann = conn.execute(
        "SELECT count(DISTINCT m.generated_id) FROM gmv.match m JOIN gmv.training_image t USING (training_id)"
        " JOIN gmv.owner o USING (owner_id) WHERE o.name = 'ann'"
    ).fetchone()[0]
    assert n_ann > 0
    out = gmv("rights", "opt-out", "--owner", "ann").output
    assert f"space 'test': {n_ann:,} generated images will be re-matched without them" in out
    assert "next: gmv match --space test && gmv value refresh" in out
    # Seeded images were created 2026-01-15: an opt-out from February spares them.
    gmv("rights", "opt-in", "--owner", "ann")
    out = gmv("rights", "opt-out", "--owner", "ann", "--from", "2026-02-01").output
    assert "will be re-matched" not in out
    assert world["space"].name == "test"


def test_license_set_changes_terms_and_logs_them(gmv, conn):
    seed(conn, n_training=6, n_generated=2, dim=4, licenses=["cc-by", "cc-by-nc"])
    out = gmv(
        "license",
        "set",
        "cc-by-nc",
        "--no-royalty-bearing",
        "--url",
        "https://example.org/nc",
        "--format",
        "csv",
    )
    assert out.output.splitlines()[:2] == [
        "license,royalty_bearing,excluded,url,n_training_images",
        "cc-by-nc,False,False,https://example.org/nc,3",
    ]
    gmv("license", "set", "cc-by-nc", "--excluded")
    gmv("license", "set", "cc-by-nc", "--url", "")
    terms = conn.execute(
        "SELECT royalty_bearing, excluded, url FROM gmv.license WHERE name = 'cc-by-nc'"
    ).fetchone()
    assert terms == (False, True, None)
    assert _log(conn) == [
        ("license", "cc-by-nc", "royalty_bearing", "true", "false"),
        ("license", "cc-by-nc", "url", None, "https://example.org/nc"),
        ("license", "cc-by-nc", "excluded", "false", "true"),
        ("license", "cc-by-nc", "url", "https://example.org/nc", None),
    ]
    assert "cc-by-nc" in gmv("license", "list").output


def test_a_rights_change_made_in_sql_is_logged_too(conn):
    seed(conn, n_training=3, n_generated=1, dim=4)
    conn.execute("UPDATE gmv.training_image SET opted_out = true WHERE training_id = 1")
    conn.execute("UPDATE gmv.training_image SET attributes = '{\"a\": 1}'")  # not a right: not logged
    assert [r[2:] for r in _log(conn)] == [("opted_out", "false", "true")]
    assert conn.execute("SELECT application FROM report.rights_change").fetchone()[0] is not None


def test_bad_input_is_one_line_and_writes_nothing(gmv, conn, tmp_path):
    files = _ingest_files(gmv, tmp_path, n=2)
    before, log = _rights(conn), _log(conn)
    cases = [
        (("rights", "opt-out", "0" * 64), "no training image has sha256"),
        (
            ("rights", "opt-out", str(files[0]), str(tmp_path / "nope.png")),
            "is not an ingested training image",
        ),
        (("rights", "opt-out", str(files[0]), "--owner", "nobody"), "no owner named 'nobody'"),
        (("rights", "opt-out", str(files[0]), "--from", "2026-02-30"), "--from '2026-02-30' is not a date"),
        (("rights", "opt-out", str(files[0]), "--from", "March"), "use YYYY-MM-DD"),
        (("rights", "opt-out"), "needs training images"),
        (("rights", "opt-in", "--owner", "nobody"), "no owner named 'nobody'"),
        (("license", "set", "gpl", "--excluded"), "no licence named 'gpl' (known: 'cc-by')"),
        (("license", "set", "cc-by"), "nothing to set for licence 'cc-by'"),
    ]
    for args, reason in cases:
        refused(gmv, *args, reason=reason)
    assert _rights(conn) == before and _log(conn) == log
    # An unreadable target that is also not ingested: the file exists but holds other bytes.
    other = write_image(tmp_path / "other.png", seed=999)
    refused(gmv, "rights", "opt-in", str(other), reason="is not an ingested training image")


def test_manifest_opted_out_and_royalty_bearing_are_honoured(gmv, conn, tmp_path):
    files = [write_image(tmp_path / f"m{i}.png", seed=200 + i) for i in range(3)]
    manifest = tmp_path / "m.csv"
    manifest.write_text(
        "path,owner,license,opted_out,royalty_bearing,caption\n"
        f"{files[0]},ann,cc-by-nc,yes,false,a\n{files[1]},ann,cc-by-nc,,false,b\n{files[2]},bob,cc0,0,,c\n"
    )
    gmv("ingest", "training", tmp_path, "--manifest", manifest, "-q")
    rows = conn.execute(
        "SELECT t.opted_out, l.name, l.royalty_bearing, t.attributes FROM gmv.training_image t"
        " JOIN gmv.license l USING (license_id) ORDER BY t.uri"
    ).fetchall()
    assert rows == [
        (True, "cc-by-nc", False, {"caption": "a"}),
        (False, "cc-by-nc", False, {"caption": "b"}),
        (False, "cc0", True, {"caption": "c"}),
    ]
    assert _log(conn) == [
        ("license", "cc-by-nc", "royalty_bearing", None, "false"),
        ("training_image", sha256(files[0]), "opted_out", None, "true"),
    ]


def test_manifest_rights_conflicts_are_refused_before_anything_is_stored(gmv, conn, tmp_path):
    files = [write_image(tmp_path / f"c{i}.png", seed=300 + i) for i in range(2)]
    seed(conn, n_training=1, n_generated=1, dim=4, licenses=["cc-by"])
    stored = conn.execute("SELECT count(*) FROM gmv.training_image").fetchone()[0]
    two = tmp_path / "two.csv"
    two.write_text(f"path,owner,license,royalty_bearing\n{files[0]},ann,x,true\n{files[1]},ann,x,false\n")
    refused(
        gmv,
        "ingest",
        "training",
        tmp_path,
        "--manifest",
        two,
        "-q",
        reason="both royalty_bearing true and false",
    )
    clash = tmp_path / "clash.csv"
    clash.write_text(f"path,owner,license,royalty_bearing\n{files[0]},ann,cc-by,false\n")
    refused(
        gmv,
        "ingest",
        "training",
        tmp_path,
        "--manifest",
        clash,
        "-q",
        reason="gmv license set cc-by --no-royalty-bearing",
    )
    bad = tmp_path / "bad.csv"
    bad.write_text(f"path,owner,license,opted_out\n{files[0]},ann,cc-by,maybe\n")
    out = gmv("ingest", "training", tmp_path, "--manifest", bad, "--on-error", "fail", ok=False).output
    assert "opted_out 'maybe' must be true or false" in out
    assert conn.execute("SELECT count(*) FROM gmv.training_image").fetchone()[0] == stored
    assert conn.execute("SELECT count(*) FROM gmv.license WHERE name = 'x'").fetchone()[0] == 0


def test_reports_note_only_matches_a_dated_opt_out_covers(gmv, conn):
    seed(conn, n_training=30, n_generated=10, dim=4, k=3, owners=["ann", "bob"])  # outputs of 2026-01-15
    gmv("value", "refresh")
    gmv("rights", "opt-out", "--owner", "ann", "--from", "2026-02-01")
    assert "note:" not in gmv("report", "owners").output
    gmv("rights", "opt-out", "--owner", "ann", "--from", "2026-01-15")
    assert "point at training images opted out" in gmv("report", "owners").output
