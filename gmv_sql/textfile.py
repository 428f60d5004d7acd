"""Reading a text file a user named (manifest, membership list, quality CSV): one set of one-line errors."""

from __future__ import annotations

from pathlib import Path

from gmv_sql.errors import InputError


def read_user_text(path: Path, what: str, *, encoding_hint: str, missing_hint: str = "check the path") -> str:
    """The file's text (UTF-8, a BOM dropped; newlines kept verbatim for the csv module).

    what names the file in errors ("manifest", "list file"); encoding_hint says what the file should hold.
    """
    try:
        with Path(path).open(encoding="utf-8-sig", newline="") as handle:
            return handle.read()
    except FileNotFoundError:
        raise InputError(f"{what} {str(path)!r} does not exist; {missing_hint}") from None
    except UnicodeDecodeError as exc:
        raise InputError(
            f"{what} {str(path)!r} is not UTF-8 text ({exc.reason} at byte {exc.start}); {encoding_hint}"
        ) from None
    except OSError as exc:
        raise InputError(f"cannot read {what} {str(path)!r}: {exc.strerror}") from None
