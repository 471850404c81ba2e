"""Upgrading, downgrading and reading the revision of a database, without ``env.py``.

The application's ``env.py`` reads its own database URL from its own environment
variables, so we never run it: we build Alembic's :class:`EnvironmentContext` ourselves
(as ``alembic.command.upgrade`` does) and configure it with a connection we opened.

Every migration runs in its own transaction (PostgreSQL has transactional DDL): when one
fails, the revisions before it stay applied and the failing one is rolled back. For that
the connection must have no transaction open when :func:`upgrade` or :func:`downgrade` is
called (with one open, Alembic would run everything inside the caller's transaction).

Alembic's ``op``/``context`` proxies are module globals: run one migration at a time per
process (Dagster's default multiprocess executor does).
"""

from __future__ import annotations

import os
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from alembic import util as alembic_util
from alembic.runtime.environment import EnvironmentContext
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError

from abparts_ops.core.db import connect, make_engine, redact_url, scrub
from abparts_ops.core.errors import MigrationError
from abparts_ops.core.history.project import DEFAULT_VERSION_TABLE, AlembicProject


class RevisionFailed(MigrationError):
    """One revision's upgrade or downgrade raised; the earlier ones stay applied.

    ``revision`` is the failing revision id, ``detail`` the first line of its error
    (for a database error, the server's message) and ``applied`` the revisions that ran
    successfully before it, in order. ``path`` is the revision's file and ``line`` the
    line of that file the error came from (None when the traceback does not pass
    through it).
    """

    def __init__(
        self,
        message: str,
        *,
        revision: str,
        detail: str,
        applied: tuple[str, ...],
        path: str | None = None,
        line: int | None = None,
    ) -> None:
        super().__init__(message)
        self.revision = revision
        self.detail = detail
        self.applied = applied
        self.path = path
        self.line = line



@contextmanager
def migration_environment(
    conn: Connection,
    project: AlembicProject,
    script: ScriptDirectory,
    target: str,
    fn: Callable[..., Iterator[Any]],
    on_apply: Callable[..., None],
    *,
    per_migration: bool = False,
) -> Iterator[EnvironmentContext]:
    """Alembic's ``EnvironmentContext`` on ``conn`` for the project, without its env.py.

    The application's ``env.py`` reads its own URL from its own variables, so it is never
    run: the context is built and configured here, as ``alembic.command.upgrade`` would,
    with ``fn`` choosing the steps and ``on_apply`` called after each one.
    """
    with EnvironmentContext(project.config(), script, fn=fn, destination_rev=target) as env:
        env.configure(
            connection=conn,
            target_metadata=None,
            version_table=project.version_table,
            version_table_schema=project.version_table_schema,
            transaction_per_migration=per_migration,
            on_version_apply=on_apply,
        )
        yield env


def failing_line(exc: BaseException, path: str | None) -> int | None:
    """The line of file ``path`` nearest the error in ``exc``'s traceback (None if none)."""
    if not path:
        return None
    target = os.path.realpath(path)
    line = None
    for frame in traceback.extract_tb(exc.__traceback__):
        if os.path.realpath(frame.filename) == target:
            line = frame.lineno
    return line


@dataclass
class _Progress:
    current: str | None = None
    current_file: str | None = None
    applied: list[str] = field(default_factory=list)


def _first_line(exc: BaseException) -> str:
    source: Any = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
    lines = str(source).strip().splitlines()
    return lines[0].strip() if lines else exc.__class__.__name__


def _run(
    conn: Connection,
    project: AlembicProject,
    target: str,
    script: ScriptDirectory | None,
    steps: Callable[[ScriptDirectory, Any], list[Any]],
    verb: str,
) -> tuple[str, ...]:
    """Run the steps ``steps(script, current_heads)`` gives, one transaction each."""
    if conn.in_transaction():
        raise MigrationError(
            f"{project.label}: cannot {verb}: the connection already has a transaction "
            "open (commit or roll it back first, so each migration runs in its own "
            "transaction)."
        )
    script = script or project.script()
    progress = _Progress()

    def fn(heads: Any, context: MigrationContext) -> Iterator[Any]:
        for step in steps(script, heads):
            revision = getattr(step, "revision", None)
            progress.current = getattr(revision, "revision", None)
            progress.current_file = getattr(revision, "path", None)
            yield step

    def on_apply(*, ctx: Any, step: Any, heads: Any, run_args: Any) -> None:
        if progress.current is not None:
            progress.applied.append(progress.current)
        progress.current = None
        progress.current_file = None

    url = conn.engine.url
    try:
        with migration_environment(
            conn, project, script, target, fn, on_apply, per_migration=True
        ) as env:
            with env.begin_transaction():
                env.run_migrations()
    except alembic_util.CommandError as exc:
        _rollback_quietly(conn)
        raise MigrationError(
            scrub(
                f"{project.label}: cannot {verb} to {target!r} on {redact_url(url)}: "
                f"{_first_line(exc)} (check the target revision and the database's "
                "current revision).",
                url,
            )
        ) from None
    except Exception as exc:
        _rollback_quietly(conn)
        failing = progress.current
        if failing is None:
            if isinstance(exc, DBAPIError):
                raise MigrationError(
                    scrub(
                        f"{project.label}: cannot {verb} on {redact_url(url)}: "
                        f"{_first_line(exc)} (check the role's privileges on the version "
                        "table and schema).",
                        url,
                    )
                ) from None
            raise
        detail = scrub(_first_line(exc), url)
        line = failing_line(exc, progress.current_file)
        where = ""
        if progress.current_file:
            where = f" ({progress.current_file}" + (f", line {line})" if line else ")")
        kind = "database error" if isinstance(exc, DBAPIError) else exc.__class__.__name__
        raise RevisionFailed(
            f"{project.label}: {verb} of revision {failing}{where} failed on "
            f"{redact_url(url)}: {kind}: {detail} (fix this revision; the revisions "
            "before it were applied and this one was rolled back).",
            revision=failing,
            detail=detail,
            applied=tuple(progress.applied),
            path=progress.current_file,
            line=line,
        ) from exc
    return tuple(progress.applied)


def _rollback_quietly(conn: Connection) -> None:
    try:
        if conn.in_transaction():
            conn.rollback()
    except DBAPIError:
        pass


def upgrade(
    conn: Connection,
    project: AlembicProject,
    target: str = "heads",
    *,
    script: ScriptDirectory | None = None,
) -> None:
    """Upgrade the database of ``conn`` to ``target`` (default: every head).

    One transaction per migration; raises :class:`RevisionFailed` (a MigrationError)
    naming the failing revision, or MigrationError for a bad target.
    """

    def steps(sd: ScriptDirectory, heads: Any) -> list[Any]:
        return sd._upgrade_revs(target, heads)

    _run(conn, project, target, script, steps, "upgrade")


def downgrade(
    conn: Connection,
    project: AlembicProject,
    target: str = "base",
    *,
    script: ScriptDirectory | None = None,
) -> None:
    """Downgrade the database of ``conn`` to ``target`` (default: ``base``, empty).

    One transaction per migration; errors as for :func:`upgrade`. Alembic leaves the
    (empty) version table in place at base.
    """

    def steps(sd: ScriptDirectory, heads: Any) -> list[Any]:
        return sd._downgrade_revs(target, heads)

    _run(conn, project, target, script, steps, "downgrade")


def _qualified(table: str, schema: str | None) -> str:
    def quote(name: str) -> str:
        return '"' + name.replace('"', '""') + '"'

    return f"{quote(schema)}.{quote(table)}" if schema else quote(table)


def current_revisions(
    conn: Connection,
    version_table: str = DEFAULT_VERSION_TABLE,
    schema: str | None = None,
) -> tuple[str, ...] | None:
    """The revision ids recorded in the version table (sorted), or None if it is absent.

    Read with plain SQL, so ids the project does not know are returned as they are. An
    empty tuple means the table exists but is empty (e.g. after ``downgrade base``).
    When the connection had no transaction open, it is left without one.
    """
    had_transaction = conn.in_transaction()
    name = _qualified(version_table, schema)
    try:
        found = conn.execute(sa.text("SELECT to_regclass(:name)"), {"name": name}).scalar()
        if found is None:
            return None
        rows = conn.execute(sa.text(f"SELECT version_num FROM {name}")).scalars().all()
        return tuple(sorted(str(r) for r in rows))
    finally:
        if not had_transaction and conn.in_transaction():
            conn.rollback()


def project_revisions(conn: Connection, project: AlembicProject) -> tuple[str, ...] | None:
    """:func:`current_revisions` using the project's version table and schema."""
    return current_revisions(conn, project.version_table, project.version_table_schema)


@dataclass
class BuildResult:
    """Outcome of building the whole history on an empty database.

    ``failed_revision`` and ``error`` (first line of the database's message) are set when
    a revision failed, with the revision's file (``failed_file``) and the line of it the
    error came from (``failed_line``); ``applied`` lists the revisions that ran before,
    in order.
    """

    ok: bool
    failed_revision: str | None
    error: str | None
    applied: tuple[str, ...]
    failed_file: str | None = None
    failed_line: int | None = None

    def where(self) -> str:
        """``file.py, line N`` of the failure (the file's name only; empty when unknown)."""
        if not self.failed_file:
            return ""
        name = os.path.basename(self.failed_file)
        return f"{name}, line {self.failed_line}" if self.failed_line else name

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return {
            "ok": self.ok,
            "failed_revision": self.failed_revision,
            "error": self.error,
            "applied": list(self.applied),
            "failed_file": self.failed_file,
            "failed_line": self.failed_line,
        }


def _build(conn: Connection, project: AlembicProject) -> BuildResult:
    present = project_revisions(conn, project)
    if present:
        raise MigrationError(
            f"{project.label}: build_from_empty needs an empty database, but "
            f"{redact_url(conn.engine.url)} is at revision {', '.join(present)} (use a "
            "scratch database)."
        )
    script = project.script()
    if not list(script.get_heads()):
        return BuildResult(
            ok=False, failed_revision=None, error="the history has no revisions", applied=()
        )

    def steps(sd: ScriptDirectory, heads: Any) -> list[Any]:
        return sd._upgrade_revs("heads", heads)

    try:
        applied = _run(conn, project, "heads", script, steps, "upgrade")
    except RevisionFailed as exc:
        return BuildResult(
            ok=False,
            failed_revision=exc.revision,
            error=exc.detail,
            applied=exc.applied,
            failed_file=exc.path,
            failed_line=exc.line,
        )
    except MigrationError as exc:
        return BuildResult(ok=False, failed_revision=None, error=str(exc), applied=())
    return BuildResult(ok=True, failed_revision=None, error=None, applied=applied)


def build_from_empty(
    conn_or_url: Connection | str | sa.URL, project: AlembicProject
) -> BuildResult:
    """Upgrade an empty database to every head, one revision (and transaction) at a time.

    Give an open connection (with no transaction open) or a URL (opened and closed
    here). Returns a :class:`BuildResult`; a failing revision is reported, not raised.
    Raises MigrationError when the database already carries a revision, DatabaseError
    when it cannot be reached.
    """
    if isinstance(conn_or_url, Connection):
        return _build(conn_or_url, project)
    engine = make_engine(conn_or_url, label="scratch database")
    try:
        with connect(engine, label="scratch database") as conn:
            return _build(conn, project)
    finally:
        engine.dispose()
