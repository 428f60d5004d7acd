"""Who may log in: password files under GMV_HOME/secrets and the roles' passwords.

Every TCP login to the embedded server needs a SCRAM password (see embedded.PG_HBA). Generated passwords
live in GMV_HOME/secrets/ (folder 0700, files 0600), one file per role and server, and are printed only
when asked (`--show-password`). Passwords are hashed here (libpq's SCRAM-SHA-256) before they are sent,
so the plain text never reaches the server's statement log.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
from pathlib import Path

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

from gmv_sql.config import gmv_home
from gmv_sql.errors import ConfigError, DatabaseError
from gmv_sql.resources import query

READER_ROLE = "gmv_reader"
ADMIN_ROLE = "postgres"
READER_PASSWORD_ENV = "GMV_READER_PASSWORD"


def secrets_dir() -> Path:
    path = gmv_home() / "secrets"
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    path.chmod(0o700)
    return path


def server_key(url: str, embedded: bool) -> str:
    """A file-name-safe name for the server and database behind url (passwords are per server)."""
    if embedded:
        return "embedded"
    params = conninfo_to_dict(url)
    where = f"{params.get('host') or 'local'}-{params.get('port') or 5432}-{params.get('dbname') or ''}"
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", where).strip("_")[:60]
    return f"{slug}-{hashlib.sha256(where.encode()).hexdigest()[:8]}"


def password_file(role: str, url: str, embedded: bool) -> Path:
    return secrets_dir() / f"{role}@{server_key(url, embedded)}.password"


def read_password(path: Path) -> str | None:
    try:
        text = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    return text or None


def write_password(path: Path, password: str) -> None:
    """Write a password file readable by its owner only (created 0600, never wider, even briefly)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(password + "\n")
    os.replace(tmp, path)


def generate_password() -> str:
    return secrets.token_urlsafe(24)


def set_role_password(conn: psycopg.Connection, role: str, password: str | None) -> None:
    """ALTER ROLE … PASSWORD with a SCRAM verifier computed here (None removes the password)."""
    if password is None:
        conn.execute(sql.SQL(query("access", "drop_password")).format(role=sql.Identifier(role)))
        return
    verifier = conn.pgconn.encrypt_password(password.encode(), role.encode(), b"scram-sha-256")
    conn.execute(
        sql.SQL(query("access", "set_password")).format(
            role=sql.Identifier(role), verifier=sql.Literal(verifier.decode())
        )
    )


def role_exists(conn: psycopg.Connection, role: str) -> bool:
    return bool(conn.execute(query("access", "role_exists"), {"role": role}).fetchone()[0])


def reader_password(url: str, embedded: bool) -> tuple[str | None, Path]:
    """The reader's password as gmv knows it (GMV_READER_PASSWORD, else its file) and the file."""
    path = password_file(READER_ROLE, url, embedded)
    return os.environ.get(READER_PASSWORD_ENV) or read_password(path), path


def ensure_reader_password(
    conn: psycopg.Connection, url: str, embedded: bool, *, rotate: bool = False
) -> tuple[Path, str]:
    """Give gmv_reader its password: GMV_READER_PASSWORD, else the saved one, else a new one (saved).

    Returns (file, what happened) for the caller to print. rotate: always a new generated password.
    """
    path = password_file(READER_ROLE, url, embedded)
    from_env = os.environ.get(READER_PASSWORD_ENV)
    if rotate:
        password, how = generate_password(), "new password generated"
    elif from_env:
        password, how = from_env, f"password from {READER_PASSWORD_ENV}"
    else:
        saved = read_password(path)
        password, how = (
            (saved, "saved password") if saved else (generate_password(), "new password generated")
        )
    if not role_exists(conn, READER_ROLE):
        raise DatabaseError(
            f"role {READER_ROLE} does not exist on {conn.info.host or 'the server'}; run `gmv db up`"
        )
    try:
        set_role_password(conn, READER_ROLE, password)
    except psycopg.errors.InsufficientPrivilege as exc:
        raise DatabaseError(
            f"cannot set the password of {READER_ROLE} as {conn.info.user}: {exc.diag.message_primary}; "
            f"run gmv db up as a role with CREATEROLE, or set it yourself: ALTER ROLE {READER_ROLE} PASSWORD '…'"
        ) from exc
    if read_password(path) != password:
        write_password(path, password)
    return path, how


def admin_password(url: str, embedded: bool) -> tuple[str, Path]:
    """The embedded admin's TCP password (generated once, kept in its 0600 file)."""
    path = password_file(ADMIN_ROLE, url, embedded)
    password = read_password(path)
    if password is None:
        password = generate_password()
        write_password(path, password)
    return password, path


def url_with_password(url: str, password: str | None) -> str:
    """A postgresql:// URL with the password put into its user-info (percent-encoded)."""
    from urllib.parse import quote

    if password is None or "://" not in url:
        return url
    scheme, rest = url.split("://", 1)
    if "@" not in rest.split("?", 1)[0]:
        raise ConfigError("cannot add a password to a URL without a user name; give one as user@host")
    user, host = rest.split("@", 1)
    user = user.split(":", 1)[0]
    return f"{scheme}://{user}:{quote(password, safe='')}@{host}"
