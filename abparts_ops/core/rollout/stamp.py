"""The guarded ``alembic stamp``: the one step of the reset that writes to an environment.

A stamp writes only the proven baseline (``target``, the revision ``baseline_revision``
proved), and only where the schema is what the history builds at that baseline. In this
order, inside one transaction: take a PostgreSQL advisory lock for the environment's
version table (a concurrent stamp waits a bounded time, then fails); read the database's
identity and let the caller's guard refuse it (same database as another environment, a
protected database that changed); read the version rows; snapshot the schema and ask the
one reference (:func:`abparts_ops.core.watch.reference.assess_snapshot`) which state the
environment is in: in sync is a no-op, awaiting its stamp or an unknown id over the
baseline's schema is stamped, anything else refuses (schema drift with the diff; a
revision of the current history, or a head that moved past the baseline: upgrade
instead); stop there on a dry run; require the confirmation of a protected environment;
replace the version rows with the baseline through Alembic's ``MigrationContext`` with
purge semantics (ids of the archived history and ids found in no history are listed
apart); commit; re-read and verify in a new connection. The only DDL that can ever run
is the creation of a missing version table, and the result says so.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass, field

import psycopg2
import sqlalchemy as sa
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError

from abparts_ops.core.db import connect, explain_error, make_engine
from abparts_ops.core.errors import AbpartsOpsError, MigrationError, StampRefused
from abparts_ops.core.history.migrate import current_revisions
from abparts_ops.core.rollout.identity import DatabaseIdentity
from abparts_ops.core.rollout.write_guard import NOTHING_WRITTEN, GuardReport, WriteGuard
from abparts_ops.core.schema.diff import SchemaDiff
from abparts_ops.core.schema.introspect import exclusion_patterns, fetch_rows, snapshot_from_rows
from abparts_ops.core.watch.reference import Assessment, ExpectedSnapshots, assess_snapshot
from abparts_ops.core.watch.states import EnvironmentState, version_rows_text


@dataclass(frozen=True)
class StampResult:
    """What a stamp did (or, on a dry run, would do) to one environment.

    ``action`` is ``noop`` (already at the target, or in sync at the head), ``dry_run``
    or ``stamped``. ``purged`` lists every id the stamp removes; ``purged_archived`` those
    of the archived history and ``purged_unknown`` those found in no history. ``state``
    is the environment's state before the stamp (see :mod:`abparts_ops.core.watch.states`).
    """

    environment: str
    action: str
    target: str
    before: tuple[str, ...] | None
    after: tuple[str, ...] | None
    purged: tuple[str, ...]
    creates_version_table: bool
    reference_fingerprint: str
    actual_fingerprint: str
    lock_wait_ms: float
    message: str
    diff: SchemaDiff | None = field(default=None, compare=False)
    purged_archived: tuple[str, ...] = ()
    purged_unknown: tuple[str, ...] = ()
    state: str = ""
    head: str | None = None
    identity: DatabaseIdentity | None = None
    guard: GuardReport | None = field(default=None, compare=False)


class SchemaDrift(StampRefused):
    """The environment's schema differs from the expected one; ``diff`` says how."""

    def __init__(self, message: str, diff: SchemaDiff) -> None:
        super().__init__(message)
        self.diff = diff


@dataclass
class _Progress:
    """How far a stamp got, so a database error can say whether anything was written."""

    committing: bool = False
    committed: bool = False
    before: tuple[str, ...] | None = None
    reread: tuple[str, ...] | None | str = "unread"


def guarded_stamp(
    url: str | sa.URL,
    *,
    environment: str,
    script: ScriptDirectory,
    expected: ExpectedSnapshots,
    target: str | None = None,
    archived: Collection[str] = (),
    exclude: Iterable[str] = (),
    schema: str = "public",
    version_table: str = "alembic_version",
    version_table_schema: str | None = None,
    protected: bool = False,
    confirm: str | None = None,
    dry_run: bool = True,
    lock_timeout_s: float = 10.0,
    connect_timeout: int = 5,
    allow_behind_head: bool = False,
    guard: WriteGuard | None = None,
) -> StampResult:
    """Stamp ``environment`` with the proven baseline ``target``, guarded (module doc).

    ``expected`` are the expected schemas of the on-disk history (``script``);
    ``target`` the baseline ``baseline_revision`` proved (default: the history's root);
    ``archived`` the ids of the archived history. Raises :class:`StampRefused` (nothing
    written) when the target is not in the history, the head moved past it (unless
    ``allow_behind_head``: the environment is then stamped and left behind, for an
    upgrade), the environment's state is not one a stamp fixes, the schema differs from
    the expected schema at ``target``, or the write guard refuses
    (:mod:`abparts_ops.core.rollout.write_guard`: ``guard``, or one made of ``protected`` and
    ``confirm`` alone: a confirm naming another environment, a protected environment
    without ``confirm == environment``, another stamp or upgrade holding the lock, a
    database that is another environment's, a protected database that changed).
    """
    guard = guard or WriteGuard(environment, protected=protected, confirm=confirm)
    heads = tuple(sorted(script.get_heads()))
    known = {rev.revision for rev in script.walk_revisions()}
    target = target or (expected.order[0] if expected.order else None)
    if not target or target not in known or not expected.knows(target):
        raise StampRefused(
            f"{environment}: the proven baseline {target or '(none)'} is not in the history "
            "on disk (or the expected schemas do not know it); rerun reset_baseline and "
            "refresh_history before stamping (nothing was written)."
        )
    moved_on = heads != (target,)
    if moved_on and len(heads) != 1:
        raise StampRefused(
            f"{environment}: the Alembic history has {len(heads)} heads "
            f"({', '.join(heads) or 'none'}); a stamp needs exactly one (merge them with "
            "`alembic merge heads`; nothing was written)."
        )
    vt_schema = version_table_schema or schema
    progress = _Progress()
    engine = make_engine(url, label=environment, connect_timeout=connect_timeout)
    try:
        # Not db.connect(): when the connection dies mid-transaction, the error that
        # explains it is the first one (e.g. "terminating connection due to administrator
        # command"), not the "connection already closed" of the rollback that follows.
        with engine.connect() as conn:
            result = _stamp_in_transaction(
                conn,
                environment=environment,
                script=script,
                target=target,
                head=heads[0],
                expected=expected,
                archived=archived,
                patterns=exclusion_patterns(exclude, version_table),
                schema=schema,
                version_table=version_table,
                vt_schema=vt_schema,
                dry_run=dry_run,
                lock_timeout_s=lock_timeout_s,
                allow_behind_head=allow_behind_head,
                guard=guard,
                progress=progress,
            )
        if result.action != "stamped":
            return result
        with connect(engine, label=environment) as conn:
            after = current_revisions(conn, version_table=version_table, schema=vt_schema)
        if after != (target,):
            raise MigrationError(
                f"{environment}: verification after the stamp read {version_rows_text(after)}, "
                f"expected {target} (inspect the version table; rerun the stamp)."
            )
        return StampResult(**{**result.__dict__, "after": after})
    except (DBAPIError, psycopg2.Error) as exc:
        error = _explain(exc, environment, url)
        if progress.committing and not progress.committed:
            progress.reread = _reread(engine, environment, version_table, vt_schema)
        raise _with_outcome(error, progress) from None
    except AbpartsOpsError as exc:
        if isinstance(exc, (StampRefused, MigrationError)) or progress.committed:
            raise
        raise _with_outcome(exc, progress) from None
    finally:
        engine.dispose()


def _reread(
    engine: sa.Engine, environment: str, version_table: str, vt_schema: str
) -> tuple[str, ...] | None | str:
    """The version rows read in a new connection, or ``"unread"`` when that fails too."""
    try:
        with connect(engine, label=environment) as conn:
            return current_revisions(conn, version_table=version_table, schema=vt_schema)
    except (AbpartsOpsError, DBAPIError, psycopg2.Error):
        return "unread"


def _with_outcome(error: AbpartsOpsError, progress: _Progress) -> AbpartsOpsError:
    """``error`` with one plain sentence saying whether the stamp wrote anything."""
    text = str(error).rstrip()
    note = f"{NOTHING_WRITTEN} (the stamp's transaction did not commit)"
    if progress.committing and not progress.committed:
        if progress.reread == "unread":
            note = (
                "the connection failed while committing and the version table could not be "
                "read again, so the stamp may or may not have been written: run the checks "
                "(verify_environments) before stamping again"
            )
        elif progress.reread == progress.before:
            note = (
                "nothing was written (the connection failed before the commit; the version "
                f"table, read again, still holds {version_rows_text(progress.before)})"
            )
        else:
            note = (
                "the connection failed while committing, but the version table now reads "
                f"{version_rows_text(progress.reread)}: the stamp was written; run the checks"
            )
    if note in text:
        return error
    first, _, rest = text.partition("\n")
    message = f"{first.rstrip('.')}; {note}." + (f"\n{rest}" if rest else "")
    return type(error)(message)


def _explain(exc: BaseException, environment: str, url: str | sa.URL) -> AbpartsOpsError:
    """One safe line for a database error raised while stamping.

    When the connection dies mid-transaction, the rollback that follows fails again
    ("connection already closed") and hides the error that explains it: use the first
    one in the chain, or the safe error already made from it (e.g. by ``fetch_rows``).
    """
    first: BaseException = exc
    seen: set[int] = set()
    current: BaseException | None = exc.__context__
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, AbpartsOpsError):
            return current
        if isinstance(current, (DBAPIError, psycopg2.Error)):
            first = current
        current = current.__context__
    return explain_error(first, label=environment, url=url)


def _refusal(assessment: Assessment, target: str, moved_on: bool, allow: bool) -> str | None:
    """Why the stamp may not write ``target`` given the environment's state (None: it may)."""
    env = assessment.environment
    state = assessment.state
    if state is EnvironmentState.BEHIND:
        return (
            f"{env}: refusing to stamp: {assessment.reason}. A stamp only writes the "
            f"baseline {target}; {assessment.advice.rstrip('.')} (nothing was written)."
        )
    if state is EnvironmentState.UNKNOWN_REVISION and assessment.schema_matches is not True:
        return f"{env}: refusing to stamp: {assessment.reason} (nothing was written)."
    if moved_on and not allow and state is not EnvironmentState.IN_SYNC:
        pending = ", ".join(assessment.pending)
        return (
            f"{env}: refusing to stamp: the history has moved on past the proven baseline "
            f"{target} (head {assessment.head}; {len(assessment.pending)} revision(s) since: "
            f"{pending}). Upgrade instead: run upgrade_{env} (or `alembic upgrade head`); to "
            "record the baseline first and upgrade after, set run config "
            "`allow_behind_head: true` (nothing was written)."
        )
    return None


def _stamp_in_transaction(
    conn: Connection,
    *,
    environment: str,
    script: ScriptDirectory,
    target: str,
    head: str,
    expected: ExpectedSnapshots,
    archived: Collection[str],
    patterns: list[str],
    schema: str,
    version_table: str,
    vt_schema: str,
    dry_run: bool,
    lock_timeout_s: float,
    allow_behind_head: bool,
    guard: WriteGuard,
    progress: _Progress,
) -> StampResult:
    if conn.in_transaction():
        conn.commit()
    with conn.begin() as transaction:
        # READ COMMITTED, not REPEATABLE READ: a repeatable-read snapshot would be taken by
        # the first lock attempt, so a stamp that waited for another one would read the
        # version rows as they were *before* that stamp committed. Each statement below
        # runs after the lock is held and sees every committed stamp; the catalog query
        # is a single statement, so the schema snapshot is consistent in itself.
        conn.exec_driver_sql("SET TRANSACTION ISOLATION LEVEL READ COMMITTED")
        # Bound every lock wait of this transaction (the version table's row and table
        # locks, e.g. behind a concurrent `alembic upgrade`), not only the advisory lock.
        conn.exec_driver_sql(f"SET LOCAL lock_timeout = {max(1, int(lock_timeout_s * 1000))}")
        try:
            report = guard.enter(
                conn,
                dry_run=dry_run,
                what="stamp",
                refuse=StampRefused,
                schema=vt_schema,
                version_table=version_table,
                lock_timeout_s=lock_timeout_s,
            )
        except StampRefused:
            transaction.rollback()
            raise
        waited, identity = report.lock_wait_ms, report.identity
        before = current_revisions(conn, version_table=version_table, schema=vt_schema)
        actual = snapshot_from_rows(
            fetch_rows(
                conn,
                schema=schema,
                patterns=patterns,
                label=environment,
                privileges=expected.privileges,
            ),
            schema=schema,
            source=environment,
        )
        assessment = assess_snapshot(
            environment, before, actual, expected, archived=archived, baseline=target
        )
        diff = assessment.diff
        reference = expected.snapshot(assessment.expected_revision or target)
        archived_set = set(archived)
        purged = tuple(r for r in (before or ()) if r != target)
        common = {
            "environment": environment,
            "target": target,
            "before": before,
            "purged": purged,
            "purged_archived": tuple(r for r in purged if r in archived_set),
            "purged_unknown": tuple(
                r for r in purged if r not in archived_set and not expected.knows(r)
            ),
            "creates_version_table": before is None,
            "reference_fingerprint": reference.fingerprint if reference else "",
            "actual_fingerprint": actual.fingerprint,
            "lock_wait_ms": waited,
            "state": assessment.state.value,
            "head": head,
            "identity": identity,
            "guard": report,
        }
        if diff is not None and not diff.is_empty:
            transaction.rollback()
            raise SchemaDrift(
                f"{environment}: schema differs from the reference in {len(diff.changes)} "
                f"object(s) (the expected schema at {assessment.expected_revision}); refusing "
                f"to stamp ({assessment.state.value}: {assessment.advice} Nothing was "
                f"written.)\n\n{diff.to_markdown(50)}",
                diff,
            )
        refusal = _refusal(assessment, target, head != target, allow_behind_head)
        if refusal:
            transaction.rollback()
            raise StampRefused(refusal)
        if assessment.state is EnvironmentState.IN_SYNC or before == (target,):
            transaction.rollback()
            at = before[0] if before else target
            nothing_purged = {"purged": (), "purged_archived": (), "purged_unknown": ()}
            return StampResult(
                **{**common, **nothing_purged},
                action="noop",
                after=before,
                message=f"{environment} is already at {at}; nothing to do.",
                diff=diff,
            )
        notes = _purge_notes(common["purged_archived"], common["purged_unknown"])
        if dry_run:
            transaction.rollback()
            extra = " and create the version table" if before is None else ""
            return StampResult(
                **common,
                action="dry_run",
                after=None,
                message=(
                    f"dry run: would replace {version_rows_text(before)} with {target}{extra} on "
                    f"{environment}; schema matches the reference.{notes} Nothing was written."
                ),
                diff=diff,
            )
        context = MigrationContext.configure(
            connection=conn,
            opts={
                "version_table": version_table,
                "version_table_schema": version_table_schema_opt(vt_schema, schema),
                "purge": True,
                "fn": lambda _rev, _ctx: script._stamp_revs(target, ()),
            },
        )
        context.run_migrations()
        progress.before = before
        progress.committing = True
        transaction.commit()
        progress.committed = True
    created = " (created the missing version table)" if before is None else ""
    return StampResult(
        **common,
        action="stamped",
        after=None,
        message=f"stamped {environment}: {version_rows_text(before)} -> {target}{created}.{notes}",
        diff=diff,
    )


def _purge_notes(archived: tuple[str, ...], unknown: tuple[str, ...]) -> str:
    """Sentences naming the ids a stamp removes, the archived apart from the unknown."""
    notes = ""
    if archived:
        notes += f" Purged from the archived history: {', '.join(archived)}."
    if unknown:
        notes += (
            f" Purged, found in no history (neither on disk nor archived): {', '.join(unknown)}."
        )
    return notes


def version_table_schema_opt(vt_schema: str, schema: str) -> str | None:
    """Alembic's ``version_table_schema`` option: None for the default search path."""
    return None if vt_schema == schema == "public" else vt_schema
