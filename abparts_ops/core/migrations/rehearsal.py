"""The rehearsal: the pending revisions run first on a copy of the environment's schema.

``pg_dump --schema-only`` of the environment's whole database (every schema, its
extensions, the tables the history does not know about, the version table) is restored
into a scratch database; the version rows are set to the environment's; the pending
revisions run there through the application's Alembic scripts (one transaction each, as
``alembic upgrade`` does); and the result is compared with the schema the history says
the head must have. Nothing touches the environment but the read-only pg_dump.

A dump and restore does not always give back the catalog text it read: PostgreSQL may
deparse an expression it re-parsed differently (a ``CHECK (x = ANY (ARRAY[...]))`` over
``varchar`` comes back with its casts moved). Such a difference between the restored
copy and the schema expected at the environment's revision (which the environment
equals: the upgrade checked that first) is *restore noise*; it is forgiven on objects no
pending revision touches, and counted in ``restore_noise``. Every other difference of the
result from the head's expected schema fails the rehearsal.

A failing revision is a verdict, not an exception: :class:`RehearsalResult` names the
revision, its file, the statement and the server's message.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from alembic.script import ScriptDirectory
from sqlalchemy.exc import DBAPIError

from abparts_ops.core.db import connect, make_engine, quote_ident, redact_url, scrub
from abparts_ops.core.errors import DatabaseError, MigrationError
from abparts_ops.core.migrations.migrate import RevisionFailed, upgrade
from abparts_ops.core.migrations.project import AlembicProject
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
    ``statement`` and ``error``) or a non-empty ``diff`` says why.
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
) -> RehearsalResult:
    """Rehearse ``current -> target`` on a copy of ``environment``'s schema (module doc).

    ``privileges`` reads granted privileges too, as the expected schemas were read.

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
                try:
                    upgrade(conn, project, target, script=script)
                except RevisionFailed as exc:
                    revision = script.get_revision(exc.revision)
                    statement = _statement_of(exc)
                    file = revision.path if revision is not None else None
                    where = f" ({os.path.basename(file)})" if file else ""
                    shown = f"; statement: {statement}" if statement else ""
                    return RehearsalResult(
                        passed=False,
                        verdict=(
                            f"revision {exc.revision}{where} failed in the rehearsal: "
                            f"{exc.detail}{shown}"
                        ),
                        applied=exc.applied,
                        seconds=time.perf_counter() - started,
                        dump_seconds=dump_seconds,
                        failed_revision=exc.revision,
                        file=file,
                        statement=statement,
                        error=exc.detail,
                    )
                except MigrationError as exc:
                    return RehearsalResult(
                        passed=False,
                        verdict=f"the rehearsal could not upgrade: {exc}",
                        applied=(),
                        seconds=time.perf_counter() - started,
                        dump_seconds=dump_seconds,
                        error=str(exc),
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
