"""Finding image files and checking each one: bytes hashed (identity), image fully decoded once.

A file passes when Pillow can decode its first frame completely, its pixel count is below the
decompression-bomb limit and its mode converts cleanly to 8-bit RGB (what the embedders read).
Everything else becomes a one-line reason, never an exception.
"""

from __future__ import annotations

import hashlib
import io
import itertools
import os
import stat
import warnings
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from PIL import Image, UnidentifiedImageError

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".gif"})

# Pillow's own default (about 89 megapixels, a 9459x9459 RGB image); beyond it a file is most
# likely a decompression bomb: a few KB on disk, gigabytes once decoded.
DEFAULT_MAX_PIXELS = 89_478_485

# Modes that convert to 8-bit RGB without losing meaning. 16/32-bit integer, float and exotic
# colour spaces would be clipped or mis-scaled silently, so they are refused with a reason.
SUPPORTED_MODES = frozenset({"1", "L", "LA", "La", "P", "PA", "RGB", "RGBA", "RGBa", "RGBX", "CMYK", "YCbCr"})

_CHUNK = 1 << 20
# Files up to this size are read once into memory; larger ones are streamed.
_IN_MEMORY_MAX = 256 << 20


@dataclass(frozen=True)
class CheckedFile:
    """A file that passed every check."""

    path: str  # absolute path, as stored in uri
    sha256: str
    width: int
    height: int


@dataclass(frozen=True)
class BadFile:
    path: str
    reason: str

    def line(self) -> str:
        return f"{self.path}: {self.reason}"


def scan_folder(folder: Path) -> tuple[list[Path], int]:
    """Image files under folder (recursive, sorted), and how many other files were ignored."""
    found: list[Path] = []
    ignored = 0
    for root, dirs, files in os.walk(folder, followlinks=False):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if name.startswith("."):
                continue
            if os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS:
                found.append(Path(root) / name)
            else:
                ignored += 1
    return found, ignored


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def open_regular_file(path: str) -> tuple[BinaryIO | None, str | None]:
    """(open binary file, None) or (None, reason). Opened non-blocking and checked with fstat, so a
    named pipe, a device (/dev/zero) or a socket is refused without ever being read."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except IsADirectoryError:
        return None, "unreadable: is a folder, not a file"
    except FileNotFoundError:
        return None, "unreadable: broken symbolic link" if os.path.islink(
            path
        ) else "unreadable: no such file"
    except OSError as exc:
        return None, f"unreadable: {exc.strerror or _first_line(exc)}"
    mode = os.fstat(fd).st_mode
    if stat.S_ISDIR(mode):
        os.close(fd)
        return None, "unreadable: is a folder, not a file"
    if not stat.S_ISREG(mode):
        os.close(fd)
        return None, "unreadable: not a regular file (named pipe, device or socket)"
    return os.fdopen(fd, "rb"), None


def sha256_of_handle(handle: BinaryIO) -> str:
    digest = hashlib.sha256()
    for block in iter(lambda: handle.read(_CHUNK), b""):
        digest.update(block)
    return digest.hexdigest()


def sha256_file(path: str | os.PathLike) -> str:
    """The identity of a file: sha256 of its bytes (the same digest ingest stores)."""
    with open(path, "rb") as handle:
        return sha256_of_handle(handle)


def check_file(path: str | os.PathLike, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> CheckedFile | BadFile:
    """Hash the bytes and decode the first frame; a BadFile with the reason when anything is wrong."""
    absolute = os.path.abspath(os.fspath(path))
    handle, reason = open_regular_file(absolute)
    if handle is None:
        return BadFile(absolute, reason or "unreadable")
    with handle:
        try:
            size = os.fstat(handle.fileno()).st_size
            if size == 0:
                return BadFile(absolute, "zero-byte file")
            if size <= _IN_MEMORY_MAX:  # the usual case: one read serves hashing and decoding
                data = handle.read()
                digest = hashlib.sha256(data).hexdigest()
                source: BinaryIO = io.BytesIO(data)
            else:  # huge file: stream the hash, let Pillow read only what it decodes
                digest = sha256_of_handle(handle)
                handle.seek(0)
                source = handle
        except OSError as exc:
            return BadFile(absolute, f"unreadable: {exc.strerror or _first_line(exc)}")
        return _check_image(absolute, digest, source, max_pixels)


def _check_image(absolute: str, digest: str, source: BinaryIO, max_pixels: int) -> CheckedFile | BadFile:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(source)
            width, height = image.size
            if width * height > max_pixels:
                return BadFile(
                    absolute,
                    f"decompression bomb: {width}x{height} = {width * height:,} pixels exceeds the limit of "
                    f"{max_pixels:,} (raise it with --max-pixels if the image is genuine)",
                )
            if image.mode not in SUPPORTED_MODES:
                return BadFile(
                    absolute,
                    f"unsupported image mode {image.mode!r} ({image.format}); convert it to 8-bit RGB or grayscale",
                )
            image.load()  # decodes the first frame: truncated or corrupt data fails here
    except UnidentifiedImageError:
        return BadFile(absolute, "not an image (or a format Pillow cannot read)")
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        return BadFile(absolute, f"decompression bomb: {_first_line(exc)}")
    except MemoryError:
        return BadFile(absolute, "cannot decode image: out of memory (lower --max-pixels or fix the file)")
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        return BadFile(absolute, f"truncated or corrupt image: {_first_line(exc)}")
    except Exception as exc:  # noqa: BLE001 - a hostile file must never crash a 100k-file ingest
        return BadFile(absolute, f"cannot decode image: {type(exc).__name__}: {_first_line(exc)}")
    return CheckedFile(absolute, digest, int(width), int(height))


def check_files(
    paths: Iterable[str | os.PathLike], *, workers: int = 1, max_pixels: int = DEFAULT_MAX_PIXELS
) -> Iterator[CheckedFile | BadFile]:
    """check_file over many paths, in input order. Threads suffice: hashing and decoding release the GIL.

    Only a window of files is in flight, so memory stays flat and Ctrl-C stops promptly.
    """
    if workers <= 1:
        for path in paths:
            yield check_file(path, max_pixels=max_pixels)
        return
    iterator = iter(paths)
    window = workers * 8
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="gmv-check") as pool:
        pending: deque[Future] = deque(
            pool.submit(check_file, p, max_pixels=max_pixels) for p in itertools.islice(iterator, window)
        )
        try:
            while pending:
                result = pending.popleft().result()
                for path in itertools.islice(iterator, 1):
                    pending.append(pool.submit(check_file, path, max_pixels=max_pixels))
                yield result
        finally:
            for future in pending:
                future.cancel()
