"""`gmv db grant-owner`: a login role for one owner, which sees only that owner's rows.

The role is a member of gmv_owners, which may read schema owner_report only (sql/derived/40_owner_report.sql:
security-barrier views over the report views, filtered on gmv.owner_login). Its generated password is kept
in GMV_HOME/secrets/ (0600) like gmv_reader's.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql

from gmv_sql.db import access
from gmv_sql.errors import ConflictError, DatabaseError, NotFoundError
from gmv_sql.resources import query

ROLE_PREFIX = "gmv_owner_"
MAX_ROLE_NAME = 63  # PostgreSQL's NAMEDATALEN - 1


def default_role(name: str, owner_id: int) -> str:
    """gmv_owner_<readable part of the name>_<owner id>: unique per owner, a plain identifier."""
    slug = re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")
    suffix = f"_{owner_id}"
    return (ROLE_PREFIX + slug)[: MAX_ROLE_NAME - len(suffix)].rstrip("_") + suffix


@dataclass(frozen=True)
class OwnerLogin:
    owner: str
    role: str
    password_file: Path
    created: bool
    views: list[str]


def grant_owner(
    conn: psycopg.Connection, url: str, embedded: bool, owner: str, role: str | None = None
) -> OwnerLogin:
    """Create (or refresh) the login role of one owner, map it, and give it a password (saved 0600)."""
    row = conn.execute(query("access", "owner_id"), {"name": owner}).fetchone()
    if row is None:
        raise NotFoundError(f"no owner named {owner!r}; see the owners with gmv report owners")
    owner_id = row[0]
    if role is None:
        mapped = conn.execute(query("access", "owner_login_of"), {"owner_id": owner_id}).fetchone()
        role = mapped[0] if mapped else default_role(owner, owner_id)
    exists, is_owner_login, powerful = conn.execute(query("access", "role_facts"), {"role": role}).fetchone()
    if exists and (not is_owner_login or powerful):
        raise ConflictError(
            f"role {role!r} already exists and is not an owner's login (not only a member of gmv_owners); "
            "give another --role"
        )
    ident = sql.Identifier(role)
    password_file = access.password_file(role, url, embedded)
    password = access.read_password(password_file) or access.generate_password()
    try:
        with conn.transaction():
            if not exists:
                conn.execute(sql.SQL(query("access", "create_owner_role")).format(role=ident))
            conn.execute(sql.SQL(query("access", "configure_owner_role")).format(role=ident))
            conn.execute(query("access", "map_owner_login"), {"role": role, "owner_id": owner_id})
            access.set_role_password(conn, role, password)
    except psycopg.errors.InsufficientPrivilege as exc:
        raise DatabaseError(
            f"cannot create login role {role!r} as {conn.info.user}: {exc.diag.message_primary}; "
            "run it as a role with CREATEROLE"
        ) from exc
    except psycopg.errors.UndefinedObject as exc:
        raise DatabaseError(
            f"cannot create login role {role!r}: {exc.diag.message_primary}; run `gmv db up` (as a role with "
            "CREATEROLE) to create the gmv_owners group"
        ) from exc
    if access.read_password(password_file) != password:
        access.write_password(password_file, password)
    views = [r[0] for r in conn.execute(query("access", "owner_views"))]
    return OwnerLogin(owner, role, password_file, not exists, views)
