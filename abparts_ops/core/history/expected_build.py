"""Building the expected schemas: one scratch database upgraded revision by revision.

A snapshot after each step; incremental from a kept template database (checked by its
version rows and probe fingerprint before use) or from empty with the unchanged
revisions replayed. The one way in is :func:`~abparts_ops.core.history.expected_cache.
load_or_build_expected`; :func:`build_expected_schemas` is the cold build it falls back to.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import time
import traceback
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import util as alembic_util
from alembic.script import ScriptDirectory

from abparts_ops.core.db import (
    connect,
    drop_database,
    make_engine,
    with_database,
)
from abparts_ops.core.errors import AbpartsOpsError, MigrationError
from abparts_ops.core.history import expected_store as store
from abparts_ops.core.history.changes import HistoryDelta
from abparts_ops.core.history.expected import (
    BuildSettings,
    ExpectedSchemas,
    Progress,
    build_settings,
)
from abparts_ops.core.history.graph import HistoryGraph, history_delta, read_graph
from abparts_ops.core.history.migrate import RevisionFailed, current_revisions, upgrade
from abparts_ops.core.history.project import (
    AlembicProject,
)
from abparts_ops.core.quoting import quote_always
from abparts_ops.core.schema.catalog_sql import CATALOG_TOKEN_SQL
from abparts_ops.core.schema.introspect import snapshot_connection
from abparts_ops.core.schema.model import Snapshot
from abparts_ops.core.scratch import LABEL as SCRATCH_LABEL
from abparts_ops.core.scratch import scratch_database, scratch_name

log = logging.getLogger(__name__)

def _plan(script: ScriptDirectory, rev: str) -> list[str]:
    """The revisions ``upgrade rev`` applies to an empty database, in Alembic's order."""
    return [step.revision.revision for step in script._upgrade_revs(rev, ())]


def _failing_line(exc: BaseException, path: str | None) -> int | None:
    """The line of ``path`` (the revision file) in the traceback of ``exc``'s cause."""
    if not path:
        return None
    target = os.path.realpath(path)
    cause: BaseException | None = exc.__cause__ or exc.__context__
    line = None
    while cause is not None:
        for frame in traceback.extract_tb(cause.__traceback__):
            if frame.filename and os.path.realpath(frame.filename) == target:
                line = frame.lineno
        if line is not None:
            return line
        cause = cause.__cause__ or cause.__context__
    return None


def _template_comment() -> str:
    return (
        f"abparts_ops expected-schemas template; host={socket.gethostname()}; "
        f"pid={os.getpid()}; kept {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}"
    )


def _scratch_comment() -> str:
    # The format scratch.cleanup_leftovers reads: a killed run's clone is dropped later.
    return f"abparts_ops scratch database; host={socket.gethostname()}; pid={os.getpid()}"


def _comment_sql(name: str, text: str) -> str:
    return f"COMMENT ON DATABASE {quote_always(name)} IS '" + text.replace("'", "''") + "'"


def _catalog_token(conn: sa.Connection) -> str:
    """The catalog token of the database of ``conn`` (changes with any DDL in it)."""
    with conn.begin():
        return str(conn.exec_driver_sql(CATALOG_TOKEN_SQL).scalar())


class _Scratch:
    """The scratch database and its connection: empty, or a template taken over.

    :meth:`fresh` and :meth:`adopt` each replace the current scratch database (dropped).
    :meth:`adopt` *renames* a kept template into this run's scratch database (no copy:
    the template is this build's starting point and the next template is its last
    state); :meth:`keep` renames the current one into a template instead of dropping it.
    One admin connection (autocommit) serves every rename.
    """

    def __init__(self, server_url: str, stack: contextlib.ExitStack) -> None:
        self._server_url = server_url
        self._stack = stack
        self._inner: contextlib.ExitStack | None = None
        self._engine: sa.Engine | None = None
        self._admin: sa.Connection | None = None
        self.name: str | None = None
        self.url: str | None = None
        self.conn: sa.Connection | None = None

    def _admin_run(self, *statements: str) -> None:
        if self._admin is None:
            engine = make_engine(self._server_url, label=SCRATCH_LABEL)
            self._stack.callback(engine.dispose)
            conn = self._stack.enter_context(connect(engine, label=SCRATCH_LABEL))
            self._admin = conn.execution_options(isolation_level="AUTOCOMMIT")
        for sql in statements:
            self._admin.exec_driver_sql(sql)

    def _wait_gone(self, pid: int, timeout_s: float = 2.0) -> None:
        """Wait until the backend ``pid`` (our closed connection) has exited.

        A rename waits (100 ms steps) while any session is connected to the database;
        the backend of a connection just closed is still there for a moment.
        """
        self._admin_run()  # connects when needed
        assert self._admin is not None
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            found = self._admin.exec_driver_sql(
                f"SELECT 1 FROM pg_stat_activity WHERE pid = {pid}"
            ).first()
            if found is None:
                return
            time.sleep(0.002)

    def _close(self) -> None:
        if self._inner is not None:
            self._inner.close()  # closes the connection and drops that database
        self._inner = self._engine = self.conn = self.name = self.url = None

    def _open(self, inner: contextlib.ExitStack, url: str) -> sa.Connection:
        engine = make_engine(url, label="scratch database")
        inner.callback(engine.dispose)
        self._engine = engine
        self.url = url
        self.conn = inner.enter_context(connect(engine, label="scratch database"))
        return self.conn

    def fresh(self) -> sa.Connection:
        """Drop the current scratch database (if any); connect to a new, empty one."""
        self._close()
        inner = self._stack.enter_context(contextlib.ExitStack())
        self._inner = inner
        url = inner.enter_context(scratch_database(self._server_url))
        self.name = sa.make_url(url).database
        return self._open(inner, url)

    def adopt(self, template: str) -> sa.Connection | None:
        """Take template database ``template`` over as the scratch database (renamed).

        None (logged) when it cannot be (gone, in use, renamed by a concurrent build).
        The database is named and commented as a scratch database, so a killed run's
        leftover is dropped by the next one like any other.
        """
        self._close()
        name = scratch_name()
        try:
            self._admin_run(
                f"ALTER DATABASE {quote_always(template)} RENAME TO {quote_always(name)}",
            )
        except (AbpartsOpsError, sa.exc.DBAPIError) as exc:
            first = (str(getattr(exc, "orig", None) or exc).strip().splitlines() or ["?"])[0]
            log.info("expected-schemas template %s cannot be taken: %s", template, first)
            return None
        inner = self._stack.enter_context(contextlib.ExitStack())
        self._inner = inner
        inner.callback(drop_database, self._server_url, name, label=SCRATCH_LABEL)
        self.name = name
        with contextlib.suppress(sa.exc.DBAPIError):
            self._admin_run(_comment_sql(name, _scratch_comment()))
        return self._open(inner, with_database(self._server_url, name))

    def keep(self, template: str) -> bool:
        """Rename the current scratch database to ``template`` instead of dropping it."""
        if self.name is None or self._inner is None:
            return False
        pid = None
        if self.conn is not None:
            with contextlib.suppress(sa.exc.SQLAlchemyError):
                pid = self.conn.exec_driver_sql("SELECT pg_backend_pid()").scalar()
            self.conn.close()
        if self._engine is not None:
            self._engine.dispose()
        try:
            if pid is not None:
                self._wait_gone(int(pid))
            self._admin_run(
                f"DROP DATABASE IF EXISTS {quote_always(template)} WITH (FORCE)",
                f"ALTER DATABASE {quote_always(self.name)} RENAME TO {quote_always(template)}",
                _comment_sql(template, _template_comment()),
            )
        except (AbpartsOpsError, sa.exc.DBAPIError) as exc:
            log.info("could not keep the scratch database as template %s: %s", template, exc)
            self._close()
            return False
        self._close()  # the drop of the old name is a no-op now
        return True


def drop_other_templates(server_url: str, prefix: str, keep: str | None) -> None:
    """Drop the templates named ``prefix*`` but ``keep`` (best effort: one kept per family)."""
    like = prefix.replace("\\", "\\\\").replace("_", "\\_").replace("%", "\\%") + "%"
    try:
        engine = make_engine(server_url, label=SCRATCH_LABEL)
        try:
            with connect(engine, label=SCRATCH_LABEL) as conn:
                names = conn.execute(
                    sa.text("SELECT datname FROM pg_database WHERE datname LIKE :like"),
                    {"like": like},
                ).scalars().all()
        finally:
            engine.dispose()
    except (AbpartsOpsError, sa.exc.DBAPIError) as exc:
        log.info("could not list expected-schemas templates: %s", exc)
        return
    for name in names:
        if name != keep:
            with contextlib.suppress(AbpartsOpsError):
                drop_database(server_url, name, label=SCRATCH_LABEL)


def _apply(
    conn: sa.Connection,
    project: AlembicProject,
    script: ScriptDirectory,
    rev: str,
    paths: Mapping[str, str],
) -> None:
    """Upgrade to ``rev`` (whose ancestors are applied); a failure names file and line."""
    try:
        upgrade(conn, project, rev, script=script)
    except RevisionFailed as exc:
        path = paths.get(exc.revision)
        line = _failing_line(exc, path)
        where = f"{path} line {line}" if line else (path or "file unknown")
        raise MigrationError(
            f"{project.label}: revision {exc.revision} ({where}) fails on an empty scratch "
            f"database: {exc.detail} (fix this revision file; the expected schemas were not "
            "computed)."
        ) from None


@dataclass(frozen=True)
class BuildBase:
    """An earlier build to extend: its manifest and what of it the files still match."""

    data: Mapping[str, Any]
    refs: Mapping[str, store.SnapshotRef]
    reusable: frozenset[str]
    delta: HistoryDelta

    @property
    def template(self) -> Mapping[str, Any] | None:
        """The template it kept, when every revision in it is still the files' own."""
        template = self.data.get("template")
        if not template or not all(rev in self.reusable for rev in template.get("applied", ())):
            return None
        return template


def _reusable(
    graph: HistoryGraph, revisions: Mapping[str, Any], missing: set[str]
) -> frozenset[str]:
    """Revisions whose snapshot an earlier build (``revisions``: its manifest's) still gives.

    The revision and everything it depends on must have the same file content and the
    same parents, and its snapshot file must be there.
    """
    ok: set[str] = set()
    for rev in graph.order:
        entry = revisions.get(rev)
        if entry is None or rev in missing or entry.get("content") != graph.contents[rev]:
            continue
        if tuple(entry.get("parents") or ()) != tuple(graph.parents[rev]):
            continue
        if all(need in ok for need in (*graph.parents[rev], *graph.dependencies.get(rev, ()))):
            ok.add(rev)
    return frozenset(ok)


def best_base(folder: Path, graph: HistoryGraph, settings: BuildSettings) -> BuildBase | None:
    """The cached build with these settings that the files reuse most of (None: none)."""
    best: BuildBase | None = None
    for _path, data in store.manifests(folder):
        if not settings.matches(data):
            continue
        refs = store.refs_of(data)
        reusable = _reusable(graph, data["revisions"], store.missing_snapshots(folder, refs))
        if reusable and (best is None or len(reusable) > len(best.reusable)):
            contents = {rev: str(e.get("content", "")) for rev, e in data["revisions"].items()}
            best = BuildBase(data, refs, reusable, history_delta(data["order"], contents, graph))
        if best is not None and len(best.reusable) == len(best.data["order"]):
            break  # every revision of that build is still the files': take it
    return best


@dataclass
class Built:
    """What one build produced: a snapshot per revision built, the revisions applied and
    replayed (``seeds``), the template it kept, and whether it started from one."""

    snapshots: dict[str, Snapshot]
    applied: list[str]
    seeds: list[str]
    template: dict[str, Any] | None
    server_version: str | None
    adopted: bool = False


def _give_back(
    scratch: _Scratch, conn: sa.Connection | None, template: Mapping[str, Any]
) -> None:
    """Rename a template taken over back, when a failed build left it as it was kept."""
    try:
        if conn is None:
            return
        conn.rollback()
        if _catalog_token(conn) == template.get("token"):
            scratch.keep(str(template["database"]))
    except (AbpartsOpsError, sa.exc.SQLAlchemyError) as exc:
        log.info("could not give expected-schemas template back: %s", exc)


def _verify_adopted(
    conn: sa.Connection, template: Mapping[str, Any], settings: BuildSettings
) -> str | None:
    """Why the template taken over is not the state it was kept at (None: it is).

    Its version rows must be the recorded ones and its catalog token (a hash of the row
    versions of every catalog a snapshot reads) the one recorded when it was kept: any
    DDL run in it since moves the token.
    """
    rows = current_revisions(
        conn,
        version_table=settings.version_table,
        schema=settings.version_table_schema or settings.schema,
    )
    wanted = tuple(sorted(template.get("rows") or ()))
    if tuple(sorted(rows or ())) != wanted:
        return f"its version rows are {rows}, the template was kept at {wanted}"
    if not template.get("token") or _catalog_token(conn) != template.get("token"):
        return "its catalogs changed since it was kept"
    return None


def build_incremental(
    scratch_url: str,
    project: AlembicProject,
    graph: HistoryGraph,
    settings: BuildSettings,
    *,
    script: ScriptDirectory,
    base: BuildBase | None = None,
    keep: str | None = None,
    progress: Progress | None = None,
) -> Built:
    """Build every revision of ``graph`` that ``base`` does not give (all without one).

    See :func:`build_expected_schemas` for how a revision is built. A scratch database
    starts as ``base``'s template, taken over (renamed, checked), when the template's
    revisions are the first ones of the plan, else empty. With ``keep`` the last scratch
    database is renamed into that template instead of being dropped; a build that fails
    before changing a template it took over gives it back.
    """
    reusable = base.reusable if base else frozenset()
    template = base.template if base else None
    original = dict(template) if template else None
    todo = [rev for rev in graph.order if rev not in reusable]
    built: dict[str, Snapshot] = {}
    applied_log: list[str] = []
    seeds: list[str] = []
    server_version: str | None = None
    kept: dict[str, Any] | None = dict(template) if template else None
    adopted: list[str] | None = None
    with contextlib.ExitStack() as stack:
        scratch = _Scratch(scratch_url, stack)
        applied: list[str] | None = None
        conn: sa.Connection | None = None
        try:
            for position, rev in enumerate(todo, start=1):
                try:
                    plan = _plan(script, rev)
                except alembic_util.CommandError as exc:
                    raise MigrationError(
                        f"{project.label}: cannot plan `upgrade {rev}` "
                        f"({graph.paths.get(rev)}): {str(exc).splitlines()[0]} (fix the "
                        "revision's down_revision)."
                    ) from None
                if applied is None or applied != plan[: len(applied)]:
                    applied, conn = None, None
                    start = list(template["applied"]) if template else None
                    if template and start and start == plan[: len(start)]:
                        conn = scratch.adopt(str(template["database"]))
                        problem = (
                            _verify_adopted(conn, template, settings)
                            if conn is not None
                            else "it cannot be taken over"
                        )
                        if problem is None:
                            applied, adopted = start, list(start)
                            seeds.append(f"template at {start[-1]}")
                        else:
                            (log.warning if conn is not None else log.info)(
                                "not using expected-schemas template %s: %s; starting from "
                                "empty",
                                template["database"],
                                problem,
                            )
                        template = kept = None  # taken over (or unusable): no template now
                    if applied is None:
                        conn = scratch.fresh()
                        applied = []
                        seeds.append("empty")
                assert conn is not None
                for step in plan[len(applied) :]:
                    _apply(conn, project, script, step, graph.paths)
                    applied.append(step)
                    applied_log.append(step)
                snap = snapshot_connection(
                    conn,
                    schema=settings.schema,
                    exclude=settings.exclude,
                    version_table=settings.version_table,
                    source=f"expected at {rev}",
                    require_tables=False,
                    privileges=settings.privileges,
                )
                server_version = server_version or snap.server_version
                built[rev] = snap
                if progress is not None:
                    progress(rev, position, len(todo))
        except MigrationError:
            if original is not None and adopted is not None and applied == adopted:
                _give_back(scratch, conn, original)
            raise
        if keep and conn is not None and applied:
            rows = current_revisions(
                conn,
                version_table=settings.version_table,
                schema=settings.version_table_schema or settings.schema,
            )
            state = {
                "database": keep,
                "applied": list(applied),
                "rows": sorted(rows or ()),
                "token": _catalog_token(conn),
                "probe": built[todo[-1]].probe_fingerprint,
            }
            if scratch.keep(keep):
                kept = state
    return Built(built, applied_log, seeds, kept, server_version, adopted is not None)


def build_expected_schemas(
    scratch_url: str,
    project: AlembicProject,
    *,
    schema: str = "public",
    exclude: Sequence[str] = (),
    progress: Progress | None = None,
    privileges: bool = False,
) -> ExpectedSchemas:
    """Build every revision of ``project`` on one scratch database, snapshotting each.

    The cold build, with no cache (:func:`load_or_build_expected` is the one way readers
    get the expected schemas; it extends a cached build instead when it can).
    ``scratch_url`` is any database on the scratch server (see
    :func:`~abparts_ops.core.scratch.scratch_database`). Revisions are taken in
    upgrade order; each is applied in its own transaction and then the schema is read
    (exclusions applied, the version table left out), so a linear history of n revisions
    costs n single-revision upgrades and n snapshots.

    For a history with branches the snapshot at ``r`` must be what ``upgrade r`` gives
    from empty, so the database must hold exactly the revisions Alembic would apply for
    ``r``, in Alembic's order. When what was applied so far is a prefix of that plan, the
    rest of the plan is applied one revision at a time; otherwise (the database holds a
    revision of another branch) the scratch database is dropped and a new, empty one is
    created, on which the plan for ``r`` is applied from the start. No downgrade is ever
    relied on.

    ``privileges`` includes granted privileges in the snapshots (config
    ``compare_privileges``; environments must then be read the same way).
    ``progress(revision, i, total)`` is called after each snapshot. A revision that fails
    raises one MigrationError line naming the revision, its file and (when the traceback
    has it) the line.
    """
    script = project.script()
    graph = read_graph(project, script)
    settings = build_settings(project, schema, exclude, privileges)
    built = build_incremental(
        scratch_url, project, graph, settings, script=script, progress=progress
    )
    return ExpectedSchemas(
        history_fingerprint=graph.fingerprint,
        schema=schema,
        exclude=tuple(exclude),
        version_table=project.version_table,
        heads=graph.heads,
        order=graph.order,
        parents=graph.parents,
        snapshots=built.snapshots,
        dependencies=graph.dependencies,
        server_version=built.server_version,
        privileges=privileges,
        contents=graph.contents,
    )
