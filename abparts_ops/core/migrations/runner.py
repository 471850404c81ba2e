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
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import psycopg2
import psycopg2.extensions
from alembic.runtime.environment import EnvironmentContext
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import event
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError

from abparts_ops.core.errors import MigrationError
from abparts_ops.core.migrations.migrate import current_revisions
from abparts_ops.core.migrations.project import AlembicProject

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
    own updates and the watch's probes are not among them).
    """

    current: str | None = None
    current_file: str | None = None
    started: float = 0.0
    statement: str | None = None
    applied: list[AppliedRevision] = field(default_factory=list)
    executed: list[ExecutedStatement] = field(default_factory=list)
    bookkeeping: bool = False

    def statements_of(self, revision: str) -> list[str]:
        """The SQL ``revision`` executed, in order."""
        return [s.sql for s in self.executed if s.revision == revision]


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
    conn: Connection, progress: RunProgress, *, version_table: str | None = None
) -> Iterator[None]:
    """Raise :class:`LeftTransaction` the moment anything leaves ``conn``'s transaction.

    Armed while the ``with`` body runs (the module doc lists what it catches); the caller
    commits after the body, with the watch disarmed. Every statement a revision runs is
    recorded in ``progress.executed`` (Alembic's own writes of ``version_table`` left out).
    """
    dbapi: Any = conn.connection.dbapi_connection
    with dbapi.cursor() as cur:
        cur.execute("SELECT transaction_timestamp()")
        began = cur.fetchone()[0]
    armed = True

    def left(how: str, statement: str | None = None) -> LeftTransaction:
        return LeftTransaction(progress.current, progress.current_file, statement, how)

    def before(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        progress.statement = statement
        if armed and _controls_transaction(statement):
            raise left("ends the upgrade's transaction itself", statement)

    def after(_conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        if not armed:
            return
        if progress.current is not None and not progress.bookkeeping:
            sent = getattr(cursor, "query", None)
            text = sent.decode(raw_encoding(cursor)) if isinstance(sent, bytes) else statement
            if not (version_table and _is_version_bookkeeping(text, version_table)):
                progress.executed.append(ExecutedStatement(progress.current, text))
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
        if armed:
            raise left(
                "commits the upgrade's transaction (Connection.commit(), e.g. the start of "
                "an autocommit_block)",
                progress.statement,
            )

    def on_options(_conn: Any, options: Any) -> None:
        if armed and "isolation_level" in options:
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
        if how is None:
            raise
        statement = exc.statement if isinstance(exc, DBAPIError) else None
        raise left(how, str(statement) if statement else progress.statement) from exc
    finally:
        armed = False
        for name, fn in listeners:
            event.remove(conn, name, fn)


def run_revisions(
    conn: Connection,
    project: AlembicProject,
    script: ScriptDirectory,
    target: str,
    *,
    progress: RunProgress,
    preamble: Callable[[Connection], Any] | None = None,
) -> Any:
    """Upgrade ``conn``'s database to ``target`` in one transaction, watched (module doc).

    ``conn`` must have no transaction open. ``preamble(conn)`` runs first inside the
    transaction (timeouts, the write guard, re-reads) and its result is returned. The
    transaction commits only when every revision ran and the watch saw nothing; on any
    exception it is rolled back and the connection invalidated (the server then drops
    the session whatever state it was left in), and the exception propagates.
    """
    if conn.in_transaction():
        conn.commit()
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
        finally:
            progress.bookkeeping = False
        if found != expected:
            raise VersionRowsWritten(revision, file, expected, found)
        progress.applied.append(AppliedRevision(revision, seconds, file))
        progress.current = progress.current_file = None

    outcome: Any = None
    try:
        with EnvironmentContext(project.config(), script, fn=fn, destination_rev=target) as env:
            env.configure(
                connection=conn,
                target_metadata=None,
                version_table=project.version_table,
                version_table_schema=project.version_table_schema,
                transaction_per_migration=False,
                on_version_apply=on_apply,
            )
            # Alembic's own transaction (not one of ours around it): an autocommit_block
            # then reaches Connection.commit(), where the watch stops it.
            with env.begin_transaction():
                if preamble is not None:
                    outcome = preamble(conn)
                with watch_transaction(
                    conn, progress, version_table=project.version_table
                ):
                    env.run_migrations()
    except BaseException:
        _abandon(conn)
        raise
    return outcome


def _abandon(conn: Connection) -> None:
    """Roll back and drop ``conn``'s session, whatever state a failed run left it in."""
    try:
        conn.invalidate()
    except (DBAPIError, psycopg2.Error):
        pass
