"""The one reader of user-named text files: each failure is one line naming the file and the fix."""

import pytest

from gmv_sql.errors import InputError
from gmv_sql.textfile import read_user_text


def test_text_keeps_newlines_and_drops_the_bom(tmp_path):
    path = tmp_path / "m.csv"
    path.write_bytes(b'\xef\xbb\xbfpath,owner\r\n"a\r\nb",o\n')
    assert read_user_text(path, "manifest", encoding_hint="x") == 'path,owner\r\n"a\r\nb",o\n'


def test_missing_file_names_it_and_the_hint(tmp_path):
    with pytest.raises(InputError, match=r"^list file '.*nope.txt' does not exist; check the --list path$"):
        read_user_text(
            tmp_path / "nope.txt", "list file", encoding_hint="x", missing_hint="check the --list path"
        )


def test_non_utf8_names_the_byte_and_the_fix(tmp_path):
    path = tmp_path / "q.csv"
    path.write_bytes(b"sha256,quality\n\xff\xfe,1\n")
    with pytest.raises(
        InputError, match=r"quality file '.*q.csv' is not UTF-8 text \(.* at byte 15\); give a CSV$"
    ):
        read_user_text(path, "quality file", encoding_hint="give a CSV")


def test_a_folder_is_refused_in_one_line(tmp_path):
    with pytest.raises(InputError, match=r"^cannot read manifest '.*': Is a directory$"):
        read_user_text(tmp_path, "manifest", encoding_hint="x")
