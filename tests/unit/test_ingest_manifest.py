"""Manifests: CSV and JSONL rows, defaults from the command line, broken rows as one-line reasons."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from gmv_sql.errors import InputError
from gmv_sql.ingest.manifest import parse_created_at, parse_quality, read_manifest


def test_training_csv_with_extra_columns_and_defaults(tmp_path):
    manifest = tmp_path / "m.csv"
    manifest.write_text(
        "path,owner,license,caption,source\n"
        'a.png,alice,cc-by,"a cat, sitting",flickr\n'
        "/abs/b.png,,,,\n"
        'sub/c.png,bob,,"two\nlines",\n'
    )
    rows, bad = read_manifest(
        manifest, "training", base=tmp_path / "imgs", default_owner="dora", default_license="cc0"
    )
    assert bad == []
    assert [r.path for r in rows] == [
        str(tmp_path / "imgs" / "a.png"),
        "/abs/b.png",
        str(tmp_path / "imgs" / "sub/c.png"),
    ]
    assert [(r.owner, r.license) for r in rows] == [("alice", "cc-by"), ("dora", "cc0"), ("bob", "cc0")]
    assert rows[0].attributes == {"caption": "a cat, sitting", "source": "flickr"}
    assert rows[1].attributes == {}
    assert rows[2].attributes == {"caption": "two\nlines"}


def test_broken_training_rows_are_reported_one_line_each(tmp_path):
    manifest = tmp_path / "m.csv"
    manifest.write_text(
        "path,owner,license\nok.png,alice,cc\n,alice,cc\nx.png,,cc\ny.png,alice\nz.png,alice,,\n"
    )
    rows, bad = read_manifest(manifest, "training", base=tmp_path)
    assert [r.owner for r in rows] == ["alice"]
    lines = [b.line() for b in bad]
    assert lines == [
        "m.csv:3: no path",
        "m.csv:4: no owner (fill the owner column or pass --owner)",
        "m.csv:5: 2 fields, the header has 3",
        "m.csv:6: 4 fields, the header has 3",
    ]


def test_generated_jsonl_rows_and_broken_ones(tmp_path):
    manifest = tmp_path / "gen.jsonl"
    lines = [
        {
            "path": "g1.png",
            "quality": 0.5,
            "created_at": "2026-01-31T12:00:00Z",
            "prompt": "a cat",
            "seed": 7,
        },
        {"path": "g2.png"},
        "not json {",
        {"path": "g3.png", "quality": -1},
        {"path": "g4.png", "quality": "nan"},
        {"path": "g5.png", "created_at": "yesterday"},
        [1, 2],
        {"quality": 1},
    ]
    manifest.write_text("\n".join(x if isinstance(x, str) else json.dumps(x) for x in lines) + "\n\n")
    rows, bad = read_manifest(manifest, "generated", base=tmp_path)
    assert [r.path for r in rows] == [str(tmp_path / "g1.png"), str(tmp_path / "g2.png")]
    assert rows[0].quality == 0.5 and rows[0].prompt == "a cat" and rows[0].attributes == {"seed": 7}
    assert rows[0].created_at == dt.datetime(2026, 1, 31, 12, tzinfo=dt.timezone.utc)
    assert rows[1].quality == 1.0 and rows[1].created_at is None
    reasons = [b.line() for b in bad]
    assert reasons[0].startswith("gen.jsonl:3: invalid JSON")
    assert reasons[1] == "gen.jsonl:4: quality -1 must be a finite number >= 0"
    assert reasons[2] == "gen.jsonl:5: quality 'nan' must be a finite number >= 0"
    assert reasons[3].startswith("gen.jsonl:6: created_at 'yesterday' is not an ISO 8601")
    assert reasons[4] == "gen.jsonl:7: expected a JSON object, got list"
    assert reasons[5] == "gen.jsonl:8: no path"


@pytest.mark.parametrize("value,expected", [(None, 1.0), ("", 1.0), ("0", 0.0), (2, 2.0), ("1e-3", 0.001)])
def test_quality_values(value, expected):
    assert parse_quality(value) == expected


@pytest.mark.parametrize("value", ["-0.1", "inf", "x", True, [1]])
def test_bad_quality_values(value):
    with pytest.raises(ValueError):
        parse_quality(value)


def test_created_at_without_offset_is_utc():
    assert parse_created_at("2026-02-01") == dt.datetime(2026, 2, 1, tzinfo=dt.timezone.utc)
    assert parse_created_at("2026-02-01T10:00:00+02:00").utcoffset() == dt.timedelta(hours=2)


@pytest.mark.parametrize(
    "name,content,words",
    [
        ("m.txt", "path\n", "must end in .csv or .jsonl"),
        ("m.csv", "", "is empty"),
        ("m.csv", "file,owner\n", "no 'path' column"),
        ("m.csv", "path,path\n", "repeats column"),
    ],
)
def test_unusable_manifests_are_one_line_errors(tmp_path, name, content, words):
    manifest = tmp_path / name
    manifest.write_text(content)
    with pytest.raises(InputError, match=words):
        read_manifest(manifest, "training", base=tmp_path)


def test_missing_manifest(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        read_manifest(tmp_path / "nope.csv", "training", base=tmp_path)


def test_control_characters_in_values_are_kept_verbatim(tmp_path):
    csv_manifest = tmp_path / "m.csv"
    with csv_manifest.open("w", newline="", encoding="utf-8") as fh:
        fh.write('path,owner,license,note\r\na.png,o,l,"\rcarriage\r\nand\u2028separator"\r\n')
    rows, bad = read_manifest(csv_manifest, "training", base=tmp_path)
    assert bad == [] and rows[0].attributes == {"note": "\rcarriage\r\nand\u2028separator"}
    jsonl = tmp_path / "m.jsonl"
    jsonl.write_text(
        json.dumps(
            {"path": "a.png", "owner": "o", "license": "l", "note": "x\u2028y\x1cz"}, ensure_ascii=False
        )
        + "\r\n",
        encoding="utf-8",
        newline="",
    )
    rows, bad = read_manifest(jsonl, "training", base=tmp_path)
    assert bad == [] and rows[0].attributes == {"note": "x\u2028y\x1cz"}
