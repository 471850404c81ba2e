"""The guarded ``alembic upgrade``: new revisions reach an environment proven first.

In this order (any refusal raises :class:`~abparts_ops.core.errors.UpgradeRefused` and
leaves the environment exactly as it was):

1. **check**: the environment is at one revision the history knows, and its schema equals
   the schema the history says that revision has (otherwise the diff is shown);
2. **rehearsal** (:mod:`.rehearsal`): the pending revisions run on a scratch copy of the
   environment's own ``pg_dump --schema-only``; the result must equal the head's expected
   schema;
3. **lint** (:mod:`.lint`): squawk on the pending revisions' offline SQL; with
   ``block_on_lint_errors`` an error-level finding blocks unless its rule is acknowledged;
4. a dry run stops here. (A real run of a protected environment needs
   ``confirm == environment``; that is checked before step 1, so a missing confirmation
   costs nothing. A revision with an ``autocommit_block`` is refused before step 2.)
5. **apply**, in ONE transaction: ``SET LOCAL lock_timeout`` and ``statement_timeout``
   from the policy, the environment's advisory lock (:mod:`.locking`, the stamp's), the
   version rows and the schema read again under the lock (they must not have moved since
   step 1), then every pending revision through the application's Alembic scripts, each
   timed, then COMMIT. Any error, a lock timeout or a killed connection rolls everything
   back: the environment stays at its revision, never half-way;
6. **verify**: a new connection reads the version rows (the head) and the schema (the
   head's expected schema).

Step 1 asks the project's one reference (:func:`~abparts_ops.core.reference.
assess_snapshot` over the expected schemas of the history): only an environment in sync
(nothing to do) or behind with the schema of its own revision may go on; schema drift,
an unknown revision or one awaiting its stamp are refused with the reference's reason.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg2
from alembic.runtime.environment import EnvironmentContext
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError

from abparts_ops.core.db import connect, make_engine, redact_url, scrub
from abparts_ops.core.errors import AbpartsOpsError, MigrationError, UpgradeRefused
from abparts_ops.core.migrations.lint import (
    DEFAULT_ERROR_RULES,
    LintExclusion,
    LintFinding,
    LintReport,
    lint_pending,
)
from abparts_ops.core.migrations.locking import LockBusy, acquire_environment_lock
from abparts_ops.core.migrations.migrate import current_revisions
from abparts_ops.core.migrations.project import AlembicProject
from abparts_ops.core.migrations.rehearsal import RehearsalResult, rehearse
from abparts_ops.core.reference import ExpectedSnapshots, assess_snapshot
from abparts_ops.core.schema.diff import SchemaDiff, diff_snapshots
from abparts_ops.core.schema.introspect import (
    exclusion_patterns,
    fetch_rows,
    snapshot_connection,
    snapshot_from_rows,
)
from abparts_ops.core.schema.model import Snapshot
from abparts_ops.core.states import EnvironmentState

NOTHING_WRITTEN = "nothing was written"
_LOCK_TIMEOUT = "55P03"
_QUERY_CANCELED = "57014"


@dataclass(frozen=True)
class UpgradePolicy:
    """How upgrades of one environment are bounded and linted (from the configuration).

    ``lock_timeout_s`` bounds every lock wait of the migration transaction (and the wait
    for the advisory lock); ``statement_timeout_s`` every statement; ``client_check_s`` is
    how often the server checks, while a statement runs, that the client is still there.
    ``exclude`` rules
    are never checked; with ``block_on_lint_errors`` an error-level finding refuses the
    upgrade unless the run acknowledges its rule. ``error_rules`` are the squawk rules
    whose findings are error-level.
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

    def preamble(self) -> list[str]:
        """The SET statements the migration transaction starts with (also linted)."""
        return [
            f"SET lock_timeout = '{_ms(self.lock_timeout_s)}ms';",
            f"SET statement_timeout = '{_ms(self.statement_timeout_s)}ms';",
        ]


@dataclass(frozen=True)
class AppliedRevision:
    """One revision applied to the environment and how long it took."""

    revision: str
    seconds: float
    file: str | None = None


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


class UpgradeVerificationFailed(MigrationError):
    """The revisions were applied, but the result is not the head's expected schema."""

    def __init__(self, message: str, diff: SchemaDiff | None) -> None:
        super().__init__(message)
        self.diff = diff


def _ms(seconds: float) -> int:
    return max(1, int(round(seconds * 1000)))


def _describe(revisions: Sequence[str] | None) -> str:
    if revisions is None:
        return "no version table"
    return ", ".join(revisions) if revisions else "empty version table"


def pending_revisions(
    script: ScriptDirectory, current: Sequence[str], target: str
) -> tuple[str, ...]:
    """The revisions ``upgrade current -> target`` runs, oldest first."""
    steps = script.iterate_revisions(target, tuple(current))
    return tuple(rev.revision for rev in reversed(list(steps)) if rev.revision not in current)


def _first_line(exc: BaseException) -> str:
    source: Any = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
    lines = str(source).strip().splitlines()
    return lines[0].strip() if lines else exc.__class__.__name__


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


@dataclass
class _Progress:
    current: str | None = None
    started: float = 0.0
    applied: list[AppliedRevision] = field(default_factory=list)


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


def _apply(
    conn: Connection,
    *,
    environment: str,
    project: AlembicProject,
    script: ScriptDirectory,
    target: str,
    before: tuple[str, ...],
    before_snapshot: Snapshot,
    policy: UpgradePolicy,
    schema: str,
    patterns: list[str],
    progress: _Progress,
    privileges: bool = False,
) -> float:
    """The migration transaction (module doc, step 5); returns the lock wait in ms."""
    vt_schema = project.version_table_schema or schema
    with conn.begin() as transaction:
        conn.exec_driver_sql("SET TRANSACTION ISOLATION LEVEL READ COMMITTED")
        conn.exec_driver_sql(f"SET LOCAL lock_timeout = {_ms(policy.lock_timeout_s)}")
        conn.exec_driver_sql(f"SET LOCAL statement_timeout = {_ms(policy.statement_timeout_s)}")
        # A client that dies mid-statement (kill -9 of the run) is noticed by the server
        # within this interval: it cancels the statement and releases the locks.
        conn.exec_driver_sql(
            f"SET LOCAL client_connection_check_interval = {_ms(policy.client_check_s)}"
        )
        try:
            waited = acquire_environment_lock(
                conn,
                schema=vt_schema,
                version_table=project.version_table,
                timeout_s=policy.lock_timeout_s,
                environment=environment,
                what="upgrade",
            )
        except LockBusy as exc:
            refused = UpgradeRefused(f"{exc} Refusing to upgrade; {NOTHING_WRITTEN}.")
            raise _Refusal(refused) from None
        now = current_revisions(conn, version_table=project.version_table, schema=vt_schema)
        if now != before:
            raise _Refusal(
                UpgradeRefused(
                    f"{environment}: its version rows changed during the upgrade's checks "
                    f"({_describe(before)} -> {_describe(now)}); refusing to upgrade, "
                    f"{NOTHING_WRITTEN} (run it again)."
                )
            )
        again = _snapshot_in_transaction(
            conn,
            schema=schema,
            patterns=patterns,
            environment=environment,
            privileges=privileges,
        )
        moved = diff_snapshots(before_snapshot, again, reference_label="checked",
                               actual_label=environment)
        if not moved.is_empty:
            raise _Refusal(
                UpgradeDrift(
                    f"{environment}: its schema changed during the upgrade's checks "
                    f"({len(moved.changes)} object(s)); refusing to upgrade, "
                    f"{NOTHING_WRITTEN} (run it again).\n\n{moved.to_markdown(50)}",
                    moved,
                )
            )

        def fn(heads: Any, context: MigrationContext) -> Iterator[Any]:
            for step in script._upgrade_revs(target, heads):
                progress.current = step.revision.revision
                progress.started = time.perf_counter()
                yield step

        def on_apply(*, ctx: Any, step: Any, heads: Any, run_args: Any) -> None:
            if progress.current is not None:
                revision = script.get_revision(progress.current)
                progress.applied.append(
                    AppliedRevision(
                        progress.current,
                        time.perf_counter() - progress.started,
                        revision.path if revision is not None else None,
                    )
                )
            progress.current = None

        with EnvironmentContext(project.config(), script, fn=fn, destination_rev=target) as env:
            env.configure(
                connection=conn,
                target_metadata=None,
                version_table=project.version_table,
                version_table_schema=project.version_table_schema,
                transaction_per_migration=False,
                on_version_apply=on_apply,
            )
            env.run_migrations()
        transaction.commit()
    return waited


def _apply_failure(
    exc: BaseException,
    *,
    environment: str,
    url: str,
    script: ScriptDirectory,
    progress: _Progress,
    policy: UpgradePolicy,
    before: tuple[str, ...],
    read_after: Callable[[], tuple[str, ...] | None],
) -> AbpartsOpsError:
    """Explain a failed migration transaction; check it really rolled back."""
    first = _first_db_error(exc)
    revision = progress.current
    rev = script.get_revision(revision) if revision else None
    where = f" ({os.path.basename(rev.path)})" if rev is not None and rev.path else ""
    statement = _statement_of(exc)
    shown = f"; statement: {' '.join(str(statement).split())[:500]}" if statement else ""
    during = f"revision {revision}{where}" if revision else "the migration transaction"
    code = _pgcode(first)
    detail = scrub(_first_line(first), url)
    if code == _LOCK_TIMEOUT:
        why = (
            f"lock_timeout ({policy.lock_timeout_s:g} s) reached while {during} waited for a "
            f"lock{shown}: another transaction holds a lock on that table (let it finish, "
            "or raise upgrade.lock_timeout_s)"
        )
    elif code == _QUERY_CANCELED and "statement timeout" in detail:
        why = (
            f"statement_timeout ({policy.statement_timeout_s:g} s) reached in {during}{shown} "
            "(make the revision faster, or raise upgrade.statement_timeout_s)"
        )
    elif isinstance(first, (DBAPIError, psycopg2.Error)):
        why = f"{during} failed: {detail}{shown}"
    else:
        why = f"{during} failed: {exc.__class__.__name__}: {scrub(str(exc), url)[:300]}"
    try:
        after = read_after()
    except AbpartsOpsError:
        return MigrationError(
            f"{environment}: the upgrade was interrupted ({why}), and the version rows "
            "cannot be read now: check the environment before anything else."
        )
    if after != before:
        return MigrationError(
            f"{environment}: the upgrade was interrupted ({why}), and the version rows are "
            f"now {_describe(after)} (expected {_describe(before)}): check the environment."
        )
    return UpgradeRefused(
        f"{environment}: upgrade aborted and rolled back: {why}. Version rows still "
        f"{_describe(before)}; {NOTHING_WRITTEN}."
    )


def _refuse_autocommit_blocks(
    script: ScriptDirectory, pending: Sequence[str], environment: str
) -> None:
    """Refuse revisions that leave the transaction (``autocommit_block``) up front.

    The apply step runs every pending revision in one transaction, which is what makes a
    failure, a lock timeout or a lost connection leave the environment at its revision;
    a revision that commits half-way (``CREATE INDEX CONCURRENTLY`` in an
    ``autocommit_block``) would break that promise, so it is not run at all.
    """
    for revision in pending:
        script_rev = script.get_revision(revision)
        path = script_rev.path if script_rev is not None else None
        try:
            text = Path(path).read_text(encoding="utf-8") if path else ""
        except OSError:
            text = ""
        if "autocommit_block" in text:
            raise UpgradeRefused(
                f"{environment}: revision {revision} ({os.path.basename(path or '')}) uses "
                "autocommit_block, which commits outside the guarded upgrade's single "
                "transaction; apply it with `alembic upgrade` in a maintenance window, or "
                f"move the concurrent statement into its own process; {NOTHING_WRITTEN}."
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
) -> UpgradeResult:
    """Upgrade ``environment`` to the single head of the history, guarded (module doc).

    ``expected`` are the expected schemas of the history on disk (an
    :class:`~abparts_ops.core.migrations.expected.ExpectedSchemas`); the one reference
    (:func:`~abparts_ops.core.reference.assess_snapshot`, with ``archived`` ids and the
    ``baseline``) says which revision's schema the environment must have and what is
    pending. ``scratch_url`` is a database on the server where the rehearsal's scratch
    copy is made. Raises :class:`UpgradeRefused` (nothing written) on every refusal,
    :class:`UpgradeVerificationFailed` when the applied result is not the expected one.
    """
    policy = policy or UpgradePolicy()
    script = script or project.script()
    acknowledged = tuple(sorted(set(acknowledge)))
    started = time.perf_counter()
    timings: dict[str, float] = {}
    heads = script.get_heads()
    if len(heads) != 1:
        raise UpgradeRefused(
            f"{environment}: the Alembic history has {len(heads)} heads "
            f"({', '.join(sorted(heads)) or 'none'}); an upgrade needs exactly one (merge "
            f"them with `alembic merge`); {NOTHING_WRITTEN}."
        )
    target = heads[0]
    if not dry_run and protected and confirm != environment:
        raise UpgradeRefused(
            f"{environment} is protected: set run config `confirm: {environment}` to upgrade "
            f"it ({NOTHING_WRITTEN})."
        )
    vt_schema = project.version_table_schema or schema
    patterns = exclusion_patterns(exclude, project.version_table)
    engine = make_engine(url, label=environment, connect_timeout=connect_timeout)
    applying = False

    def read_rows() -> tuple[str, ...] | None:
        with connect(engine, label=environment) as conn:
            return current_revisions(conn, version_table=project.version_table, schema=vt_schema)

    try:
        with connect(engine, label=environment) as conn:
            before = current_revisions(
                conn, version_table=project.version_table, schema=vt_schema
            )
            actual = snapshot_connection(
                conn, schema=schema, exclude=exclude, version_table=project.version_table,
                source=environment, privileges=expected.privileges,
            )
        timings["check"] = time.perf_counter() - started
        assessment = assess_snapshot(
            environment, before, actual, expected, archived=archived, baseline=baseline
        )
        state = assessment.state
        if state == EnvironmentState.SCHEMA_DRIFT and assessment.diff is not None:
            raise UpgradeDrift(
                f"{assessment.reason}; refusing to upgrade, {NOTHING_WRITTEN} (apply the "
                "missing change or remove the hand-made one first).\n\n"
                + assessment.diff.to_markdown(50),
                assessment.diff,
            )
        if state not in (EnvironmentState.BEHIND, EnvironmentState.IN_SYNC) or (
            assessment.expected_revision is None
        ):
            raise UpgradeRefused(
                f"{assessment.summary}; refusing to upgrade, {NOTHING_WRITTEN}."
            )
        current = assessment.expected_revision
        pending = tuple(assessment.pending)
        if pending != pending_revisions(script, before, target):
            raise UpgradeRefused(
                f"{environment}: the expected schemas do not describe the revision files on "
                "disk now (refresh expected_schemas, then run the upgrade again); "
                f"{NOTHING_WRITTEN}."
            )
        expected_now = expected.snapshot(current)
        expected_head = expected.snapshot(target)
        if expected_now is None or expected_head is None:
            raise UpgradeRefused(
                f"{environment}: no expected schema for revision "
                f"{current if expected_now is None else target} (refresh expected_schemas); "
                f"{NOTHING_WRITTEN}."
            )
        common: dict[str, Any] = {
            "environment": environment,
            "target": target,
            "before": before,
            "pending": pending,
            "before_fingerprint": actual.fingerprint,
            "expected_fingerprint": expected_head.fingerprint,
            "acknowledged": acknowledged,
        }
        if not pending:
            return UpgradeResult(
                **common, action="noop", after=before, applied=(),
                after_fingerprint=actual.fingerprint, lock_wait_ms=0.0,
                seconds=time.perf_counter() - started, timings=timings,
                message=f"{environment} is already at the head {target}; nothing to do.",
            )
        _refuse_autocommit_blocks(script, pending, environment)
        mark = time.perf_counter()
        rehearsal = rehearse(
            url, scratch_url, environment=environment, project=project, script=script,
            current=before, target=target, expected_from=expected_now, expected=expected_head,
            server_version=actual.server_version, schema=schema, exclude=exclude,
            privileges=expected.privileges,
        )
        timings["rehearsal"] = time.perf_counter() - mark
        if not rehearsal.passed:
            details = f"\n\n{rehearsal.diff.to_markdown(50)}" if rehearsal.diff else ""
            raise RehearsalFailed(
                f"{environment}: {rehearsal.verdict}. Refusing to upgrade; nothing was "
                f"applied to {environment} ({NOTHING_WRITTEN}).{details}",
                rehearsal,
            )
        mark = time.perf_counter()
        report = lint_pending(
            project, script, before, target, excluded=policy.exclude,
            error_rules=policy.error_rules, preamble=policy.preamble(),
            server_version=actual.server_version,
        )
        timings["lint"] = time.perf_counter() - mark
        blocking = report.blocking(acknowledged) if policy.block_on_lint_errors else ()
        common.update(rehearsal=rehearsal, lint=report, blocking=blocking)
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
                    f"dry run: would apply {len(pending)} revision(s) to {environment} "
                    f"({_describe(before)} -> {target}); rehearsal passed; "
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
        progress = _Progress()
        applying = True
        mark = time.perf_counter()
        try:
            with engine.connect() as conn:
                waited = _apply(
                    conn, environment=environment, project=project, script=script,
                    target=target, before=before, before_snapshot=actual, policy=policy,
                    schema=schema, patterns=patterns, progress=progress,
                    privileges=expected.privileges,
                )
        except _Refusal as refusal:
            raise refusal.error from None
        except AbpartsOpsError as exc:
            raise _apply_failure(
                exc, environment=environment, url=url, script=script, progress=progress,
                policy=policy, before=before, read_after=read_rows,
            ) from None
        except Exception as exc:  # noqa: BLE001 - any error of a revision: it rolled back
            raise _apply_failure(
                exc, environment=environment, url=url, script=script, progress=progress,
                policy=policy, before=before, read_after=read_rows,
            ) from None
        timings["apply"] = time.perf_counter() - mark
        mark = time.perf_counter()
        with connect(engine, label=environment) as conn:
            after = current_revisions(
                conn, version_table=project.version_table, schema=vt_schema
            )
            result = snapshot_connection(
                conn, schema=schema, exclude=exclude, version_table=project.version_table,
                source=environment, privileges=expected.privileges,
            )
        timings["verify"] = time.perf_counter() - mark
        check = diff_snapshots(
            expected_head, result, reference_label=f"expected at {target}",
            actual_label=environment,
        )
        if after != (target,) or not check.is_empty:
            raise UpgradeVerificationFailed(
                f"{environment}: the revisions were applied, but verification found "
                f"{_describe(after)} and {len(check.changes)} difference(s) from the schema "
                f"expected at {target} (inspect the environment).\n\n{check.to_markdown(50)}",
                check,
            )
        applied = tuple(progress.applied)
        return UpgradeResult(
            **common, action="upgraded", after=after, applied=applied,
            after_fingerprint=result.fingerprint, lock_wait_ms=waited,
            seconds=time.perf_counter() - started, timings=timings,
            message=(
                f"upgraded {environment}: {_describe(before)} -> {target} "
                f"({len(applied)} revision(s), "
                + ", ".join(f"{a.revision} {a.seconds:.2f} s" for a in applied)
                + "); verified against the head's expected schema."
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

