"""The guarded ``alembic upgrade``: new revisions reach an environment proven first.

In this order (any refusal raises :class:`~abparts_ops.core.errors.UpgradeRefused` and
leaves the environment exactly as it was):

1. **check**: the environment is at one revision the history knows, and its schema equals
   the schema the history says that revision has (otherwise the diff is shown);
2. **rehearsal** (:mod:`.rehearsal`): the pending revisions run on a scratch copy of the
   environment's own ``pg_dump --schema-only``; the result must equal the head's expected
   schema;
3. **lint** (:mod:`.lint`): squawk on the SQL each pending revision really executed in
   the rehearsal, revision by revision; with ``block_on_lint_errors`` an error-level
   finding blocks unless its rule is acknowledged;
4. a dry run stops here. (The write guard, :mod:`abparts_ops.core.rollout.write_guard`, looks
   first of all, before step 1: a ``confirm`` naming another environment, a protected
   environment without ``confirm == environment`` on a real run, a database that is
   another environment's, a protected database whose identity changed; so a refusal
   costs nothing.)
5. **apply**, in ONE transaction (:func:`~.runner.run_revisions`, the rehearsal's own
   runner): ``SET LOCAL lock_timeout``, ``statement_timeout`` and
   ``client_connection_check_interval`` from the policy, the write guard again on this
   transaction (its advisory lock, the stamp's, and the database's identity), the version
   rows and the schema read again under the lock (they must not have moved since step
   1), then every pending revision, each timed, its version rows read back, with nothing
   allowed to leave the transaction; then COMMIT. A revision that would leave it
   (``COMMIT``, an ``autocommit_block``, ``CREATE INDEX CONCURRENTLY``...) is found by the
   rehearsal and refused there, before anything is written;
6. **verify**: a new connection reads the version rows (the head) and the schema (the
   head's expected schema).

After any failure of step 5 the environment is **read back** (version rows and schema,
compared with the expected schemas at its revision and at each pending one) before
anything is said: "nothing was written" is reported only when the re-read proves it;
otherwise :class:`UpgradeHalfApplied` says what was written, with the diff.

Step 1 asks the project's one reference (:func:`~abparts_ops.core.watch.reference.
assess_snapshot` over the expected schemas of the history): only an environment in sync
(nothing to do) or behind with the schema of its own revision may go on; schema drift,
an unknown revision or one awaiting its stamp are refused with the reference's reason.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import psycopg2
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError

from abparts_ops.core.db import connect, make_engine, redact_url, scrub
from abparts_ops.core.errors import AbpartsOpsError, MigrationError, UpgradeRefused
from abparts_ops.core.history.migrate import current_revisions
from abparts_ops.core.history.project import AlembicProject
from abparts_ops.core.rollout.data_loss import (
    Loss,
    as_findings,
    losses_from_statistics,
    losses_on_environment,
    merge_losses,
)
from abparts_ops.core.rollout.invalid_repair import (
    drop_invalid,
    invalid_leftovers,
    rebuilders,
)
from abparts_ops.core.rollout.lint import (
    DATA_LOSS_RULE,
    DEFAULT_ERROR_RULES,
    ExecutedRevision,
    LintExclusion,
    LintFinding,
    LintReport,
    check_rule_names,
    lint_executed,
)
from abparts_ops.core.rollout.locking import lock_key
from abparts_ops.core.rollout.prechecks import PreCheckResult, derive_prechecks, run_prechecks
from abparts_ops.core.rollout.rehearsal import RehearsalCopy, RehearsalResult, rehearse
from abparts_ops.core.rollout.runner import (
    AppliedRevision,
    LeftTransaction,
    RunProgress,
    VersionRowsWritten,
    error_line,
    run_revisions,
    shorten,
)
from abparts_ops.core.rollout.write_guard import NOTHING_WRITTEN, GuardReport, WriteGuard
from abparts_ops.core.schema.diff import SchemaDiff, diff_snapshots
from abparts_ops.core.schema.introspect import (
    exclusion_patterns,
    fetch_rows,
    snapshot_connection,
    snapshot_from_rows,
)
from abparts_ops.core.schema.model import Snapshot
from abparts_ops.core.watch.reference import ExpectedSnapshots, assess_snapshot
from abparts_ops.core.watch.states import EnvironmentState, version_rows_text

_LOCK_TIMEOUT = "55P03"
_QUERY_CANCELED = "57014"


@dataclass(frozen=True)
class UpgradePolicy:
    """How upgrades of one environment are bounded and linted (from the configuration).

    ``lock_timeout_s`` bounds every lock wait of the migration transaction (and the wait
    for the advisory lock); ``statement_timeout_s`` every statement; ``client_check_s`` is
    how often the server checks, while a statement runs, that the client is still there.
    ``exclude`` rules are never checked; with ``block_on_lint_errors`` an error-level
    finding refuses the upgrade unless the run acknowledges its rule. ``error_rules`` are
    the squawk rules whose findings are error-level.
    """

    lock_timeout_s: float = 5.0
    statement_timeout_s: float = 900.0
    client_check_s: float = 2.0
    exclude: tuple[LintExclusion, ...] = (
        LintExclusion(
            "prefer-robust-stmts",
            "every pending revision runs inside one transaction: a failure rolls it all back",
        ),
    )
    block_on_lint_errors: bool = True
    error_rules: tuple[str, ...] = DEFAULT_ERROR_RULES
    rehearsal: RehearsalCopy = field(default_factory=RehearsalCopy)

    def session_settings(self) -> list[str]:
        """The session-level timeouts of revisions that run as steps of their own."""
        return [
            f"SET lock_timeout = {_ms(self.lock_timeout_s)}",
            f"SET statement_timeout = {_ms(self.statement_timeout_s)}",
            f"SET client_connection_check_interval = {_ms(self.client_check_s)}",
        ]

    def preamble(self) -> list[str]:
        """The SET statements the migration transaction starts with (also linted)."""
        return [
            f"SET lock_timeout = '{_ms(self.lock_timeout_s)}ms';",
            f"SET statement_timeout = '{_ms(self.statement_timeout_s)}ms';",
        ]


@dataclass(frozen=True)
class UpgradeResult:
    """What a guarded upgrade did (or, on a dry run, would do).

    ``action`` is ``noop`` (already at the head), ``dry_run`` or ``upgraded``.
    ``blocking`` lists the error-level findings that would refuse (or, for a real run,
    were acknowledged: ``acknowledged``).
    """

    environment: str
    action: str
    target: str
    before: tuple[str, ...] | None
    after: tuple[str, ...] | None
    pending: tuple[str, ...]
    applied: tuple[AppliedRevision, ...]
    before_fingerprint: str
    after_fingerprint: str | None
    expected_fingerprint: str
    lock_wait_ms: float
    seconds: float
    message: str
    rehearsal: RehearsalResult | None = None
    lint: LintReport | None = None
    blocking: tuple[LintFinding, ...] = ()
    acknowledged: tuple[str, ...] = ()
    timings: dict[str, float] = field(default_factory=dict)
    guard: GuardReport | None = field(default=None, compare=False)
    prechecks: tuple[PreCheckResult, ...] = field(default=(), compare=False)
    alone: tuple[str, ...] = ()
    observed: dict[str, Any] = field(default_factory=dict, compare=False)
    repaired: tuple[str, ...] = ()

    @property
    def findings(self) -> tuple[LintFinding, ...]:
        """The lint findings (empty when nothing was linted)."""
        return self.lint.findings if self.lint is not None else ()


class UpgradeDrift(UpgradeRefused):
    """The environment's schema is not the one its revision should have; ``diff`` says how."""

    def __init__(self, message: str, diff: SchemaDiff) -> None:
        super().__init__(message)
        self.diff = diff


class RehearsalFailed(UpgradeRefused):
    """The pending revisions failed (or gave another schema) on the scratch copy."""

    def __init__(self, message: str, rehearsal: RehearsalResult) -> None:
        super().__init__(message)
        self.rehearsal = rehearsal


class LintBlocked(UpgradeRefused):
    """Error-level squawk findings that the run did not acknowledge."""

    def __init__(self, message: str, report: LintReport, blocking: Sequence[LintFinding]) -> None:
        super().__init__(message)
        self.report = report
        self.blocking = tuple(blocking)


class TransactionBoundary(RehearsalFailed):
    """A pending revision leaves the one transaction the upgrade runs in (found in the
    rehearsal); it is refused before anything is written."""


class UpgradeHalfApplied(MigrationError):
    """The apply failed and the re-read shows that something was written anyway.

    ``diff`` compares the schema expected at the environment's revision with what it has
    now; ``matches`` is the pending revision whose expected schema it equals, if any;
    ``after`` the version rows read back.
    """

    def __init__(
        self,
        message: str,
        diff: SchemaDiff | None,
        *,
        after: tuple[str, ...] | None,
        matches: str | None,
    ) -> None:
        super().__init__(message)
        self.diff = diff
        self.after = after
        self.matches = matches


class UpgradeVerificationFailed(MigrationError):
    """The revisions were applied, but the result is not the head's expected schema."""

    def __init__(self, message: str, diff: SchemaDiff | None) -> None:
        super().__init__(message)
        self.diff = diff


def _ms(seconds: float) -> int:
    return max(1, int(round(seconds * 1000)))


def pending_revisions(
    script: ScriptDirectory, current: Sequence[str], target: str
) -> tuple[str, ...]:
    """The revisions ``upgrade current -> target`` runs, oldest first."""
    steps = script.iterate_revisions(target, tuple(current))
    return tuple(rev.revision for rev in reversed(list(steps)) if rev.revision not in current)


def _first_line(exc: BaseException) -> str:
    return error_line(exc)


def _first_db_error(exc: BaseException) -> BaseException:
    """The first database error in the chain (the one a failed rollback would hide)."""
    found: BaseException = exc
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, (DBAPIError, psycopg2.Error)):
            found = current
        current = current.__cause__ or current.__context__
    return found


def _statement_of(exc: BaseException) -> str | None:
    """The SQL statement of the first SQLAlchemy database error in the chain."""
    seen: set[int] = set()
    current: BaseException | None = exc
    found: str | None = None
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, DBAPIError) and current.statement:
            found = str(current.statement)
        current = current.__cause__ or current.__context__
    return found


def _pgcode(exc: BaseException) -> str | None:
    orig = exc.orig if isinstance(exc, DBAPIError) else exc
    return getattr(orig, "pgcode", None)


class _Refusal(Exception):
    """Raised inside the apply transaction to roll it back, then re-raised as a refusal."""

    def __init__(self, error: UpgradeRefused) -> None:
        super().__init__(str(error))
        self.error = error


def _snapshot_in_transaction(
    conn: Connection, *, schema: str, patterns: list[str], environment: str, privileges: bool
) -> Snapshot:
    rows = fetch_rows(
        conn, schema=schema, patterns=patterns, label=environment, privileges=privileges
    )
    return snapshot_from_rows(rows, schema=schema, source=environment)


@dataclass(frozen=True)
class RunTarget:
    """What one guarded run works on (read once in step 1, used by every step).

    ``project``/``script`` are the history the revisions come from (the archive's for a
    catch-up), ``target`` its last revision, ``final`` the version row the run ends at
    (default ``target``; the baseline for a catch-up, written by ``epilogue`` in the same
    transaction), ``action`` the word the result uses.
    """

    environment: str
    project: AlembicProject
    script: ScriptDirectory
    target: str
    before: tuple[str, ...]
    current: str
    pending: tuple[str, ...]
    before_snapshot: Snapshot
    expected: ExpectedSnapshots
    schema: str
    patterns: list[str]
    repair: tuple[str, ...] = ()
    drift: SchemaDiff | None = None
    final: str | None = None
    epilogue: Callable[[Connection], None] | None = None
    epilogue_says: str = ""
    action: str = "upgraded"

    @property
    def vt_schema(self) -> str:
        """The schema of the version table."""
        return self.project.version_table_schema or self.schema


def _apply(
    conn: Connection,
    work: RunTarget,
    *,
    policy: UpgradePolicy,
    guard: WriteGuard,
    progress: RunProgress,
    alone: Sequence[str] = (),
    repair: Mapping[str, str] | None = None,
) -> GuardReport:
    """The migration transaction (module doc, step 5); returns the guard's report.

    ``alone`` are the revisions the rehearsal found must run as steps of their own: the
    revisions before the first of them run in the one transaction, the rest one by one
    under a session-level advisory lock and session-level timeouts. ``repair`` maps an
    INVALID index left by a failed concurrent build to the alone revision that builds it
    again: it is dropped (``DROP INDEX CONCURRENTLY``) right before that revision.
    """
    repair = dict(repair or {})
    environment = work.environment

    def preamble(conn: Connection) -> GuardReport:
        conn.exec_driver_sql("SET TRANSACTION ISOLATION LEVEL READ COMMITTED")
        conn.exec_driver_sql(f"SET LOCAL lock_timeout = {_ms(policy.lock_timeout_s)}")
        conn.exec_driver_sql(
            f"SET LOCAL statement_timeout = {_ms(policy.statement_timeout_s)}"
        )
        # A client that dies mid-statement (kill -9 of the run) is noticed by the server
        # within this interval: it cancels the statement and releases the locks.
        conn.exec_driver_sql(
            f"SET LOCAL client_connection_check_interval = {_ms(policy.client_check_s)}"
        )
        try:
            report = guard.enter(
                conn, dry_run=False, what="upgrade", refuse=UpgradeRefused,
                schema=work.vt_schema, version_table=work.project.version_table,
                lock_timeout_s=policy.lock_timeout_s,
            )
        except UpgradeRefused as exc:
            raise _Refusal(exc) from None
        now = current_revisions(
            conn, version_table=work.project.version_table, schema=work.vt_schema
        )
        if now != work.before:
            raise _Refusal(
                UpgradeRefused(
                    f"{environment}: its version rows changed during the upgrade's checks "
                    f"({version_rows_text(work.before)} -> {version_rows_text(now)}); "
                    "refusing to upgrade, "
                    f"{NOTHING_WRITTEN} (run it again)."
                )
            )
        again = _snapshot_in_transaction(
            conn, schema=work.schema, patterns=work.patterns, environment=environment,
            privileges=work.expected.privileges,
        )
        moved = diff_snapshots(
            work.before_snapshot, again, reference_label="checked", actual_label=environment
        )
        if not moved.is_empty:
            raise _Refusal(
                UpgradeDrift(
                    f"{environment}: its schema changed during the upgrade's checks "
                    f"({len(moved.changes)} object(s)); refusing to upgrade, "
                    f"{NOTHING_WRITTEN} (run it again).\n\n{moved.to_markdown(50)}",
                    moved,
                )
            )
        return report

    def before_alone(conn: Connection, revision: str) -> None:
        names = [name for name, rev in repair.items() if rev == revision]
        if names:
            progress.repaired.extend(drop_invalid(conn, work.schema, names))

    return run_revisions(
        conn, work.project, work.script, work.target, progress=progress, preamble=preamble,
        alone=alone, session_settings=policy.session_settings(), observe=True,
        lock_key_text=lock_key(work.vt_schema, work.project.version_table),
        before_alone=before_alone, epilogue=work.epilogue,
    )


def _why(exc: BaseException, *, url: str, progress: RunProgress, policy: UpgradePolicy) -> str:
    """One line: what stopped the migration transaction, and where."""
    if isinstance(exc, (LeftTransaction, VersionRowsWritten)):
        return str(exc)
    first = _first_db_error(exc)
    revision = progress.current
    file = progress.current_file
    where = f" ({os.path.basename(file)})" if file else ""
    statement = _statement_of(exc) or (progress.statement if revision else None)
    shown = f"; statement: {shorten(statement)}" if statement else ""
    during = f"revision {revision}{where}" if revision else "the migration transaction"
    code = _pgcode(first)
    detail = scrub(_first_line(first), url)
    if code == _LOCK_TIMEOUT:
        return (
            f"lock_timeout ({policy.lock_timeout_s:g} s) reached while {during} waited for a "
            f"lock{shown}: another transaction holds a lock on that table (let it finish, "
            "or raise upgrade.lock_timeout_s)"
        )
    if code == _QUERY_CANCELED and "statement timeout" in detail:
        return (
            f"statement_timeout ({policy.statement_timeout_s:g} s) reached in {during}{shown} "
            "(make the revision faster, or raise upgrade.statement_timeout_s)"
        )
    if isinstance(first, (DBAPIError, psycopg2.Error)):
        return f"{during} failed: {detail}{shown}"
    return f"{during} failed: {exc.__class__.__name__}: {scrub(str(exc), url)[:300]}"


ReadBack = Callable[[], tuple[tuple[str, ...] | None, Snapshot]]
"""Reads an environment's version rows and schema again, in a new connection."""


def what_was_written(
    work: RunTarget, why: str, read_back: ReadBack, *, url: str, running: str | None = None
) -> AbpartsOpsError:
    """The truth after a failed or interrupted apply, read back from the database.

    Returns an :class:`UpgradeRefused` saying "nothing was written" only when the version
    rows and the schema read back equal what they were before; an
    :class:`UpgradeHalfApplied` naming what was written (the diff from the schema
    expected at the environment's revision, the pending revision whose schema it now
    has, if any, and what to do) otherwise; a :class:`MigrationError` when the
    environment cannot be read back at all. ``running`` is the revision that was running
    when it failed, if known.
    """
    environment = work.environment
    try:
        after, now = read_back()
    except (AbpartsOpsError, DBAPIError, psycopg2.Error) as exc:
        reason = scrub(_first_line(exc), url)
        return MigrationError(
            f"{environment}: the upgrade was interrupted ({why}), and the environment cannot "
            f"be read back now ({reason}): what was written is unknown; check it "
            f"(`abparts-ops drift {environment}`) before anything else."
        )
    unchanged = diff_snapshots(work.before_snapshot, now).is_empty
    if after == work.before and unchanged:
        return UpgradeRefused(
            f"{environment}: upgrade aborted and rolled back: {why}. Read back: the version "
            f"rows are still {version_rows_text(work.before)} and the schema is unchanged; "
            f"{NOTHING_WRITTEN}."
        )
    stopped_at = after[0] if after and len(after) == 1 and after[0] in work.pending else None
    at_that = work.expected.snapshot(stopped_at) if stopped_at else None
    if at_that is not None and diff_snapshots(at_that, now).is_empty:
        left = work.pending[work.pending.index(stopped_at) + 1 :]
        return UpgradeHalfApplied(
            f"{environment} stopped at revision {stopped_at}: the upgrade failed ({why}), "
            f"and the read-back shows the revisions up to {stopped_at} committed (its "
            f"version rows and schema agree, so it is behind, not drifted) and "
            f"{', '.join(left) or 'nothing'} not applied. Fix the failing revision, then "
            f"run upgrade_{environment} again.",
            None,
            after=after,
            matches=stopped_at,
        )
    reference = work.expected.snapshot(work.current) or work.before_snapshot
    diff = diff_snapshots(
        reference, now, reference_label=f"expected at {work.current}", actual_label=environment
    )
    matches = next(
        (
            rev for rev in work.pending
            if (snap := work.expected.snapshot(rev)) is not None
            and diff_snapshots(snap, now).is_empty
        ),
        None,
    )
    if matches is not None and running is None:
        index = work.pending.index(matches)
        running = work.pending[index + 1] if index + 1 < len(work.pending) else None
    schema_says = (
        f"its schema is exactly the one revision {matches} builds"
        if matches
        else f"{len(diff.changes)} object(s) differ from the schema expected at "
        f"{work.current} (diff below)"
    )
    finish = (
        f"to finish: record what is there with `alembic stamp {matches}` (the schema is "
        f"exactly that revision's), then run upgrade_{environment} again for the rest"
        if matches and after == work.before
        else "to finish: make the schema match one revision's (the diff shows what to add "
        "or remove), record that revision with `alembic stamp`, then run "
        f"upgrade_{environment} again"
    )
    undo = (
        f"to undo: revert the objects in the diff so the schema is revision {work.current}'s "
        f"again, with the version rows at {work.current}"
    )
    leftovers = invalid_leftovers(diff, now) if after == work.before else ()
    if leftovers:
        finish = (
            f"to finish: fix what made the build fail, then run upgrade_{environment} "
            f"again: the INVALID index(es) {', '.join(leftovers)} are dropped (DROP INDEX "
            "CONCURRENTLY) and built again by the revision that builds them"
        )
    where = f" revision {running}" if running else ""
    message = (
        f"{environment} is half-way through{where}: the upgrade failed ({why}), and the "
        f"read-back shows that something was written: the version rows say "
        f"{version_rows_text(after)} (were {version_rows_text(work.before)}), and {schema_says}. "
        "Its state "
        f"is schema drift until you act; {undo}; or {finish}."
    )
    if not diff.is_empty:
        message += f"\n\n{diff.to_markdown(50)}"
    return UpgradeHalfApplied(message, diff if not diff.is_empty else None,
                              after=after, matches=matches)


def _check(
    conn: Connection,
    *,
    environment: str,
    project: AlembicProject,
    script: ScriptDirectory,
    target: str,
    expected: ExpectedSnapshots,
    exclude: Iterable[str],
    schema: str,
    archived: Collection[str],
    baseline: str | None,
) -> RunTarget:
    """Step 1: the environment's revision, its schema, and what is pending (module doc)."""
    vt_schema = project.version_table_schema or schema
    before = current_revisions(conn, version_table=project.version_table, schema=vt_schema)
    actual = snapshot_connection(
        conn, schema=schema, exclude=exclude, version_table=project.version_table,
        source=environment, privileges=expected.privileges,
    )
    assessment = assess_snapshot(
        environment, before, actual, expected, archived=archived, baseline=baseline
    )
    state = assessment.state
    repair: tuple[str, ...] = ()
    if state == EnvironmentState.SCHEMA_DRIFT and assessment.diff is not None:
        repair = invalid_leftovers(assessment.diff, actual)
        if repair and assessment.expected_revision is not None and assessment.pending:
            state = EnvironmentState.BEHIND  # if a pending revision rebuilds them (step 2)
    if state == EnvironmentState.SCHEMA_DRIFT and assessment.diff is not None:
        raise UpgradeDrift(
            f"{assessment.reason}; refusing to upgrade, {NOTHING_WRITTEN} (apply the "
            "missing change or remove the hand-made one first).\n\n"
            + assessment.diff.to_markdown(50),
            assessment.diff,
        )
    if (
        state not in (EnvironmentState.BEHIND, EnvironmentState.IN_SYNC)
        or assessment.expected_revision is None
        or before is None
    ):
        raise UpgradeRefused(f"{assessment.summary}; refusing to upgrade, {NOTHING_WRITTEN}.")
    pending = tuple(assessment.pending)
    if pending != pending_revisions(script, before, target):
        raise UpgradeRefused(
            f"{environment}: the expected schemas do not describe the revision files on "
            "disk now (refresh expected_schemas, then run the upgrade again); "
            f"{NOTHING_WRITTEN}."
        )
    current = assessment.expected_revision
    for revision in (current, target):
        if expected.snapshot(revision) is None:
            raise UpgradeRefused(
                f"{environment}: no expected schema for revision {revision} (refresh "
                f"expected_schemas); {NOTHING_WRITTEN}."
            )
    return RunTarget(
        environment=environment, project=project, script=script, target=target,
        before=before, current=current, pending=pending, before_snapshot=actual,
        expected=expected, schema=schema,
        patterns=exclusion_patterns(exclude, project.version_table),
        repair=repair, drift=assessment.diff if repair else None,
    )


def _repair_plan(work: RunTarget, rehearsal: RehearsalResult) -> dict[str, str]:
    """Which alone revision rebuilds each INVALID leftover; refuses the drift otherwise."""
    if not work.repair:
        return {}
    statements = {rev: rehearsal.statements_of(rev) for rev in rehearsal.alone}
    plan = rebuilders(work.repair, rehearsal.alone, statements)
    if plan is None:
        assert work.drift is not None
        raise UpgradeDrift(
            f"{work.environment}: schema drift: INVALID index(es) "
            f"{', '.join(work.repair)} that no pending revision builds again (CREATE INDEX "
            f"CONCURRENTLY, run as a step of its own); refusing to upgrade, "
            f"{NOTHING_WRITTEN} (drop them with DROP INDEX CONCURRENTLY, or fix the "
            f"revision that builds them).\n\n{work.drift.to_markdown(50)}",
            work.drift,
        )
    return plan


def _executed(
    script: ScriptDirectory, pending: Sequence[str], rehearsal: RehearsalResult
) -> tuple[ExecutedRevision, ...]:
    """What each pending revision executed in the rehearsal, in order (what the lint reads)."""
    revisions = []
    for revision in pending:
        found = script.get_revision(revision)
        revisions.append(
            ExecutedRevision(
                revision,
                found.path if found is not None else None,
                tuple(rehearsal.statements_of(revision)),
                in_transaction=revision not in rehearsal.alone,
            )
        )
    return tuple(revisions)


class PreChecksFailed(UpgradeRefused):
    """Read-only checks on the environment say the apply would fail on its rows."""

    def __init__(self, message: str, results: Sequence[PreCheckResult]) -> None:
        super().__init__(message)
        self.results = tuple(results)


def _prechecks(
    url: str, work: RunTarget, rehearsal: RehearsalResult, policy: UpgradePolicy
) -> tuple[PreCheckResult, ...]:
    """For a schema-only rehearsal: the derived pre-checks, run read-only on the
    environment; refuses when one says the apply would fail on its rows."""
    if rehearsal.copy is None or rehearsal.copy.mode != "schema":
        return ()
    checks = derive_prechecks(rehearsal.executed, schema=work.schema)
    results = run_prechecks(
        url, checks, statement_timeout_s=policy.statement_timeout_s,
        environment=work.environment,
    )
    failing = [r for r in results if r.would_fail]
    if failing:
        lines = "\n".join(f"- {r.message}" for r in failing)
        raise PreChecksFailed(
            f"{work.environment}: {len(failing)} read-only pre-check(s) on its rows say the "
            f"upgrade would fail ({failing[0].message}); refusing to upgrade, "
            f"{NOTHING_WRITTEN} (fix the rows or the revision first).\n\n{lines}",
            failing,
        )
    return tuple(results)


def lint_rehearsal(
    script: ScriptDirectory,
    pending: Sequence[str],
    rehearsal: RehearsalResult,
    policy: UpgradePolicy,
    *,
    before: Snapshot,
    on_environment: Sequence[Loss] = (),
) -> LintReport:
    """The findings of a rehearsal, as the upgrade blocks on them: squawk on the SQL each
    pending revision executed (outside a transaction for those that ran alone), plus one
    ``data-loss`` finding per loss counted (``before`` is the schema before the revisions:
    what counts as existing data; ``on_environment`` the pre-checks' losses)."""
    report = lint_executed(
        _executed(script, pending, rehearsal), excluded=policy.exclude,
        error_rules=policy.error_rules, preamble=policy.preamble(),
        server_version=before.server_version,
    )
    return _with_data_loss(
        report, rehearsal, policy, files=_files(script, pending), before=before,
        on_environment=on_environment,
    )


def _files(script: ScriptDirectory, revisions: Sequence[str]) -> dict[str, str | None]:
    found = {rev: script.get_revision(rev) for rev in revisions}
    return {rev: (r.path if r is not None else None) for rev, r in found.items()}


def _with_data_loss(
    report: LintReport,
    rehearsal: RehearsalResult,
    policy: UpgradePolicy,
    *,
    files: Mapping[str, str | None],
    before: Snapshot,
    on_environment: Sequence[Loss] = (),
) -> LintReport:
    """``report`` with one ``data-loss`` finding per loss the rehearsal (or, for a
    schema-only rehearsal, the pre-checks on the environment) counted."""
    if DATA_LOSS_RULE in {e.rule for e in policy.exclude}:
        return report
    losses = merge_losses(
        [*rehearsal.losses, *on_environment],
        losses_from_statistics(rehearsal.observed, before),
    )
    if not losses:
        return report
    return replace(report, findings=report.findings + tuple(as_findings(losses, files)))


def _rehearsal_refusal(environment: str, rehearsal: RehearsalResult) -> RehearsalFailed:
    """The refusal a failed rehearsal gives (a transaction boundary says what to do)."""
    details = (
        f"\n\n{rehearsal.diff.to_markdown(50)}"
        if rehearsal.diff is not None and not rehearsal.diff.is_empty
        else ""
    )
    if rehearsal.left_transaction:
        return TransactionBoundary(
            f"{environment}: {rehearsal.verdict}. The guarded upgrade runs every pending "
            "revision in one transaction so that a failure leaves nothing half-written; "
            "this revision cannot run that way (apply it with `alembic upgrade` in a "
            "maintenance window, or split the statement that needs its own transaction "
            f"into a revision applied that way). Refusing to upgrade; nothing was applied "
            f"to {environment} ({NOTHING_WRITTEN}).",
            rehearsal,
        )
    return RehearsalFailed(
        f"{environment}: {rehearsal.verdict}. Refusing to upgrade; nothing was applied to "
        f"{environment} ({NOTHING_WRITTEN}).{details}",
        rehearsal,
    )


def guarded_upgrade(
    url: str,
    *,
    environment: str,
    project: AlembicProject,
    expected: ExpectedSnapshots,
    scratch_url: str,
    policy: UpgradePolicy | None = None,
    script: ScriptDirectory | None = None,
    exclude: Iterable[str] = (),
    schema: str = "public",
    protected: bool = False,
    confirm: str | None = None,
    acknowledge: Iterable[str] = (),
    dry_run: bool = True,
    archived: Collection[str] = (),
    baseline: str | None = None,
    connect_timeout: int = 5,
    guard: WriteGuard | None = None,
) -> UpgradeResult:
    """Upgrade ``environment`` to the single head of the history, guarded (module doc).

    ``expected`` are the expected schemas of the history on disk (an
    :class:`~abparts_ops.core.history.expected.ExpectedSchemas`); the one reference
    (:func:`~abparts_ops.core.watch.reference.assess_snapshot`, with ``archived`` ids and the
    ``baseline``) says which revision's schema the environment must have and what is
    pending. ``scratch_url`` is a database on the server where the rehearsal's scratch
    copy is made. ``guard`` is the write guard (default: one made of ``protected`` and
    ``confirm`` alone). Raises :class:`UpgradeRefused` (nothing written, proven by a
    re-read once the apply has begun) on every refusal, :class:`UpgradeHalfApplied`
    when a failed apply left something written, :class:`UpgradeVerificationFailed`
    when the applied result is not the expected one.
    """
    script = script or project.script()
    heads = script.get_heads()
    if len(heads) != 1:
        raise UpgradeRefused(
            f"{environment}: the Alembic history has {len(heads)} heads "
            f"({', '.join(sorted(heads)) or 'none'}); an upgrade needs exactly one (merge "
            f"them with `alembic merge`); {NOTHING_WRITTEN}."
        )
    target = heads[0]

    def locate(conn: Connection) -> RunTarget:
        return _check(
            conn, environment=environment, project=project, script=script, target=target,
            expected=expected, exclude=exclude, schema=schema, archived=archived,
            baseline=baseline,
        )

    return guarded_run(
        url, locate, environment=environment, scratch_url=scratch_url,
        policy=policy or UpgradePolicy(),
        guard=guard or WriteGuard(environment, protected=protected, confirm=confirm),
        acknowledge=acknowledge, dry_run=dry_run, exclude=exclude, schema=schema,
        privileges=expected.privileges, connect_timeout=connect_timeout,
    )


Locate = Callable[[Connection], RunTarget]
"""Step 1 of a guarded run: reads the environment and says what to run (or refuses)."""


def guarded_run(
    url: str,
    locate: Locate,
    *,
    environment: str,
    scratch_url: str,
    policy: UpgradePolicy,
    guard: WriteGuard,
    acknowledge: Iterable[str] = (),
    dry_run: bool = True,
    exclude: Iterable[str] = (),
    schema: str = "public",
    privileges: bool = False,
    connect_timeout: int = 5,
) -> UpgradeResult:
    """The steps every guarded run of revisions shares (module doc, steps 2 to 6).

    ``locate`` is step 1, on a first connection after the guard's look: it returns the
    :class:`RunTarget` (which history, which revisions, what the result must be, the version
    rows to end at and what to do after the last revision in its transaction) or
    refuses. Used by :func:`guarded_upgrade` and the catch-up across a reset.
    """
    acknowledged = tuple(sorted(set(acknowledge)))
    started = time.perf_counter()
    timings: dict[str, float] = {}
    guard.check_request(dry_run=dry_run, what="upgrade", refuse=UpgradeRefused)
    if acknowledged:
        try:
            check_rule_names(acknowledged, where=f"{environment}: run config acknowledge")
        except AbpartsOpsError as exc:
            raise UpgradeRefused(f"{str(exc).rstrip('.')}; {NOTHING_WRITTEN}.") from None
    engine = make_engine(url, label=environment, connect_timeout=connect_timeout)
    work: RunTarget | None = None
    applying = False

    def read_back() -> tuple[tuple[str, ...] | None, Snapshot]:
        assert work is not None
        with connect(engine, label=environment) as conn:
            rows = current_revisions(
                conn, version_table=work.project.version_table, schema=work.vt_schema
            )
            now = snapshot_connection(
                conn, schema=schema, exclude=exclude,
                version_table=work.project.version_table, source=environment,
                privileges=privileges,
            )
        return rows, now

    try:
        with connect(engine, label=environment) as conn:
            looked = guard.inspect(conn, dry_run=dry_run, what="upgrade", refuse=UpgradeRefused)
            work = locate(conn)
        timings["check"] = time.perf_counter() - started
        project, script, target, expected = work.project, work.script, work.target, work.expected
        final = work.final or target
        expected_head = expected.snapshot(target)
        assert expected_head is not None
        common: dict[str, Any] = {
            "environment": environment,
            "target": final,
            "before": work.before,
            "pending": work.pending,
            "before_fingerprint": work.before_snapshot.fingerprint,
            "expected_fingerprint": expected_head.fingerprint,
            "acknowledged": acknowledged,
            "guard": looked,
        }
        if not work.pending:
            return UpgradeResult(
                **common, action="noop", after=work.before, applied=(),
                after_fingerprint=work.before_snapshot.fingerprint, lock_wait_ms=0.0,
                seconds=time.perf_counter() - started, timings=timings,
                message=f"{environment} is already at the head {target}; nothing to do.",
            )
        mark = time.perf_counter()
        rehearsal = rehearse(
            url, scratch_url, environment=environment, project=project, script=script,
            current=work.before, target=target,
            expected_from=expected.snapshot(work.current) or work.before_snapshot,
            expected=expected_head, server_version=work.before_snapshot.server_version,
            schema=schema, exclude=exclude, privileges=privileges,
            statement_timeout_s=policy.statement_timeout_s,
            lock_timeout_s=policy.lock_timeout_s, copy=policy.rehearsal,
        )
        timings["rehearsal"] = time.perf_counter() - mark
        if not rehearsal.passed:
            raise _rehearsal_refusal(environment, rehearsal)
        repair = _repair_plan(work, rehearsal)
        mark = time.perf_counter()
        prechecked = _prechecks(url, work, rehearsal, policy)
        timings["prechecks"] = time.perf_counter() - mark
        mark = time.perf_counter()
        report = lint_rehearsal(
            script, work.pending, rehearsal, policy,
            before=expected.snapshot(work.current) or work.before_snapshot,
            on_environment=losses_on_environment(prechecked, work.before_snapshot),
        )
        timings["lint"] = time.perf_counter() - mark
        blocking = report.blocking(acknowledged) if policy.block_on_lint_errors else ()
        common.update(
            rehearsal=rehearsal, lint=report, blocking=blocking, prechecks=prechecked
        )
        then = f" then {work.epilogue_says}" if work.epilogue_says else ""
        if dry_run:
            would = (
                f"; would be BLOCKED by {len(blocking)} error-level finding(s) "
                f"({', '.join(sorted({f.rule for f in blocking}))}) unless acknowledged"
                if blocking else ""
            )
            return UpgradeResult(
                **common, action="dry_run", after=None, applied=(), after_fingerprint=None,
                lock_wait_ms=0.0, seconds=time.perf_counter() - started, timings=timings,
                message=(
                    f"dry run: would apply {len(work.pending)} revision(s) to {environment} "
                    f"({version_rows_text(work.before)} -> {target}){then}; rehearsal passed; "
                    f"{len(report.findings)} lint finding(s){would}. Nothing was written."
                ),
            )
        if blocking:
            rules = sorted({f.rule for f in blocking})
            raise LintBlocked(
                f"{environment}: {len(blocking)} error-level squawk finding(s) block the "
                f"upgrade ({', '.join(rules)}); acknowledge them by rule name in run config "
                f"`acknowledge: [{', '.join(rules)}]` after review; {NOTHING_WRITTEN}.\n\n"
                + report.to_markdown(),
                report,
                blocking,
            )
        progress = RunProgress()
        applying = True
        mark = time.perf_counter()
        try:
            with engine.connect() as conn:
                entered = _apply(
                    conn, work, policy=policy, guard=guard, progress=progress,
                    alone=rehearsal.alone, repair=repair,
                )
        except Exception as exc:  # noqa: BLE001 - whatever stopped it, the re-read tells
            if isinstance(exc, _Refusal):
                why = _first_line(exc.error)
            else:
                why = _why(exc, url=url, progress=progress, policy=policy)
            truth = what_was_written(
                work, why, read_back, url=url, running=progress.current
            )
            if isinstance(exc, _Refusal) and isinstance(truth, UpgradeRefused):
                raise exc.error from None
            raise truth from None
        timings["apply"] = time.perf_counter() - mark
        mark = time.perf_counter()
        after, result = read_back()
        timings["verify"] = time.perf_counter() - mark
        check = diff_snapshots(
            expected_head, result, reference_label=f"expected at {final}",
            actual_label=environment,
        )
        if after != (final,) or not check.is_empty:
            raise UpgradeVerificationFailed(
                f"{environment}: the revisions were applied, but verification found "
                f"{version_rows_text(after)} and {len(check.changes)} difference(s) from the "
                "schema "
                f"expected at {final} (inspect the environment).\n\n{check.to_markdown(50)}",
                check,
            )
        applied = tuple(progress.applied)
        common["guard"] = entered
        common["alone"] = tuple(progress.alone)
        common["repaired"] = tuple(progress.repaired)
        common["observed"] = dict(progress.observed)
        return UpgradeResult(
            **common, action=work.action, after=after, applied=applied,
            after_fingerprint=result.fingerprint, lock_wait_ms=entered.lock_wait_ms,
            seconds=time.perf_counter() - started, timings=timings,
            message=(
                f"{work.action.replace('_', ' ')} {environment}: "
                f"{version_rows_text(work.before)} -> "
                f"{target} ({len(applied)} revision(s), "
                + ", ".join(f"{a.revision} {a.seconds:.2f} s" for a in applied)
                + f"){then}"
                + (
                    f"; {', '.join(progress.alone)} ran as step(s) of their own, in "
                    "autocommit, the version row advancing revision by revision"
                    if progress.alone
                    else "; all in one transaction"
                )
                + f"; verified against the schema expected at {final}."
            ),
        )
    except UpgradeRefused:
        raise
    except AbpartsOpsError as exc:
        if applying:
            raise
        # Unreachable, no pg_dump, a dump that does not restore, no squawk: before the
        # apply step nothing has been written, and the refusal says so.
        raise UpgradeRefused(f"{exc} Refusing to upgrade; {NOTHING_WRITTEN}.") from None
    except (DBAPIError, psycopg2.Error) as exc:
        raise UpgradeRefused(
            scrub(
                f"{environment}: cannot use {redact_url(url)}: {_first_line(exc)} "
                f"({NOTHING_WRITTEN}).",
                url,
            )
        ) from None
    finally:
        engine.dispose()
