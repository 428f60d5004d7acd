"""File checks of ingest: every kind of bad file gets a one-line reason; good files of every format pass."""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from gmv_sql.ingest.files import BadFile, CheckedFile, check_file, check_files, scan_folder
from tests.factories import sha256, write_image


def png_header_only(path: Path, width: int, height: int) -> Path:
    """A tiny PNG whose header claims width x height pixels: a decompression bomb's signature."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )
    return path


def bad_files(folder: Path) -> dict[str, tuple[Path, str]]:
    """name -> (path, expected words in the reason) for every kind of bad input."""
    folder.mkdir(parents=True, exist_ok=True)
    good = write_image(folder / "source.png", size=(64, 64))
    truncated = folder / "truncated.png"
    truncated.write_bytes(good.read_bytes()[: len(good.read_bytes()) // 2])
    zero = folder / "zero.png"
    zero.write_bytes(b"")
    text = folder / "notes.jpg"
    text.write_text("this is not an image\n")
    bomb = png_header_only(folder / "bomb.png", 30_000, 30_000)
    float_tiff = folder / "float.tiff"
    Image.fromarray(np.ones((8, 8), dtype=np.float32)).save(float_tiff)
    dangling = folder / "dangling.png"
    os.symlink(folder / "does-not-exist.png", dangling)
    good.unlink()
    return {
        "truncated": (truncated, "truncated or corrupt"),
        "zero": (zero, "zero-byte"),
        "non-image": (text, "not an image"),
        "bomb": (bomb, "decompression bomb"),
        "mode": (float_tiff, "unsupported image mode 'F'"),
        "unreadable": (dangling, "unreadable"),
    }


@pytest.mark.parametrize("name", ["truncated", "zero", "non-image", "bomb", "mode", "unreadable"])
def test_every_bad_file_has_a_one_line_reason(tmp_path, name):
    path, words = bad_files(tmp_path)[name]
    result = check_file(path)
    assert isinstance(result, BadFile), result
    assert words in result.reason
    assert "\n" not in result.line() and result.line().startswith(str(path) + ": ")


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their permissions")
def test_permission_denied_is_unreadable(tmp_path):
    path = write_image(tmp_path / "secret.png")
    path.chmod(0)
    result = check_file(path)
    assert isinstance(result, BadFile) and result.reason.startswith("unreadable")


def test_a_folder_named_like_an_image_is_unreadable(tmp_path):
    (tmp_path / "dir.png").mkdir()
    result = check_file(tmp_path / "dir.png")
    assert isinstance(result, BadFile) and "folder" in result.reason


@pytest.mark.parametrize(
    "suffix,save",
    [(".png", {}), (".jpg", {"quality": 90}), (".webp", {}), (".bmp", {}), (".tiff", {}), (".gif", {})],
)
def test_good_files_of_every_format_pass_with_sha256_and_size(tmp_path, suffix, save):
    path = write_image(tmp_path / f"ok{suffix}", size=(20, 10), **save)
    result = check_file(path)
    assert isinstance(result, CheckedFile), result
    assert result.sha256 == sha256(path)
    assert (result.width, result.height) == (20, 10)
    assert result.path == str(path.resolve())


def test_animated_gif_uses_first_frame(tmp_path):
    frames = [Image.new("P", (8, 8), color=i) for i in range(3)]
    path = tmp_path / "anim.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:])
    assert isinstance(check_file(path), CheckedFile)


def test_max_pixels_is_configurable(tmp_path):
    path = write_image(tmp_path / "big.png", size=(100, 100))
    assert isinstance(check_file(path, max_pixels=10_000), CheckedFile)
    result = check_file(path, max_pixels=9_999)
    assert isinstance(result, BadFile) and "--max-pixels" in result.reason


def test_scan_is_recursive_sorted_and_filters_extensions(tmp_path):
    write_image(tmp_path / "b" / "two.JPG")
    write_image(tmp_path / "a" / "one.png")
    write_image(tmp_path / "three.webp")
    (tmp_path / "readme.txt").write_text("x")
    (tmp_path / ".hidden.png").write_bytes(b"x")
    files, ignored = scan_folder(tmp_path)
    assert [p.relative_to(tmp_path).as_posix() for p in files] == ["three.webp", "a/one.png", "b/two.JPG"]
    assert ignored == 1


def test_threaded_check_keeps_input_order(tmp_path):
    paths = [write_image(tmp_path / f"{i:03d}.png", seed=i) for i in range(40)]
    paths.insert(7, tmp_path / "missing.png")
    results = list(check_files(paths, workers=4))
    assert [r.path for r in results] == [str(p) for p in paths]
    assert isinstance(results[7], BadFile)
    assert sum(isinstance(r, CheckedFile) for r in results) == 40


def test_pipes_and_devices_are_refused_without_reading(tmp_path):
    os.mkfifo(tmp_path / "pipe.png")  # opening it for a blocking read would hang forever
    for path in (tmp_path / "pipe.png", Path("/dev/zero")):
        result = check_file(path)
        assert isinstance(result, BadFile) and "not a regular file" in result.reason, result
