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
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import sqlalchemy as sa
from alembic.script import ScriptDirectory
from sqlalchemy.exc import DBAPIError

from abparts_ops.core.db import connect, make_engine
from abparts_ops.core.history.migrate import current_revisions, failing_line
from abparts_ops.core.history.project import AlembicProject
from abparts_ops.core.quoting import quote_always
from abparts_ops.core.rollout.data_loss import Loss, LossCounter
from abparts_ops.core.rollout.rehearsal_copy import (
    CopyReport,
    RehearsalCopy,
    copy_with_rows,
    database_size,
    dump_environment,
    restore_dump,
)
from abparts_ops.core.rollout.runner import (
    ExecutedStatement,
    LeftTransaction,
    RevisionObservation,
    RunProgress,
    StatementHook,
    VersionRowsWritten,
    error_line,
    run_revisions,
    shorten,
)
from abparts_ops.core.schema.diff import SchemaDiff, diff_snapshots
from abparts_ops.core.schema.introspect import snapshot_connection
from abparts_ops.core.schema.model import Snapshot
from abparts_ops.core.scratch import scratch_database

SCRATCH_PREFIX = "abparts_rehearsal"

__all__ = ["RehearsalCopy", "RehearsalResult", "dump_environment", "rehearse", "restore_dump"]


@dataclass(frozen=True)
class RehearsalResult:
    """The rehearsal's verdict on the pending revisions.

    ``passed`` means every pending revision ran on the copy and the result equals the
    head's expected schema. Otherwise either ``failed_revision`` (with its ``file``,
    ``statement`` and ``error``) or a non-empty ``diff`` says why; ``left_transaction``
    means the failed revision leaves the one transaction the apply runs in. ``alone``
    lists the revisions that must run as steps of their own (autocommit), found by
    running them (each discovery costs one more ``attempts``); ``copy`` says what was
    copied; ``observed`` what each revision of a transaction wrote and locked;
    ``executed`` every statement the revisions ran, in order; ``revision_seconds`` how
    long each revision took on the copy.
    """

    passed: bool
    verdict: str
    applied: tuple[str, ...]
    seconds: float
    dump_seconds: float
    failed_revision: str | None = None
    file: str | None = None
    statement: str | None = None
    line: int | None = None
    error: str | None = None
    diff: SchemaDiff | None = None
    result_fingerprint: str | None = None
    restore_noise: int = 0
    left_transaction: bool = False
    alone: tuple[str, ...] = ()
    copy: CopyReport | None = None
    observed: Mapping[str, RevisionObservation] = field(default_factory=dict)
    executed: tuple[ExecutedStatement, ...] = ()
    revision_seconds: Mapping[str, float] = field(default_factory=dict)
    attempts: int = 1
    losses: tuple[Loss, ...] = ()

    def statements_of(self, revision: str) -> list[str]:
        """The SQL ``revision`` executed on the copy, in order."""
        return [s.sql for s in self.executed if s.revision == revision]

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (the diff as its counts)."""
        return {
            "passed": self.passed,
            "verdict": self.verdict,
            "applied": list(self.applied),
            "seconds": round(self.seconds, 3),
            "failed_revision": self.failed_revision,
            "file": self.file,
            "line": self.line,
            "statement": self.statement,
            "error": self.error,
            "diff": self.diff.counts() if self.diff is not None else None,
            "restore_noise": self.restore_noise,
            "left_transaction": self.left_transaction,
            "alone": list(self.alone),
            "copy": self.copy.mode if self.copy is not None else None,
            "observed": {rev: obs.to_dict() for rev, obs in self.observed.items()},
            "revision_seconds": {k: round(v, 3) for k, v in self.revision_seconds.items()},
        }


def _set_version_rows(
    conn: sa.Connection, project: AlembicProject, schema: str, rows: Sequence[str]
) -> None:
    table = f"{quote_always(project.version_table_schema or schema)}."
    table += quote_always(project.version_table)
    with conn.begin():
        conn.exec_driver_sql(
            f"CREATE TABLE IF NOT EXISTS {table} (version_num varchar(32) NOT NULL, "
            f"CONSTRAINT {quote_always(project.version_table + '_pkc')} PRIMARY KEY "
            "(version_num))"
        )
        conn.exec_driver_sql(f"DELETE FROM {table}")
        for row in rows:
            conn.execute(
                sa.text(f"INSERT INTO {table} (version_num) VALUES (:v)"), {"v": row}
            )


def _first_line(exc: BaseException) -> str:
    return error_line(exc)


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


@dataclass
class _Attempt:
    """One run of the pending revisions on a fresh copy."""

    progress: RunProgress
    restored: Snapshot | None = None
    result: Snapshot | None = None
    failure: RehearsalResult | None = None
    again: str | None = None
    losses: tuple[Loss, ...] = ()
    copy_seconds: float = 0.0


def _both(first: StatementHook | None, second: StatementHook | None) -> StatementHook | None:
    """One statement hook calling ``first`` then ``second`` (either may be None)."""
    hooks = [hook for hook in (first, second) if hook is not None]
    if not hooks:
        return None

    def hook(raw: Any, revision: str | None, sql: str) -> None:
        for each in hooks:
            each(raw, revision, sql)

    return hook


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
    copy: RehearsalCopy | None = None,
    before_statement: StatementHook | None = None,
) -> RehearsalResult:
    """Rehearse ``current -> target`` on a copy of ``environment`` (module doc).

    ``copy`` says what is copied (with its rows when ``pg_database_size`` is at most
    ``copy.max_bytes``; default: :class:`RehearsalCopy`). The revisions run as the apply
    runs them (:func:`~.runner.run_revisions`: one transaction, watched, observed),
    under ``statement_timeout_s`` and ``lock_timeout_s``; a revision found to leave the
    transaction is run again, on a fresh copy, as a step of its own (``alone``).
    ``before_statement`` is called before each statement a revision runs on the copy
    (e.g. to count the rows a ``DELETE`` will take). ``privileges`` reads granted
    privileges too, as the expected schemas were read.

    ``expected_from`` / ``expected`` are the schemas the history says ``current`` and
    ``target`` have (the environment was checked to equal ``expected_from``). Raises
    :class:`DatabaseError` when the copy cannot be made; a failing revision or a result
    that differs from ``expected`` is a failed :class:`RehearsalResult`.
    """
    copy = copy or RehearsalCopy()
    started = time.perf_counter()
    size = database_size(env_url, environment=environment)
    mode = "rows" if size <= copy.max_bytes else "schema"
    dump = dump_environment(env_url, server_version, environment=environment) if (
        mode == "schema"
    ) else None
    copied = CopyReport(mode, size, time.perf_counter() - started, copy.schema_only_tables)
    alone: list[str] = []
    pending = _pending(script, current, target)
    for attempts in range(1, len(pending) + 2):
        counter = LossCounter(schema, expected_from) if mode == "rows" else None
        attempt = _attempt(
            env_url, scratch_server_url, environment=environment, project=project,
            script=script, current=current, target=target, server_version=server_version,
            schema=schema, exclude=exclude, privileges=privileges, copy=copy, dump=dump,
            alone=alone, started=started, timeouts=(statement_timeout_s, lock_timeout_s),
            before_statement=_both(counter, before_statement),
        )
        attempt.losses = tuple(counter.losses) if counter is not None else ()
        copied = replace(copied, seconds=copied.seconds + attempt.copy_seconds)
        if attempt.again is not None:
            alone.append(attempt.again)
            continue
        if attempt.failure is not None:
            return _with(
                attempt.failure, copied, alone, attempt.progress, attempts, attempt.losses
            )
        break
    assert attempt.result is not None and attempt.restored is not None
    return _judge(
        attempt, expected_from=expected_from, expected=expected, environment=environment,
        copied=copied, alone=alone, attempts=attempts, started=started, pending=pending,
    )


def _pending(script: ScriptDirectory, current: Sequence[str], target: str) -> tuple[str, ...]:
    steps = script.iterate_revisions(target, tuple(current))
    return tuple(rev.revision for rev in reversed(list(steps)) if rev.revision not in current)


def _session_timeouts(statement_timeout_s: float | None, lock_timeout_s: float | None) -> list[str]:
    settings = []
    if statement_timeout_s is not None:
        settings.append(f"SET statement_timeout = {max(1, int(round(statement_timeout_s * 1000)))}")
    if lock_timeout_s is not None:
        settings.append(f"SET lock_timeout = {max(1, int(round(lock_timeout_s * 1000)))}")
    return settings


def _attempt(
    env_url: str,
    scratch_server_url: str,
    *,
    environment: str,
    project: AlembicProject,
    script: ScriptDirectory,
    current: Sequence[str],
    target: str,
    server_version: str | None,
    schema: str,
    exclude: Iterable[str],
    privileges: bool,
    copy: RehearsalCopy,
    dump: str | None,
    alone: Sequence[str],
    started: float,
    timeouts: tuple[float | None, float | None],
    before_statement: StatementHook | None,
) -> _Attempt:
    """Copy the environment into a fresh scratch database and run the revisions there."""
    progress = RunProgress()
    attempt = _Attempt(progress)
    with scratch_database(scratch_server_url, prefix=SCRATCH_PREFIX) as url:
        mark = time.perf_counter()
        if dump is None:
            copy_with_rows(
                env_url, url, server_version=server_version, environment=environment,
                schema=schema, schema_only_tables=copy.schema_only_tables,
                timeout_s=copy.timeout_s,
            )
        else:
            restore_dump(url, dump, environment=environment)
        attempt.copy_seconds = time.perf_counter() - mark
        engine = make_engine(url, label="rehearsal database")
        try:
            with connect(engine, label="rehearsal database") as conn:
                _set_version_rows(conn, project, schema, current)
                attempt.restored = snapshot_connection(
                    conn, schema=schema, exclude=exclude,
                    version_table=project.version_table, source="restored copy",
                    require_tables=False, privileges=privileges,
                )
            with connect(engine, label="rehearsal database") as conn:
                try:
                    run_revisions(
                        conn, project, script, target, progress=progress,
                        preamble=_timeouts(*timeouts), alone=alone,
                        session_settings=_session_timeouts(*timeouts), observe=True,
                        before_statement=before_statement,
                    )
                except LeftTransaction as exc:
                    if exc.revision is not None and exc.revision not in alone:
                        attempt.again = exc.revision
                        return attempt
                    attempt.failure = _failed(
                        str(exc), exc.revision, exc.file, exc.statement, progress, started,
                        0.0, left_transaction=True,
                    )
                    return attempt
                except VersionRowsWritten as exc:
                    attempt.failure = _failed(
                        str(exc), exc.revision, exc.file, None, progress, started, 0.0
                    )
                    return attempt
                except Exception as exc:  # noqa: BLE001 - any error of a revision is a verdict
                    attempt.failure = _revision_failure(exc, progress, started)
                    return attempt
            with connect(engine, label="rehearsal database") as conn:
                rows = current_revisions(
                    conn, version_table=project.version_table,
                    schema=project.version_table_schema or schema,
                )
                if rows != (target,):
                    attempt.failure = _failed(
                        f"after the rehearsal the copy's version rows read "
                        f"{', '.join(rows or ()) or 'nothing'}, not the head {target} (a "
                        "revision wrote the version table itself)",
                        None, None, None, progress, started, 0.0,
                    )
                    return attempt
                attempt.result = snapshot_connection(
                    conn, schema=schema, exclude=exclude,
                    version_table=project.version_table, source="rehearsal",
                    privileges=privileges,
                )
        finally:
            engine.dispose()
    return attempt


def _revision_failure(exc: BaseException, progress: RunProgress, started: float) -> RehearsalResult:
    """A failed rehearsal for an error raised while (or before) a revision ran."""
    revision = progress.current
    if revision is None:
        return RehearsalResult(
            passed=False,
            verdict=f"the rehearsal could not upgrade: {_first_line(exc)}",
            applied=tuple(a.revision for a in progress.applied),
            seconds=time.perf_counter() - started,
            dump_seconds=0.0,
            error=_first_line(exc),
        )
    statement = _statement_of(exc) or shorten(progress.statement, 1000)
    line = failing_line(exc, progress.current_file)
    name = (
        f" ({os.path.basename(progress.current_file)}"
        + (f", line {line})" if line else ")")
        if progress.current_file
        else ""
    )
    shown = f"; statement: {statement}" if statement else ""
    failed = _failed(
        f"revision {revision}{name} failed in the rehearsal: {_first_line(exc)}{shown}",
        revision, progress.current_file, statement, progress, started, 0.0,
        error=_first_line(exc),
    )
    return replace(failed, line=line)


def _with(
    result: RehearsalResult,
    copied: CopyReport,
    alone: Sequence[str],
    progress: RunProgress,
    attempts: int,
    losses: tuple[Loss, ...] = (),
) -> RehearsalResult:
    """``result`` with what the attempt saw (copy, alone revisions, statements, rows)."""
    return replace(
        result, copy=copied, alone=tuple(alone), observed=dict(progress.observed),
        executed=tuple(progress.executed), attempts=attempts,
        revision_seconds={a.revision: a.seconds for a in progress.applied}, losses=losses,
    )


def _judge(
    attempt: _Attempt,
    *,
    expected_from: Snapshot,
    expected: Snapshot,
    environment: str,
    copied: CopyReport,
    alone: Sequence[str],
    attempts: int,
    started: float,
    pending: Sequence[str],
) -> RehearsalResult:
    """Compare the copy's result with the head's expected schema (restore noise forgiven)."""
    restored, result = attempt.restored, attempt.result
    assert restored is not None and result is not None
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
    common: dict[str, Any] = {
        "applied": tuple(pending),
        "seconds": seconds,
        "dump_seconds": copied.seconds,
        "diff": diff,
        "result_fingerprint": result.fingerprint,
        "restore_noise": len(noise),
    }
    if not diff.is_empty:
        failed = RehearsalResult(
            passed=False,
            verdict=(
                f"the rehearsal's result differs from the head's expected schema in "
                f"{len(diff.changes)} object(s) (the environment has something the history "
                "does not account for, or a revision behaves differently on it)"
            ),
            **common,
        )
        return _with(failed, copied, alone, attempt.progress, attempts, attempt.losses)
    steps = (
        f"; {', '.join(alone)} ran as step(s) of their own (autocommit)" if alone else ""
    )
    passed = RehearsalResult(
        passed=True,
        verdict=(
            f"rehearsed {len(pending)} revision(s) on {copied.describe()} of {environment} "
            f"in {seconds:.1f} s: the result equals the head's expected schema{steps}"
            + (
                f" ({len(forgiven)} untouched object(s) deparsed differently after the "
                "dump and restore, not counted)"
                if forgiven
                else ""
            )
        ),
        **common,
    )
    return _with(passed, copied, alone, attempt.progress, attempts, attempt.losses)
