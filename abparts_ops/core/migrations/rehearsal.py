"""The rehearsal: the pending revisions run first on a copy of the environment's schema.

``pg_dump --schema-only`` of the environment's whole database (every schema, its
extensions, the tables the history does not know about, the version table) is restored
into a scratch database; the version rows are set to the environment's; the pending
revisions run there exactly as the apply will run them (:func:`~.runner.run_revisions`:
one transaction, the apply's statement and lock timeouts, watched for anything that
leaves the transaction, the version rows read back after each revision and at the end,
where they must be exactly the head); and the result is compared with the schema the
history says the head must have. Nothing touches the environment but the read-only
pg_dump.

A dump and restore does not always give back the catalog text it read: PostgreSQL may
deparse an expression it re-parsed differently (a ``CHECK (x = ANY (ARRAY[...]))`` over
``varchar`` comes back with its casts moved). Such a difference between the restored
copy and the schema expected at the environment's revision (which the environment
equals: the upgrade checked that first) is *restore noise*; it is forgiven on objects no
pending revision touches, and counted in ``restore_noise``. Every other difference of the
result from the head's expected schema fails the rehearsal.

A failing revision is a verdict, not an exception: :class:`RehearsalResult` names the
revision, its file, the statement and the server's message (``left_transaction`` when it
ends the transaction or needs to run outside one).
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from alembic.script import ScriptDirectory
from sqlalchemy.exc import DBAPIError

from abparts_ops.core.db import connect, make_engine, quote_ident, redact_url, scrub
from abparts_ops.core.errors import DatabaseError
from abparts_ops.core.migrations.migrate import current_revisions
from abparts_ops.core.migrations.project import AlembicProject
from abparts_ops.core.migrations.runner import (
    LeftTransaction,
    RunProgress,
    VersionRowsWritten,
    run_revisions,
    shorten,
)
from abparts_ops.core.migrations.scratch import scratch_database
from abparts_ops.core.schema.diff import SchemaDiff, diff_snapshots
from abparts_ops.core.schema.dump import (
    PG_DUMP_TIMEOUT_SECONDS,
    find_pg_dump,
    libpq_connection,
    supports_restrict_key,
)
from abparts_ops.core.schema.introspect import snapshot_connection
from abparts_ops.core.schema.model import Snapshot

SCRATCH_PREFIX = "abparts_rehearsal"
_META_COMMAND = re.compile(r"^\\")


@dataclass(frozen=True)
class RehearsalResult:
    """The rehearsal's verdict on the pending revisions.

    ``passed`` means every pending revision ran on the copy and the result equals the
    head's expected schema. Otherwise either ``failed_revision`` (with its ``file``,
    ``statement`` and ``error``) or a non-empty ``diff`` says why; ``left_transaction``
    means the failed revision leaves the one transaction the apply runs in.
    """

    passed: bool
    verdict: str
    applied: tuple[str, ...]
    seconds: float
    dump_seconds: float
    failed_revision: str | None = None
    file: str | None = None
    statement: str | None = None
    error: str | None = None
    diff: SchemaDiff | None = None
    result_fingerprint: str | None = None
    restore_noise: int = 0
    left_transaction: bool = False

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (the diff as its counts)."""
        return {
            "passed": self.passed,
            "verdict": self.verdict,
            "applied": list(self.applied),
            "seconds": round(self.seconds, 3),
            "failed_revision": self.failed_revision,
            "file": self.file,
            "statement": self.statement,
            "error": self.error,
            "diff": self.diff.counts() if self.diff is not None else None,
            "restore_noise": self.restore_noise,
            "left_transaction": self.left_transaction,
        }


def dump_environment(url: str, server_version: str | None, *, environment: str) -> str:
    """``pg_dump --schema-only --no-owner --no-privileges`` of the whole database at ``url``.

    The pg_dump must match the server's major version; the connection, password included,
    reaches it only through a private service file (see
    :func:`~abparts_ops.core.schema.dump.libpq_connection`), never its command line.
    Errors are one :class:`DatabaseError` line naming ``environment``.
    """
    found = find_pg_dump(server_version)
    if found is None:
        raise DatabaseError(
            f"{environment}: no pg_dump of the server's major version ({server_version}) is "
            "installed; the rehearsal needs one (install postgresql-client of that version)."
        )
    executable = found[0]
    args = [str(executable), "--schema-only", "--no-owner", "--no-privileges", "--no-password"]
    if supports_restrict_key(executable):
        args.append("--restrict-key=abpartsopsrehearsal")
    try:  # the connection (password, sslpassword...) in a private service file, not argv
        with libpq_connection(url, label=environment) as (connection, env):
            result = subprocess.run(
                args + connection, capture_output=True, text=True, env=env,
                timeout=PG_DUMP_TIMEOUT_SECONDS,
            )
    except (OSError, subprocess.SubprocessError) as exc:
        raise DatabaseError(
            scrub(f"{environment}: pg_dump for the rehearsal failed: {exc}", url)
        ) from None
    if result.returncode != 0:
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        first = lines[0] if lines else f"exit status {result.returncode}"
        raise DatabaseError(
            scrub(
                f"{environment}: pg_dump of {redact_url(url)} for the rehearsal failed: "
                f"{first} (check the role's privileges).",
                url,
            )
        )
    return result.stdout


def restore_dump(url: str, dump: str, *, environment: str) -> None:
    """Run a schema-only dump's SQL on the (empty) database at ``url``.

    psql's meta-commands (``\\restrict``) are dropped; the rest is plain SQL.
    """
    sql = "\n".join(line for line in dump.splitlines() if not _META_COMMAND.match(line))
    engine = make_engine(url, label="rehearsal database")
    try:
        with connect(engine, label="rehearsal database") as conn:
            raw = conn.connection.dbapi_connection
            assert raw is not None
            raw.autocommit = True
            with raw.cursor() as cur:
                cur.execute(sql)
    except DatabaseError as exc:
        raise DatabaseError(
            f"{environment}: its schema-only dump does not restore on the scratch server: "
            f"{exc} (is the scratch server of the same major version, with the same "
            "extensions available?)"
        ) from None
    except Exception as exc:  # psycopg2 errors of the restore itself
        first = (str(exc).strip().splitlines() or [exc.__class__.__name__])[0]
        raise DatabaseError(
            f"{environment}: its schema-only dump does not restore on the scratch server: "
            f"{first} (is the scratch server of the same major version, with the same "
            "extensions available?)"
        ) from None
    finally:
        engine.dispose()


def _set_version_rows(
    conn: sa.Connection, project: AlembicProject, schema: str, rows: Sequence[str]
) -> None:
    table = f"{quote_ident(project.version_table_schema or schema)}."
    table += quote_ident(project.version_table)
    with conn.begin():
        conn.exec_driver_sql(
            f"CREATE TABLE IF NOT EXISTS {table} (version_num varchar(32) NOT NULL, "
            f"CONSTRAINT {quote_ident(project.version_table + '_pkc')} PRIMARY KEY "
            "(version_num))"
        )
        conn.exec_driver_sql(f"DELETE FROM {table}")
        for row in rows:
            conn.execute(
                sa.text(f"INSERT INTO {table} (version_num) VALUES (:v)"), {"v": row}
            )


def _first_line(exc: BaseException) -> str:
    source: Any = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
    lines = str(source).strip().splitlines()
    return lines[0].strip() if lines else exc.__class__.__name__


def _timeouts(
    statement_timeout_s: float | None, lock_timeout_s: float | None
) -> Callable[[sa.Connection], None]:
    """The rehearsal's preamble: the apply's statement and lock timeouts."""

    def preamble(conn: sa.Connection) -> None:
        if statement_timeout_s is not None:
            ms = max(1, int(round(statement_timeout_s * 1000)))
            conn.exec_driver_sql(f"SET LOCAL statement_timeout = {ms}")
        if lock_timeout_s is not None:
            ms = max(1, int(round(lock_timeout_s * 1000)))
            conn.exec_driver_sql(f"SET LOCAL lock_timeout = {ms}")

    return preamble


def _failed(
    verdict: str,
    revision: str | None,
    file: str | None,
    statement: str | None,
    progress: RunProgress,
    started: float,
    dump_seconds: float,
    *,
    error: str | None = None,
    left_transaction: bool = False,
) -> RehearsalResult:
    """A failed rehearsal naming the revision, its file and the statement."""
    return RehearsalResult(
        passed=False,
        verdict=verdict,
        applied=tuple(a.revision for a in progress.applied),
        seconds=time.perf_counter() - started,
        dump_seconds=dump_seconds,
        failed_revision=revision,
        file=file,
        statement=statement,
        error=error or verdict,
        left_transaction=left_transaction,
    )


def _statement_of(exc: BaseException) -> str | None:
    current: BaseException | None = exc
    seen: set[int] = set()
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, DBAPIError) and current.statement:
            return " ".join(str(current.statement).split())[:1000]
        current = current.__cause__ or current.__context__
    return None


def rehearse(
    env_url: str,
    scratch_server_url: str,
    *,
    environment: str,
    project: AlembicProject,
    script: ScriptDirectory,
    current: Sequence[str],
    target: str,
    expected_from: Snapshot,
    expected: Snapshot,
    server_version: str | None,
    schema: str = "public",
    exclude: Iterable[str] = (),
    privileges: bool = False,
    statement_timeout_s: float | None = None,
    lock_timeout_s: float | None = None,
) -> RehearsalResult:
    """Rehearse ``current -> target`` on a copy of ``environment``'s schema (module doc).

    ``privileges`` reads granted privileges too, as the expected schemas were read. The
    revisions run as the apply runs them (:func:`~.runner.run_revisions`: one
    transaction, watched), under ``statement_timeout_s`` and ``lock_timeout_s``.

    ``expected_from`` / ``expected`` are the schemas the history says ``current`` and
    ``target`` have (the environment was checked to equal ``expected_from``). Raises
    :class:`DatabaseError` when the dump cannot be made or restored; a failing revision
    or a result that differs from ``expected`` is a failed :class:`RehearsalResult`.
    """
    started = time.perf_counter()
    dump = dump_environment(env_url, server_version, environment=environment)
    dump_seconds = time.perf_counter() - started
    with scratch_database(scratch_server_url, prefix=SCRATCH_PREFIX) as url:
        restore_dump(url, dump, environment=environment)
        engine = make_engine(url, label="rehearsal database")
        try:
            with connect(engine, label="rehearsal database") as conn:
                _set_version_rows(conn, project, schema, current)
                restored = snapshot_connection(
                    conn, schema=schema, exclude=exclude,
                    version_table=project.version_table, source="restored copy",
                    require_tables=False, privileges=privileges,
                )
                progress = RunProgress()
                try:
                    run_revisions(
                        conn, project, script, target, progress=progress,
                        preamble=_timeouts(statement_timeout_s, lock_timeout_s),
                    )
                except (LeftTransaction, VersionRowsWritten) as exc:
                    return _failed(
                        str(exc), exc.revision, exc.file,
                        getattr(exc, "statement", None), progress, started, dump_seconds,
                        left_transaction=isinstance(exc, LeftTransaction),
                    )
                except Exception as exc:  # noqa: BLE001 - any error of a revision is a verdict
                    revision = progress.current
                    if revision is None:
                        return RehearsalResult(
                            passed=False,
                            verdict=f"the rehearsal could not upgrade: {_first_line(exc)}",
                            applied=tuple(a.revision for a in progress.applied),
                            seconds=time.perf_counter() - started,
                            dump_seconds=dump_seconds,
                            error=_first_line(exc),
                        )
                    statement = _statement_of(exc) or shorten(progress.statement, 1000)
                    name = f" ({os.path.basename(progress.current_file)})" if (
                        progress.current_file
                    ) else ""
                    shown = f"; statement: {statement}" if statement else ""
                    return _failed(
                        f"revision {revision}{name} failed in the rehearsal: "
                        f"{_first_line(exc)}{shown}",
                        revision, progress.current_file, statement, progress, started,
                        dump_seconds, error=_first_line(exc),
                    )
                rows = current_revisions(
                    conn, version_table=project.version_table,
                    schema=project.version_table_schema or schema,
                )
                if rows != (target,):
                    return _failed(
                        f"after the rehearsal the copy's version rows read "
                        f"{', '.join(rows or ()) or 'nothing'}, not the head {target} (a "
                        "revision wrote the version table itself)",
                        None, None, None, progress, started, dump_seconds,
                    )
                pending = [
                    rev.revision
                    for rev in reversed(list(script.iterate_revisions(target, tuple(current))))
                    if rev.revision not in current
                ]
                result = snapshot_connection(
                    conn, schema=schema, exclude=exclude,
                    version_table=project.version_table, source="rehearsal",
                    privileges=privileges,
                )
        finally:
            engine.dispose()
    full = diff_snapshots(expected, result, reference_label="expected", actual_label="rehearsal")
    noise = {(c.kind, c.key) for c in diff_snapshots(expected_from, restored).changes}
    touched = {(c.kind, c.key) for c in diff_snapshots(expected_from, expected).changes}
    touched |= {(c.kind, c.key) for c in diff_snapshots(restored, result).changes}
    forgiven = {k for k in noise if k not in touched}
    diff = SchemaDiff(
        reference_fingerprint=full.reference_fingerprint,
        actual_fingerprint=full.actual_fingerprint,
        changes=tuple(c for c in full.changes if (c.kind, c.key) not in forgiven),
        reference_label=full.reference_label,
        actual_label=full.actual_label,
    )
    seconds = time.perf_counter() - started
    if not diff.is_empty:
        return RehearsalResult(
            passed=False,
            verdict=(
                f"the rehearsal's result differs from the head's expected schema in "
                f"{len(diff.changes)} object(s) (the environment has something the history "
                "does not account for, or a revision behaves differently on it)"
            ),
            applied=tuple(pending),
            seconds=seconds,
            dump_seconds=dump_seconds,
            diff=diff,
            result_fingerprint=result.fingerprint,
            restore_noise=len(noise),
        )
    return RehearsalResult(
        passed=True,
        verdict=(
            f"rehearsed {len(pending)} revision(s) on a copy of {environment}'s schema in "
            f"{seconds:.1f} s: the result equals the head's expected schema"
            + (
                f" ({len(forgiven)} untouched object(s) deparsed differently after the "
                "dump and restore, not counted)"
                if forgiven
                else ""
            )
        ),
        applied=tuple(pending),
        seconds=seconds,
        dump_seconds=dump_seconds,
        diff=diff,
        result_fingerprint=result.fingerprint,
        restore_noise=len(noise),
    )
