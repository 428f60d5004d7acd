"""The ingest itself: check every file, refuse ownership conflicts, then store in transactional batches.

Two passes, so that refusals leave the database exactly as it was:
1. check: hash and decode every file (threads), collect the bad ones, find duplicates and
   ownership conflicts against the input and the database. With --on-error fail any bad input
   stops here; a conflict (same bytes, two owners / two generators) always does.
2. store: INSERT … ON CONFLICT (sha256) DO NOTHING in batches, one transaction each. A crash or
   Ctrl-C keeps whole batches only; running the same command again stores the rest, no duplicates.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import psycopg

from gmv_sql.config import default_workers
from gmv_sql.errors import ConflictError, InputError
from gmv_sql.ingest.files import DEFAULT_MAX_PIXELS, BadFile, CheckedFile, check_files
from gmv_sql.ingest.manifest import BadRow, Kind, Row
from gmv_sql.progress import Progress
from gmv_sql.resources import query

ON_ERROR_CHOICES = ("skip", "fail")
DEFAULT_BATCH_SIZE = 500
_CLAIM_CHUNK = 5000


@dataclass
class IngestResult:
    kind: Kind
    checked: int = 0
    new: int = 0
    already_present: int = 0
    duplicates_in_input: int = 0
    bad: list[str] = field(default_factory=list)
    generator: str | None = None
    run: str | None = None

    def summary(self) -> str:
        parts = [f"{self.new:,} new", f"{self.already_present:,} already present"]
        if self.duplicates_in_input:
            parts.append(f"{self.duplicates_in_input:,} duplicate files in the input")
        parts.append(f"{len(self.bad):,} bad (skipped)" if self.bad else "0 bad")
        where = f" into run {self.run!r} of generator {self.generator!r}" if self.kind == "generated" else ""
        return f"{self.kind} images{where}: " + ", ".join(parts)


@dataclass
class _Item:
    row: Row
    file: CheckedFile


def _short(sha: str) -> str:
    return sha[:12] + "…"


def check_inputs(
    rows: Sequence[Row],
    bad_rows: Sequence[BadRow],
    *,
    report: Callable[[str], None],
    workers: int,
    max_pixels: int,
    progress: bool,
) -> tuple[list[_Item], list[str]]:
    """Pass 1: the files that passed every check (input order) and one line per bad row or file."""
    bad: list[str] = []
    for bad_row in bad_rows:
        bad.append(bad_row.line())
        report(bad_row.line())
    items: list[_Item] = []
    with Progress("checking", len(rows), unit="files", enabled=progress) as bar:
        for row, result in zip(
            rows, check_files([r.path for r in rows], workers=workers, max_pixels=max_pixels), strict=True
        ):
            bar.update()
            if isinstance(result, BadFile):
                bad.append(result.line())
                report(result.line())
            else:
                items.append(_Item(row, result))
    return items, bad


def _dedupe(items: list[_Item], kind: Kind) -> tuple[list[_Item], int]:
    """Keep the first file of each sha256; the same bytes under two owners in one input is a conflict."""
    first: dict[str, _Item] = {}
    kept: list[_Item] = []
    duplicates = 0
    for item in items:
        seen = first.get(item.file.sha256)
        if seen is None:
            first[item.file.sha256] = item
            kept.append(item)
            continue
        if kind == "training" and seen.row.owner != item.row.owner:
            raise ConflictError(
                f"{item.file.path} and {seen.file.path} have the same bytes (sha256 {_short(item.file.sha256)}) but "
                f"two owners, {seen.row.owner!r} and {item.row.owner!r}; an image has one owner: fix the manifest"
            )
        duplicates += 1
    return kept, duplicates


def _claims(conn: psycopg.Connection, kind: Kind, shas: list[str]) -> dict[str, tuple]:
    claims: dict[str, tuple] = {}
    name = "training_claims" if kind == "training" else "generated_claims"
    for start in range(0, len(shas), _CLAIM_CHUNK):
        for sha, *rest in conn.execute(query("ingest", name), {"sha256": shas[start : start + _CLAIM_CHUNK]}):
            claims[sha] = tuple(rest)
    return claims


def _refuse_conflicts(
    conn: psycopg.Connection, kind: Kind, items: list[_Item], generator: str | None
) -> tuple[list[_Item], int]:
    """Drop images already stored for the same owner/generator; raise on the same bytes claimed by another."""
    claims = _claims(conn, kind, [i.file.sha256 for i in items])
    todo: list[_Item] = []
    present = 0
    for item in items:
        claim = claims.get(item.file.sha256)
        if claim is None:
            todo.append(item)
            continue
        _check_claim(kind, item, claim, generator)
        present += 1
    return todo, present


def _check_claim(kind: Kind, item: _Item, claim: tuple, generator: str | None) -> None:
    if kind == "training":
        (owner,) = claim
        if owner != item.row.owner:
            raise ConflictError(
                f"{item.file.path} (sha256 {_short(item.file.sha256)}) is already a training image of owner "
                f"{owner!r}; it cannot also belong to {item.row.owner!r}: fix the manifest or the stored owner"
            )
    else:
        stored_generator, stored_run = claim
        if stored_generator != generator:
            raise ConflictError(
                f"{item.file.path} (sha256 {_short(item.file.sha256)}) was already ingested from generator "
                f"{stored_generator!r} (run {stored_run!r}), not {generator!r}; remove it from this input"
            )


def _strict_check(conn: psycopg.Connection, rows: Sequence[Row]) -> None:
    owners = sorted({r.owner for r in rows if r.owner})
    licenses = sorted({r.license for r in rows if r.license})
    known_owners = {n for n, _ in conn.execute(query("ingest", "owner_ids"), {"names": owners})}
    known_licenses = {n for n, _ in conn.execute(query("ingest", "license_ids"), {"names": licenses})}
    unknown = [f"owner {n!r}" for n in owners if n not in known_owners]
    unknown += [f"license {n!r}" for n in licenses if n not in known_licenses]
    if unknown:
        shown = ", ".join(unknown[:5]) + (f" and {len(unknown) - 5} more" if len(unknown) > 5 else "")
        raise InputError(f"--strict: unknown {shown}; create them first or drop --strict to create them")


def _license_terms(conn: psycopg.Connection, rows: Sequence[Row]) -> dict[str, bool]:
    """royalty_bearing per licence from the manifest; refuses a licence given two values, or one
    that disagrees with the stored licence (changing terms is `gmv license set`, which logs it)."""
    terms: dict[str, bool] = {}
    for row in rows:
        if row.royalty_bearing is None or row.license is None:
            continue
        if terms.setdefault(row.license, row.royalty_bearing) != row.royalty_bearing:
            raise InputError(
                f"licence {row.license!r} is given both royalty_bearing true and false in the manifest; "
                "give one value per licence"
            )
    if terms:
        stored = dict(conn.execute(query("ingest", "license_terms"), {"names": list(terms)}).fetchall())
        for name, bearing in terms.items():
            if name in stored and stored[name] != bearing:
                flag = "--royalty-bearing" if bearing else "--no-royalty-bearing"
                raise ConflictError(
                    f"licence {name!r} is stored with royalty_bearing {str(stored[name]).lower()}, the manifest says "
                    f"{str(bearing).lower()}; change it with `gmv license set {name} {flag}` or fix the manifest"
                )
    return terms


def _store_training_batch(
    conn: psycopg.Connection, batch: list[_Item], strict: bool, terms: dict[str, bool] | None = None
) -> tuple[int, int]:
    owners = sorted({i.row.owner for i in batch})
    licenses = sorted({i.row.license for i in batch})
    terms = terms or {}
    with conn.transaction():
        if not strict:
            conn.execute(query("ingest", "create_owners"), {"names": owners})
            conn.execute(
                query("ingest", "create_licenses"),
                {"names": licenses, "royalty_bearing": [terms.get(n) for n in licenses]},
            )
        owner_ids = dict(conn.execute(query("ingest", "owner_ids"), {"names": owners}).fetchall())
        license_ids = dict(conn.execute(query("ingest", "license_ids"), {"names": licenses}).fetchall())
        inserted = {
            r[0]
            for r in conn.execute(
                query("ingest", "insert_training"),
                {
                    "sha256": [i.file.sha256 for i in batch],
                    "uri": [i.file.path for i in batch],
                    "owner_id": [owner_ids[i.row.owner] for i in batch],
                    "license_id": [license_ids[i.row.license] for i in batch],
                    "width": [i.file.width for i in batch],
                    "height": [i.file.height for i in batch],
                    "attributes": [
                        json.dumps(i.row.attributes, ensure_ascii=False, default=str) for i in batch
                    ],
                    "opted_out": [i.row.opted_out for i in batch],
                },
            )
        }
        raced = [i for i in batch if i.file.sha256 not in inserted]
        if raced:  # stored meanwhile by another gmv process: fine if same owner
            claims = _claims(conn, "training", [i.file.sha256 for i in raced])
            for item in raced:
                _check_claim("training", item, claims[item.file.sha256], None)
    return len(inserted), len(raced)


def _store_generated_batch(
    conn: psycopg.Connection, batch: list[_Item], generator: str, run: str
) -> tuple[int, int]:
    with conn.transaction():
        conn.execute(query("ingest", "create_generator"), {"name": generator})
        generator_id = conn.execute(query("ingest", "generator_id"), {"name": generator}).fetchone()[0]
        conn.execute(query("ingest", "create_run"), {"generator_id": generator_id, "name": run})
        run_id = conn.execute(
            query("ingest", "run_id"), {"generator_id": generator_id, "name": run}
        ).fetchone()[0]
        inserted = {
            r[0]
            for r in conn.execute(
                query("ingest", "insert_generated"),
                {
                    "run_id": run_id,
                    "sha256": [i.file.sha256 for i in batch],
                    "uri": [i.file.path for i in batch],
                    "quality": [i.row.quality for i in batch],
                    "prompt": [i.row.prompt for i in batch],
                    "width": [i.file.width for i in batch],
                    "height": [i.file.height for i in batch],
                    "attributes": [
                        json.dumps(i.row.attributes, ensure_ascii=False, default=str) for i in batch
                    ],
                    "created_at": [i.row.created_at for i in batch],
                },
            )
        }
        raced = [i for i in batch if i.file.sha256 not in inserted]
        if raced:
            claims = _claims(conn, "generated", [i.file.sha256 for i in raced])
            for item in raced:
                _check_claim("generated", item, claims[item.file.sha256], generator)
    return len(inserted), len(raced)


def _with_retry(store_batch: Callable[[], tuple[int, int]], attempts: int = 5) -> tuple[int, int]:
    """Run one batch transaction, retrying the rare deadlock/serialization failure with another process."""
    for attempt in range(attempts):
        try:
            return store_batch()
        except (psycopg.errors.DeadlockDetected, psycopg.errors.SerializationFailure):
            if attempt == attempts - 1:
                raise
            time.sleep(0.05 * (attempt + 1))
    raise AssertionError("unreachable")


def ingest(
    connect: Callable[[], psycopg.Connection],
    kind: Kind,
    rows: Sequence[Row],
    bad_rows: Sequence[BadRow] = (),
    *,
    on_error: str = "skip",
    strict: bool = False,
    generator: str | None = None,
    run: str | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    workers: int | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    report: Callable[[str], None] = lambda line: None,
    progress: bool = True,
) -> IngestResult:
    """Ingest rows of one kind; connect() must return an autocommit connection."""
    if on_error not in ON_ERROR_CHOICES:
        raise InputError(f"--on-error {on_error!r} is not one of {', '.join(ON_ERROR_CHOICES)}")
    if kind == "generated" and not (generator and run):
        raise InputError("generated images need --generator NAME (and a run name)")
    result = IngestResult(kind, generator=generator, run=run)
    with connect() as conn:
        if strict and kind == "training":
            _strict_check(conn, rows)
        items, result.bad = check_inputs(
            rows,
            bad_rows,
            report=report,
            workers=workers or default_workers(4),
            max_pixels=max_pixels,
            progress=progress,
        )
        result.checked = len(rows)
        if result.bad and on_error == "fail":
            raise InputError(
                f"{len(result.bad)} bad input(s), listed above; nothing was stored (--on-error fail): "
                "fix or remove them, or use --on-error skip"
            )
        terms = _license_terms(conn, rows) if kind == "training" else {}
        items, result.duplicates_in_input = _dedupe(items, kind)
        todo, result.already_present = _refuse_conflicts(conn, kind, items, generator)
        with Progress("storing", len(todo), unit="images", enabled=progress and bool(todo)) as bar:
            for start in range(0, len(todo), batch_size):
                # Sorted by sha256: concurrent ingests lock rows in one order, so never deadlock.
                batch = sorted(todo[start : start + batch_size], key=lambda i: i.file.sha256)
                if kind == "training":
                    new, present = _with_retry(lambda b=batch: _store_training_batch(conn, b, strict, terms))
                else:
                    new, present = _with_retry(
                        lambda b=batch: _store_generated_batch(conn, b, generator, run)
                    )
                result.new += new
                result.already_present += present
                bar.update(len(batch))
    return result
