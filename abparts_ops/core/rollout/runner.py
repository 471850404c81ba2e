"""Run pending revisions in ONE transaction, watched: the rehearsal and the apply share it.

The guarded upgrade promises that an environment is never left half-way: every pending
revision runs inside one transaction, and any error rolls all of them back. A revision
can break that promise from the inside: ``op.execute("COMMIT")`` before an
``ALTER TYPE ... ADD VALUE``, an ``autocommit_block`` around ``CREATE INDEX
CONCURRENTLY``, ``op.get_bind().commit()``, a ``SET TRANSACTION``, several statements in
one string with a ``COMMIT`` among them. After such a statement the earlier work is
committed and the advisory lock and the ``SET LOCAL`` timeouts are gone.

:func:`run_revisions` runs the revisions exactly as the apply will (the same Alembic
calls, the same single transaction, the caller's preamble first) and watches the
connection while they run, by what really happens rather than by the files' text:

* a statement that controls transactions (``COMMIT``, ``ROLLBACK``, ``BEGIN``,
  ``SET TRANSACTION``, ``PREPARE TRANSACTION``, ...) is refused *before* it is sent;
* ``Connection.commit()`` and a change of isolation level (what ``autocommit_block``
  does first) are refused before they reach the database;
* after every statement the backend's transaction state is read: a connection that is no
  longer in the transaction it started in (idle, or in a new one: another
  ``transaction_timestamp()``) means the statement left it;
* a statement the server refuses inside a transaction block (``CREATE INDEX
  CONCURRENTLY``, ``VACUUM``: SQLSTATE 25001) needs to run outside one, and a new enum
  value used in the transaction that added it (SQLSTATE 55P04: fine with one
  transaction per revision, impossible in one for all) needs a commit between.

Each of these raises :class:`LeftTransaction` naming the revision, its file and the
statement. After each revision the version rows are read back: they must be exactly the
heads Alembic just wrote, else :class:`VersionRowsWritten` names the revision that wrote
them. Any other error of a revision propagates as it is (the caller explains it), with
:class:`RunProgress` saying which revision was running.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import psycopg2
import psycopg2.extensions
import sqlalchemy as sa
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import event
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError

from abparts_ops.core.errors import MigrationError
from abparts_ops.core.history.migrate import current_revisions, migration_environment
from abparts_ops.core.history.project import AlembicProject

OUTSIDE_TRANSACTION_SQLSTATE = "25001"
UNSAFE_NEW_ENUM_VALUE_SQLSTATE = "55P04"
_VERSION_WRITE: dict[str, re.Pattern[str]] = {}
_BOUNDARY_ERRORS = {
    OUTSIDE_TRANSACTION_SQLSTATE: (
        "cannot run inside a transaction block (the server refuses it there)"
    ),
    UNSAFE_NEW_ENUM_VALUE_SQLSTATE: (
        "uses a value added to an enum in the same transaction (it must be committed "
        "first: the server refuses it)"
    ),
}

_LEADING_NOISE = re.compile(r"^(\s+|--[^\n]*\n?|/\*.*?\*/)+", re.S)
_TRANSACTION_CONTROL = re.compile(
    r"^(COMMIT|END|ABORT|BEGIN|START\s+TRANSACTION|SET\s+TRANSACTION|"
    r"SET\s+SESSION\s+CHARACTERISTICS|SET\s+SESSION\s+AUTHORIZATION|RESET\s+ALL|"
    r"PREPARE\s+TRANSACTION|ROLLBACK(?!\s+TO\b)|DISCARD\s+ALL)\b",
    re.I,
)


@dataclass(frozen=True)
class AppliedRevision:
    """One revision that ran, how long it took, and its file."""

    revision: str
    seconds: float
    file: str | None = None


@dataclass(frozen=True)
class ExecutedStatement:
    """One statement a revision really executed, as the server received it.

    ``sql`` is the text with its parameters bound (psycopg2's ``cursor.query``), so it
    can be parsed or linted on its own; ``revision`` is the revision that ran it (None for
    the runner's own statements before the first revision).
    """

    revision: str | None
    sql: str


@dataclass
class RunProgress:
    """How far :func:`run_revisions` got: the revision running now and those done.

    ``executed`` holds every statement the revisions ran, in order (the version table's
    own updates and the watch's probes are not among them); ``observed`` what each
    revision of a transaction wrote and locked (with ``observe``); ``alone`` the
    revisions that ran as steps of their own, in autocommit.
    """

    current: str | None = None
    current_file: str | None = None
    started: float = 0.0
    statement: str | None = None
    applied: list[AppliedRevision] = field(default_factory=list)
    executed: list[ExecutedStatement] = field(default_factory=list)
    bookkeeping: bool = False
    observed: dict[str, RevisionObservation] = field(default_factory=dict)
    alone: list[str] = field(default_factory=list)
    repaired: list[str] = field(default_factory=list)

    def statements_of(self, revision: str) -> list[str]:
        """The SQL ``revision`` executed, in order."""
        return [s.sql for s in self.executed if s.revision == revision]


def error_line(exc: BaseException) -> str:
    """The server's message of ``exc`` on one line, with its DETAIL when it has one
    ("could not create unique index ...: Key (name)=(bolt) is duplicated.")."""
    source: Any = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
    lines = str(source).strip().splitlines()
    first = lines[0].strip() if lines else exc.__class__.__name__
    diag = getattr(source, "diag", None)
    detail = getattr(diag, "message_detail", None) if diag is not None else None
    return f"{first}: {' '.join(detail.split())}" if detail else first


def shorten(statement: str | None, limit: int = 500) -> str | None:
    """``statement`` on one line, at most ``limit`` characters (None stays None)."""
    if statement is None:
        return None
    text = " ".join(str(statement).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


class LeftTransaction(MigrationError):
    """A revision ends (or cannot run inside) the one transaction the upgrade runs in.

    ``revision`` and ``file`` name it, ``statement`` is what it ran (or tried to run) and
    ``how`` says in a few words what left the transaction.
    """

    def __init__(
        self, revision: str | None, file: str | None, statement: str | None, how: str
    ) -> None:
        self.revision = revision
        self.file = file
        self.statement = shorten(statement)
        self.how = how
        name = f" ({file.rsplit('/', 1)[-1]})" if file else ""
        shown = f": {self.statement}" if self.statement else ""
        super().__init__(
            f"revision {revision or '(before the first revision)'}{name} {how}{shown}"
        )


class VersionRowsWritten(MigrationError):
    """A revision wrote the version table itself: the rows are not the heads Alembic set."""

    def __init__(
        self, revision: str, file: str | None, expected: tuple[str, ...], found: Any
    ) -> None:
        self.revision = revision
        self.file = file
        self.expected = expected
        self.found = found
        name = f" ({file.rsplit('/', 1)[-1]})" if file else ""
        super().__init__(
            f"revision {revision}{name} wrote the version table itself: after it the version "
            f"rows read {_rows(found)}, Alembic had set {_rows(expected)} (a revision must "
            "never write alembic_version; remove that statement)"
        )


def _rows(rows: Any) -> str:
    if rows is None:
        return "no version table"
    return ", ".join(rows) if rows else "an empty table"


def _controls_transaction(statement: str) -> bool:
    return bool(_TRANSACTION_CONTROL.match(_LEADING_NOISE.sub("", statement)))


def _bound(cursor: Any, statement: str, parameters: Any) -> str:
    """``statement`` with ``parameters`` bound as the driver will send it."""
    if not parameters:
        return statement
    try:
        sent = cursor.mogrify(statement, parameters)
    except (psycopg2.Error, TypeError, ValueError, IndexError, KeyError):
        return statement
    return sent.decode(raw_encoding(cursor)) if isinstance(sent, bytes) else str(sent)


@dataclass(frozen=True)
class LockHeld:
    """A relation that existed before the run, locked in a mode that blocks its readers
    (``ACCESS EXCLUSIVE``) or writers (``SHARE``); taken during ``revision``, held for
    ``seconds`` (until the transaction ended)."""

    relation: str
    mode: str
    revision: str
    seconds: float = 0.0


@dataclass
class RevisionObservation:
    """What one revision did inside the transaction: rows per table and locks taken.

    ``rows`` maps a table to (inserted, updated, deleted) by this revision alone (from
    ``pg_stat_xact_user_tables``, read before the transaction commits); ``locks`` are the
    strong locks it took first.
    """

    rows: dict[str, tuple[int, int, int]] = field(default_factory=dict)
    locks: list[LockHeld] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return {
            "rows": {t: list(v) for t, v in self.rows.items()},
            "locks": [lock.__dict__ for lock in self.locks],
        }


_XACT_ROWS = (
    "SELECT relid::regclass::text, n_tup_ins, n_tup_upd, n_tup_del "
    "FROM pg_stat_xact_user_tables WHERE n_tup_ins + n_tup_upd + n_tup_del > 0"
)
_STRONG_LOCKS = (
    "SELECT l.relation, l.relation::regclass::text, l.mode FROM pg_locks l "
    "WHERE l.pid = pg_backend_pid() AND l.locktype = 'relation' AND l.granted "
    "AND l.mode IN ('AccessExclusiveLock', 'ShareLock')"
)
_EXISTING = "SELECT array_agg(oid::bigint) FROM pg_class WHERE relkind IN ('r', 'p', 'm')"


class _Observer:
    """Reads, after each revision of a transaction, the rows it wrote and the locks it took
    (the version table's own rows and locks left out)."""

    def __init__(self, conn: Connection, version_table: str = "") -> None:
        self.conn = conn
        self.version_table = version_table
        self.rows: dict[str, tuple[int, int, int]] = {}
        self.locked: dict[int, tuple[str, str, str, float]] = {}
        self.existing: set[int] = set()
        self.started = time.perf_counter()

    def _query(self, sql: str) -> list[tuple[Any, ...]]:
        raw: Any = self.conn.connection.dbapi_connection
        with raw.cursor() as cur:
            cur.execute(sql)
            return list(cur.fetchall())

    def start(self) -> None:
        """Note the relations that exist before the first revision (new ones are nobody's)
        and the counts the view already shows: the backend reports what it has not yet
        flushed, which may include an earlier transaction's rows."""
        self.existing = set(self._query(_EXISTING)[0][0] or ())
        self.rows = {
            table: (int(ins), int(upd), int(dele))
            for table, ins, upd, dele in self._query(_XACT_ROWS)
        }
        self.started = time.perf_counter()

    def after(self, revision: str) -> RevisionObservation:
        """What ``revision`` added to the transaction's rows and strong locks."""
        observed = RevisionObservation()
        for table, ins, upd, dele in self._query(_XACT_ROWS):
            if self._is_version_table(table):
                continue
            was = self.rows.get(table, (0, 0, 0))
            delta = (int(ins) - was[0], int(upd) - was[1], int(dele) - was[2])
            self.rows[table] = (int(ins), int(upd), int(dele))
            if any(delta):
                observed.rows[table] = delta
        now = time.perf_counter()
        for oid, name, mode in self._query(_STRONG_LOCKS):
            key = int(oid)
            if self._is_version_table(name):
                continue
            if key in self.existing and key not in self.locked:
                self.locked[key] = (name, mode, revision, now)
                observed.locks.append(LockHeld(name, _mode(mode), revision))
        return observed

    def _is_version_table(self, name: str) -> bool:
        return bool(self.version_table) and name.rsplit(".", 1)[-1].strip('"') == (
            self.version_table
        )

    def finish(self, observed: dict[str, RevisionObservation]) -> None:
        """Give every lock the time it was held until the end of the transaction."""
        end = time.perf_counter()
        for name, _mode_name, revision, since in self.locked.values():
            held = observed.get(revision)
            if held is None:
                continue
            held.locks = [
                LockHeld(lock.relation, lock.mode, revision, round(end - since, 3))
                if lock.relation == name else lock
                for lock in held.locks
            ]


def _mode(mode: str) -> str:
    return {"AccessExclusiveLock": "ACCESS EXCLUSIVE", "ShareLock": "SHARE"}.get(mode, mode)


def raw_encoding(cursor: Any) -> str:
    """The Python name of the encoding the driver talks to the server in (utf-8 default)."""
    name = getattr(getattr(cursor, "connection", None), "encoding", None) or "UTF8"
    return psycopg2.extensions.encodings.get(name, "utf-8")


def _is_version_bookkeeping(sql: str, version_table: str) -> bool:
    """Alembic's own write of the version table after a revision (not the revision's)."""
    pattern = _VERSION_WRITE.get(version_table)
    if pattern is None:
        name = re.escape(version_table)
        pattern = re.compile(
            rf"^\s*(UPDATE|INSERT\s+INTO|DELETE\s+FROM)\s+(\S+\.)?\"?{name}\"?\s", re.I
        )
        _VERSION_WRITE[version_table] = pattern
    return bool(pattern.match(sql))


@contextmanager
def watch_transaction(
    conn: Connection,
    progress: RunProgress,
    *,
    version_table: str | None = None,
    strict: bool = True,
    before_statement: StatementHook | None = None,
) -> Iterator[None]:
    """Raise :class:`LeftTransaction` the moment anything leaves ``conn``'s transaction.

    Armed while the ``with`` body runs (the module doc lists what it catches); the caller
    commits after the body, with the watch disarmed. Every statement a revision runs is
    recorded in ``progress.executed`` (Alembic's own writes of ``version_table`` left out).
    With ``strict=False`` (a revision running alone, in autocommit) statements are only
    recorded and ``before_statement`` called; nothing is refused.
    """
    dbapi: Any = conn.connection.dbapi_connection
    began = None
    if strict:
        with dbapi.cursor() as cur:
            cur.execute("SELECT transaction_timestamp()")
            began = cur.fetchone()[0]
    armed = True

    def left(how: str, statement: str | None = None) -> LeftTransaction:
        return LeftTransaction(progress.current, progress.current_file, statement, how)

    def before(
        _conn: Any, cursor: Any, statement: str, parameters: Any, *_: Any
    ) -> None:
        progress.statement = statement
        if not armed:
            return
        if strict and _controls_transaction(statement):
            raise left("ends the upgrade's transaction itself", statement)
        if before_statement is not None and progress.current is not None and not (
            progress.bookkeeping
        ):
            bound = _bound(cursor, statement, parameters)
            if not (version_table and _is_version_bookkeeping(bound, version_table)):
                before_statement(cursor.connection, progress.current, bound)

    def after(_conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        if not armed:
            return
        if progress.current is not None and not progress.bookkeeping:
            sent = getattr(cursor, "query", None)
            text = sent.decode(raw_encoding(cursor)) if isinstance(sent, bytes) else statement
            if not (version_table and _is_version_bookkeeping(text, version_table)):
                progress.executed.append(ExecutedStatement(progress.current, text))
        if not strict:
            return
        raw = cursor.connection
        status = raw.get_transaction_status()
        if status == psycopg2.extensions.TRANSACTION_STATUS_IDLE:
            raise left("left the upgrade's transaction (the connection is idle after)", statement)
        if status == psycopg2.extensions.TRANSACTION_STATUS_INTRANS:
            with raw.cursor() as probe:
                probe.execute("SELECT transaction_timestamp()")
                now = probe.fetchone()[0]
            if now != began:
                raise left(
                    "ended the upgrade's transaction (a new one began after it)", statement
                )

    def on_commit(_conn: Any) -> None:
        if armed and strict:
            raise left(
                "commits the upgrade's transaction (Connection.commit(), e.g. the start of "
                "an autocommit_block)",
                progress.statement,
            )

    def on_options(_conn: Any, options: Any) -> None:
        if armed and strict and "isolation_level" in options:
            raise left(
                f"switches the connection to isolation level {options['isolation_level']} "
                "(an autocommit_block)",
                progress.statement,
            )

    listeners: list[tuple[str, Callable[..., Any]]] = [
        ("before_cursor_execute", before),
        ("after_cursor_execute", after),
        ("commit", on_commit),
        ("set_connection_execution_options", on_options),
    ]
    for name, fn in listeners:
        event.listen(conn, name, fn)
    try:
        yield
    except (DBAPIError, psycopg2.Error) as exc:
        orig = exc.orig if isinstance(exc, DBAPIError) else exc
        how = _BOUNDARY_ERRORS.get(getattr(orig, "pgcode", None) or "")
        if how is None or not strict:
            raise
        statement = exc.statement if isinstance(exc, DBAPIError) else None
        raise left(how, str(statement) if statement else progress.statement) from exc
    finally:
        armed = False
        for name, fn in listeners:
            event.remove(conn, name, fn)


StatementHook = Callable[[Any, str | None, str], None]
"""Called before each statement a revision runs: (DBAPI connection, revision, bound SQL)."""

AloneHook = Callable[[Connection, str], None]
"""Called before a revision that runs alone, on the (autocommit) connection."""


def pending_revisions(
    script: ScriptDirectory, current: Sequence[str] | None, target: str
) -> tuple[str, ...]:
    """The revisions ``upgrade current -> target`` runs, oldest first."""
    heads = tuple(current or ())
    steps = script.iterate_revisions(target, heads)
    return tuple(rev.revision for rev in reversed(list(steps)) if rev.revision not in heads)


def run_revisions(
    conn: Connection,
    project: AlembicProject,
    script: ScriptDirectory,
    target: str,
    *,
    progress: RunProgress,
    preamble: Callable[[Connection], Any] | None = None,
    alone: Collection[str] = (),
    session_settings: Sequence[str] = (),
    lock_key_text: str | None = None,
    observe: bool = False,
    before_statement: StatementHook | None = None,
    before_alone: AloneHook | None = None,
    epilogue: Callable[[Connection], Any] | None = None,
) -> Any:
    """Upgrade ``conn``'s database to ``target``, watched (module doc).

    Without ``alone`` revisions: ONE transaction; ``preamble(conn)`` runs first in it
    (timeouts, the write guard, re-reads) and its result is returned; it commits only
    when every revision ran and the watch saw nothing.

    With ``alone`` (revisions that need autocommit, found by the rehearsal): the
    revisions before the first of them run in that one transaction (the preamble first,
    and, with ``lock_key_text``, a session-level advisory lock on that key taken in it
    and held to the end); then ``session_settings`` (``SET lock_timeout = ...``) are set
    for the session, and every later revision runs as a step of its own: a transactional
    one in its own watched transaction, an ``alone`` one in autocommit mode
    (``before_alone`` runs first, e.g. to drop an INVALID index it will rebuild). The
    version row then advances revision by revision, so a failure stops at a known one.

    ``observe`` records, per revision of a transaction, the rows inserted, updated and
    deleted per table and the relations locked ``ACCESS EXCLUSIVE`` or ``SHARE``
    (:class:`RevisionObservation` in ``progress.observed``). ``before_statement`` is
    called before each statement a revision runs. ``epilogue(conn)`` runs after the last
    revision: in the one transaction when there is one, else in a transaction of its own
    at the end (the catch-up's stamp). On any exception the connection is invalidated
    (the server rolls back and drops the session) and the error propagates.
    """
    if conn.in_transaction():
        conn.commit()
    vt_schema = project.version_table_schema
    current = current_revisions(conn, version_table=project.version_table, schema=vt_schema)
    if conn.in_transaction():
        conn.commit()
    pending = pending_revisions(script, current, target)
    alone_set = set(alone) & set(pending)
    first_alone = next((i for i, rev in enumerate(pending) if rev in alone_set), None)
    outcome: Any = None
    hold = lock_key_text if (lock_key_text and first_alone is not None) else None
    try:
        head_part = pending if first_alone is None else pending[:first_alone]

        def opening(conn: Connection) -> Any:
            result = preamble(conn) if preamble is not None else None
            if hold:
                conn.execute(
                    sa.text("SELECT pg_advisory_lock(hashtextextended(:key, 0))"),
                    {"key": hold},
                )
            return result

        outcome = _one_transaction(
            conn, project, script, head_part[-1] if head_part else None, progress,
            preamble=opening, observe=observe, before_statement=before_statement,
            epilogue=epilogue if first_alone is None else None,
        )
        if first_alone is None:
            return outcome
        for statement in session_settings:
            conn.exec_driver_sql(statement)
        conn.commit()
        for revision in pending[first_alone:]:
            if revision in alone_set:
                if before_alone is not None:
                    before_alone(conn, revision)
                    if conn.in_transaction():
                        conn.commit()
                _alone(conn, project, script, revision, progress, before_statement)
            else:
                _one_transaction(
                    conn, project, script, revision, progress, preamble=None,
                    observe=observe, before_statement=before_statement,
                )
        if epilogue is not None:
            with conn.begin():
                epilogue(conn)
        if hold:
            conn.execute(
                sa.text("SELECT pg_advisory_unlock(hashtextextended(:key, 0))"), {"key": hold}
            )
            conn.commit()
    except BaseException:
        _abandon(conn)
        raise
    return outcome


def _migration_hooks(
    conn: Connection,
    project: AlembicProject,
    script: ScriptDirectory,
    target: str,
    progress: RunProgress,
    observer: _Observer | None,
) -> tuple[Callable[..., Iterator[Any]], Callable[..., None]]:
    """Alembic's ``fn`` (which revision runs now) and ``on_version_apply`` (its end)."""
    vt_schema = project.version_table_schema

    def fn(heads: Any, context: MigrationContext) -> Iterator[Any]:
        for step in script._upgrade_revs(target, heads):
            progress.current = step.revision.revision
            progress.current_file = step.revision.path
            progress.started = time.perf_counter()
            yield step

    def on_apply(*, ctx: Any, step: Any, heads: Any, run_args: Any) -> None:
        revision, file = progress.current, progress.current_file
        if revision is None:
            return
        seconds = time.perf_counter() - progress.started
        expected = tuple(sorted(heads))
        progress.bookkeeping = True
        try:
            found = current_revisions(
                conn, version_table=project.version_table, schema=vt_schema
            )
            if observer is not None:
                progress.observed[revision] = observer.after(revision)
        finally:
            progress.bookkeeping = False
        if found != expected:
            raise VersionRowsWritten(revision, file, expected, found)
        progress.applied.append(AppliedRevision(revision, seconds, file))
        progress.current = progress.current_file = None

    return fn, on_apply


def _one_transaction(
    conn: Connection,
    project: AlembicProject,
    script: ScriptDirectory,
    target: str | None,
    progress: RunProgress,
    *,
    preamble: Callable[[Connection], Any] | None,
    observe: bool,
    before_statement: StatementHook | None,
    epilogue: Callable[[Connection], Any] | None = None,
) -> Any:
    """Run up to ``target`` (None: none, only the preamble) in one watched transaction,
    ``epilogue`` last in it."""
    if target is None:
        with conn.begin():
            outcome = preamble(conn) if preamble is not None else None
            if epilogue is not None:
                epilogue(conn)
            return outcome
    observer = _Observer(conn, project.version_table) if observe else None
    fn, on_apply = _migration_hooks(conn, project, script, target, progress, observer)
    outcome: Any = None
    with migration_environment(conn, project, script, target, fn, on_apply) as env:
        # Alembic's own transaction (not one of ours around it): an autocommit_block
        # then reaches Connection.commit(), where the watch stops it.
        with env.begin_transaction():
            if preamble is not None:
                outcome = preamble(conn)
            if observer is not None:
                observer.start()
            with watch_transaction(
                conn, progress, version_table=project.version_table,
                before_statement=before_statement,
            ):
                env.run_migrations()
            if observer is not None:
                observer.finish(progress.observed)
            if epilogue is not None:
                epilogue(conn)
    return outcome


def _alone(
    conn: Connection,
    project: AlembicProject,
    script: ScriptDirectory,
    revision: str,
    progress: RunProgress,
    before_statement: StatementHook | None,
) -> None:
    """Run one revision in autocommit mode: each statement commits on its own."""
    fn, on_apply = _migration_hooks(conn, project, script, revision, progress, None)
    previous = conn.get_isolation_level()
    conn.execution_options(isolation_level="AUTOCOMMIT")
    try:
        with migration_environment(conn, project, script, revision, fn, on_apply) as env:
            with env.begin_transaction():
                with watch_transaction(
                    conn, progress, version_table=project.version_table, strict=False,
                    before_statement=before_statement,
                ):
                    env.run_migrations()
        progress.alone.append(revision)
    finally:
        if conn.in_transaction():
            conn.commit()
        conn.execution_options(isolation_level=previous)


def _abandon(conn: Connection) -> None:
    """Roll back and drop ``conn``'s session, whatever state a failed run left it in."""
    try:
        conn.invalidate()
    except (DBAPIError, psycopg2.Error):
        pass
