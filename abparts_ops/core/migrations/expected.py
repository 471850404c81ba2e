"""The expected schema of every revision: what the on-disk history builds, kept once.

After the reset the migration history is the reference: an environment whose version
table holds revision ``r`` must have the schema that ``alembic upgrade r`` gives on an
empty database. :func:`build_expected_schemas` computes that for every revision on one
scratch database, upgraded revision by revision with a snapshot after each step, and
returns an :class:`ExpectedSchemas`: the snapshots (each with its probe fingerprint, so a
cheap probe of an environment can be compared with it) and the graph (order, parents,
heads) that says which revisions an environment still lacks (:meth:`~ExpectedSchemas.
pending`).

:func:`load_or_build_expected` keeps the result in a cache file per (history
fingerprint, schema, exclusions, version table, snapshot format), so the history is
built again only when a revision file changes. :class:`ExpectedIndex` is everything but
the snapshots, a few KB, for Dagster metadata and sensor ticks.

The history fingerprint is :func:`history_fingerprint`: the same formula as
:func:`abparts_ops.core.migrations.history.versions_fingerprint` (sha256 over every revision file's
name relative to its versions folder and its sha256; files are read, never imported), so
a sensor can tell from the files alone whether the expected schemas are still current.
"""

from __future__ import annotations

import contextlib
import hashlib
import heapq
import json
import logging
import os
import re
import tempfile
import traceback
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import util as alembic_util
from alembic.script import ScriptDirectory

from abparts_ops.core.db import connect, make_engine
from abparts_ops.core.errors import AbpartsOpsError, MigrationError, SchemaError
from abparts_ops.core.migrations.archive import ARCHIVE_PREFIX
from abparts_ops.core.migrations.history import read_history, versions_fingerprint
from abparts_ops.core.migrations.migrate import RevisionFailed, upgrade
from abparts_ops.core.migrations.project import AlembicProject, read_revision_id, revision_files
from abparts_ops.core.migrations.scratch import scratch_database
from abparts_ops.core.schema import catalog_sql
from abparts_ops.core.schema import model as snapshot_model
from abparts_ops.core.schema.introspect import snapshot_connection
from abparts_ops.core.schema.model import Snapshot, canonical_json, sha256_text

log = logging.getLogger(__name__)

FORMAT = "abparts-ops/expected-schemas"
INDEX_FORMAT = "abparts-ops/expected-index"
FORMAT_VERSION = 1
CACHE_FILE_PREFIX = "expected-"
#: Cache files kept per cache folder (the newest); older ones are removed after a write.
CACHE_KEEP = 8

#: Called after each revision's snapshot: (revision, position from 1, total revisions).
Progress = Callable[[str, int, int], None]


def _snapshot_format() -> str:
    """What the stored snapshots and probe fingerprints depend on in this abparts_ops.

    The snapshot format version and the catalog queries themselves: a release that reads
    the catalogs differently gives other fingerprints, so older caches are not reused.
    """
    text = "\n".join(
        (str(snapshot_model.FORMAT_VERSION), catalog_sql.SNAPSHOT_SQL, catalog_sql.PROBE_SQL)
    )
    return f"{snapshot_model.FORMAT_VERSION}:{sha256_text(text)[:16]}"


def history_fingerprint(project: AlembicProject) -> str:
    """sha256 over the revision files of ``project`` (names and contents; no import).

    :func:`~abparts_ops.core.migrations.history.versions_fingerprint` of its versions
    folders: the fingerprint ``revision_files_sensor`` watches.
    """
    return versions_fingerprint(project.versions_dirs)


# -- the graph, shared by the full result and its index ----------------------------------


def _ancestry(
    revisions: Iterable[str],
    parents: Mapping[str, tuple[str, ...]],
    dependencies: Mapping[str, tuple[str, ...]],
) -> set[str]:
    """``revisions`` and everything they need (down revisions and dependencies)."""
    done: set[str] = set()
    stack = list(revisions)
    while stack:
        rev = stack.pop()
        if rev in done:
            continue
        done.add(rev)
        stack.extend(parents.get(rev, ()))
        stack.extend(dependencies.get(rev, ()))
    return done


def _upgrade_order(
    history_order: Sequence[str],
    parents: Mapping[str, tuple[str, ...]],
    dependencies: Mapping[str, tuple[str, ...]],
) -> tuple[str, ...]:
    """Topological order over down revisions *and* dependencies, base first.

    Among revisions ready together, the one earlier in the history's own order comes
    first, so without ``depends_on`` this is exactly the history's order.
    """
    position = {rev: i for i, rev in enumerate(history_order)}
    waiting = {
        rev: {p for p in (*parents.get(rev, ()), *dependencies.get(rev, ())) if p in position}
        for rev in history_order
    }
    children: dict[str, list[str]] = {rev: [] for rev in history_order}
    for rev, needs in waiting.items():
        for need in needs:
            children[need].append(rev)
    ready = [position[rev] for rev, needs in waiting.items() if not needs]
    heapq.heapify(ready)
    order: list[str] = []
    while ready:
        rev = history_order[heapq.heappop(ready)]
        order.append(rev)
        for child in children[rev]:
            waiting[child].discard(rev)
            if not waiting[child]:
                heapq.heappush(ready, position[child])
    return tuple(order)


def _pending(
    order: tuple[str, ...],
    parents: Mapping[str, tuple[str, ...]],
    dependencies: Mapping[str, tuple[str, ...]],
    revisions: Sequence[str] | None,
) -> tuple[str, ...]:
    if not revisions:
        return order
    unknown = sorted(r for r in set(revisions) if r not in parents)
    if unknown:
        raise MigrationError(
            f"revision {', '.join(unknown)} is in no revision file of the history on disk, "
            "so what `upgrade heads` would apply cannot be said (check knows() first; "
            "stamp the environment with a revision of this history)."
        )
    done = _ancestry(revisions, parents, dependencies)
    return tuple(rev for rev in order if rev not in done)


def _header_checksum(data: Mapping[str, Any]) -> str:
    return sha256_text(canonical_json({k: v for k, v in data.items() if k != "checksum"}))


@dataclass(frozen=True)
class ExpectedIndex:
    """The expected schemas without their snapshots: small enough for metadata and ticks.

    ``probe_fingerprints`` and ``table_counts`` are per revision; ``order`` is the
    upgrade order (base first) and ``parents`` each revision's down revisions
    (``dependencies`` its ``depends_on`` revisions, only where it has some).
    """

    history_fingerprint: str
    schema: str
    exclude: tuple[str, ...]
    version_table: str
    heads: tuple[str, ...]
    order: tuple[str, ...]
    parents: Mapping[str, tuple[str, ...]]
    probe_fingerprints: Mapping[str, str | None]
    table_counts: Mapping[str, int]
    dependencies: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    privileges: bool = False
    """Whether the snapshots and probe fingerprints include granted privileges."""

    def knows(self, rev: str) -> bool:
        """Whether ``rev`` is a revision of this history."""
        return rev in self.parents

    def probe_fingerprint(self, rev: str) -> str | None:
        """The probe fingerprint expected at ``rev`` (None for a revision not known)."""
        return self.probe_fingerprints.get(rev)

    def pending(self, revisions: tuple[str, ...] | None) -> tuple[str, ...]:
        """What ``upgrade heads`` would apply to a database at ``revisions``, in order.

        ``None`` (no version table) and ``()`` (empty one) give the whole history. An id
        this history does not know raises one MigrationError line.
        """
        return _pending(self.order, self.parents, self.dependencies, revisions)

    def to_dict(self) -> dict[str, Any]:
        """The versioned JSON form, with a checksum (round-trips through from_dict)."""
        data: dict[str, Any] = {
            "format": INDEX_FORMAT,
            "version": FORMAT_VERSION,
            "history_fingerprint": self.history_fingerprint,
            "schema": self.schema,
            "exclude": list(self.exclude),
            "version_table": self.version_table,
            "privileges": self.privileges,
            "heads": list(self.heads),
            "revisions": [
                {
                    "id": rev,
                    "parents": list(self.parents[rev]),
                    "probe": self.probe_fingerprints.get(rev),
                    "tables": self.table_counts.get(rev, 0),
                    **(
                        {"depends_on": list(self.dependencies[rev])}
                        if self.dependencies.get(rev)
                        else {}
                    ),
                }
                for rev in self.order
            ],
        }
        data["checksum"] = _header_checksum(data)[:16]
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ExpectedIndex:
        """Load an index from its JSON form; rejects other formats, versions, corruption."""
        _check_format(data, INDEX_FORMAT, "expected-schemas index")
        if data.get("checksum") != _header_checksum(data)[:16]:
            raise SchemaError("expected-schemas index is corrupt: its checksum does not match.")
        try:
            revisions = data["revisions"]
            return cls(
                history_fingerprint=str(data["history_fingerprint"]),
                schema=str(data["schema"]),
                exclude=tuple(data["exclude"]),
                version_table=str(data["version_table"]),
                heads=tuple(data["heads"]),
                order=tuple(r["id"] for r in revisions),
                parents={r["id"]: tuple(r["parents"]) for r in revisions},
                probe_fingerprints={r["id"]: r["probe"] for r in revisions},
                table_counts={r["id"]: int(r["tables"]) for r in revisions},
                dependencies={
                    r["id"]: tuple(r["depends_on"]) for r in revisions if r.get("depends_on")
                },
                privileges=bool(data.get("privileges", False)),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise SchemaError(f"expected-schemas index is malformed: {exc!r}.") from None


def _check_format(data: Mapping[str, Any], fmt: str, what: str) -> None:
    if not isinstance(data, Mapping) or data.get("format") != fmt:
        found = data.get("format") if isinstance(data, Mapping) else type(data).__name__
        raise SchemaError(f"not an {what} (format {found!r}).")
    if data.get("version") != FORMAT_VERSION:
        raise SchemaError(
            f"{what} version {data.get('version')!r} is not supported (this abparts_ops "
            f"reads version {FORMAT_VERSION}); build it again."
        )


@dataclass(frozen=True)
class ExpectedSchemas:
    """The schema the on-disk history builds at each of its revisions.

    ``snapshots[r]`` is the snapshot of a database after ``upgrade r`` from empty, with
    the exclusions applied and ``probe_fingerprint`` set. ``order`` is the upgrade order
    (base first: :func:`~abparts_ops.core.migrations.history.read_history`'s order, with a
    revision moved after the revisions it ``depends_on``),
    ``parents`` each revision's down revisions and ``dependencies`` its ``depends_on``
    revisions (only where it has some). ``history_fingerprint`` is
    :func:`history_fingerprint` of the files it was built from.
    """

    history_fingerprint: str
    schema: str
    exclude: tuple[str, ...]
    version_table: str
    heads: tuple[str, ...]
    order: tuple[str, ...]
    parents: Mapping[str, tuple[str, ...]]
    snapshots: Mapping[str, Snapshot]
    dependencies: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    server_version: str | None = None
    privileges: bool = False
    """Whether the snapshots include granted privileges (config ``compare_privileges``)."""

    def knows(self, rev: str) -> bool:
        """Whether ``rev`` is a revision of this history."""
        return rev in self.parents

    def snapshot(self, rev: str) -> Snapshot | None:
        """The snapshot expected at ``rev`` (None for a revision not known)."""
        return self.snapshots.get(rev)

    def probe_fingerprint(self, rev: str) -> str | None:
        """The probe fingerprint expected at ``rev`` (None for a revision not known)."""
        snap = self.snapshots.get(rev)
        return snap.probe_fingerprint if snap is not None else None

    def pending(self, revisions: tuple[str, ...] | None) -> tuple[str, ...]:
        """What ``upgrade heads`` would apply to a database at ``revisions``, in order.

        ``None`` (no version table) and ``()`` (empty one) give the whole history. An id
        this history does not know raises one MigrationError line.
        """
        return _pending(self.order, self.parents, self.dependencies, revisions)

    def index(self) -> ExpectedIndex:
        """Everything but the snapshots (see :class:`ExpectedIndex`)."""
        return ExpectedIndex(
            history_fingerprint=self.history_fingerprint,
            schema=self.schema,
            exclude=self.exclude,
            version_table=self.version_table,
            heads=self.heads,
            order=self.order,
            parents=self.parents,
            probe_fingerprints={r: self.probe_fingerprint(r) for r in self.order},
            table_counts={r: len(self.snapshots[r].kind("table")) for r in self.order},
            dependencies=self.dependencies,
            privileges=self.privileges,
        )

    def to_dict(self) -> dict[str, Any]:
        """The versioned JSON form (round-trips through :meth:`from_dict`)."""
        data: dict[str, Any] = {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "snapshot_format": _snapshot_format(),
            "history_fingerprint": self.history_fingerprint,
            "schema": self.schema,
            "exclude": list(self.exclude),
            "version_table": self.version_table,
            "heads": list(self.heads),
            "order": list(self.order),
            "parents": {r: list(self.parents[r]) for r in self.order},
            "dependencies": {r: list(v) for r, v in sorted(self.dependencies.items()) if v},
            "server_version": self.server_version,
            "privileges": self.privileges,
        }
        data["checksum"] = _header_checksum(data)
        data["snapshots"] = {r: self.snapshots[r].to_dict() for r in self.order}
        return data

    def to_json(self) -> str:
        """The versioned JSON form as text."""
        return json.dumps(self.to_dict(), ensure_ascii=False, separators=(",", ":"))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ExpectedSchemas:
        """Load from the JSON form; rejects other formats and versions, and corruption.

        The header carries a checksum and each snapshot its own fingerprint (checked by
        :meth:`Snapshot.from_dict`), so a damaged file raises SchemaError.
        """
        _check_format(data, FORMAT, "expected-schemas file")
        header = {k: v for k, v in data.items() if k != "snapshots"}
        if data.get("checksum") != _header_checksum(header):
            raise SchemaError("expected-schemas file is corrupt: its checksum does not match.")
        try:
            order = tuple(data["order"])
            raw = data["snapshots"]
            if set(raw) != set(order):
                raise SchemaError(
                    "expected-schemas file is corrupt: its snapshots do not match its revisions."
                )
            return cls(
                history_fingerprint=str(data["history_fingerprint"]),
                schema=str(data["schema"]),
                exclude=tuple(data["exclude"]),
                version_table=str(data["version_table"]),
                heads=tuple(data["heads"]),
                order=order,
                parents={r: tuple(data["parents"][r]) for r in order},
                snapshots={r: Snapshot.from_dict(raw[r]) for r in order},
                dependencies={r: tuple(v) for r, v in data.get("dependencies", {}).items()},
                server_version=data.get("server_version"),
                privileges=bool(data.get("privileges", False)),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise SchemaError(f"expected-schemas file is malformed: {exc!r}.") from None

    @classmethod
    def from_json(cls, text: str) -> ExpectedSchemas:
        """Load from the text written by :meth:`to_json`."""
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise SchemaError(f"expected-schemas file is not JSON: {exc}.") from None
        return cls.from_dict(data)


# -- building ----------------------------------------------------------------------------


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


class _Scratch:
    """The scratch database and its connection; :meth:`fresh` swaps in an empty one."""

    def __init__(self, server_url: str, stack: contextlib.ExitStack) -> None:
        self._server_url = server_url
        self._stack = stack
        self._inner: contextlib.ExitStack | None = None
        self.conn: sa.Connection | None = None

    def fresh(self) -> sa.Connection:
        """Drop the current scratch database (if any); connect to a new, empty one."""
        if self._inner is not None:
            self._inner.close()  # closes the connection and drops that database
        inner = self._stack.enter_context(contextlib.ExitStack())
        self._inner = inner
        url = inner.enter_context(scratch_database(self._server_url))
        engine = make_engine(url, label="scratch database")
        inner.callback(engine.dispose)
        self.conn = inner.enter_context(connect(engine, label="scratch database"))
        return self.conn


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

    ``scratch_url`` is any database on the scratch server (see
    :func:`~abparts_ops.core.migrations.scratch.scratch_database`). Revisions are taken in
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
    fingerprint = history_fingerprint(project)
    history = read_history(project)
    script = project.script()
    parents = {info.revision: info.down_revisions for info in history.revisions}
    paths = {info.revision: str(info.path) for info in history.revisions}
    dependencies: dict[str, tuple[str, ...]] = {}
    for rev in parents:
        resolved = getattr(script.get_revision(rev), "_resolved_dependencies", ()) or ()
        deps = tuple(alembic_util.to_tuple(resolved, default=()))
        if deps:
            dependencies[rev] = deps
    order = _upgrade_order(tuple(parents), parents, dependencies)
    snapshots: dict[str, Snapshot] = {}
    server_version: str | None = None
    with contextlib.ExitStack() as stack:
        scratch = _Scratch(scratch_url, stack)
        conn = scratch.fresh() if order else None
        applied: list[str] = []
        for position, rev in enumerate(order, start=1):
            assert conn is not None
            try:
                plan = _plan(script, rev)
            except alembic_util.CommandError as exc:
                raise MigrationError(
                    f"{project.label}: cannot plan `upgrade {rev}` ({paths[rev]}): "
                    f"{str(exc).splitlines()[0]} (fix the revision's down_revision)."
                ) from None
            if applied != plan[: len(applied)]:
                conn = scratch.fresh()
                applied = []
            for step in plan[len(applied) :]:
                _apply(conn, project, script, step, paths)
                applied.append(step)
            snap = snapshot_connection(
                conn,
                schema=schema,
                exclude=exclude,
                version_table=project.version_table,
                source=f"expected at {rev}",
                require_tables=False,
                privileges=privileges,
            )
            server_version = server_version or snap.server_version
            snapshots[rev] = snap
            if progress is not None:
                progress(rev, position, len(order))
    return ExpectedSchemas(
        history_fingerprint=fingerprint,
        schema=schema,
        exclude=tuple(exclude),
        version_table=project.version_table,
        heads=history.heads,
        order=order,
        parents=parents,
        snapshots=snapshots,
        dependencies=dependencies,
        server_version=server_version,
        privileges=privileges,
    )


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


# -- the cache ---------------------------------------------------------------------------


def default_cache_dir() -> Path:
    """Where expected schemas are cached, by the first rule that applies.

    1. ``$ABPARTS_OPS_CACHE/expected`` when ``ABPARTS_OPS_CACHE`` is set;
    2. ``$DAGSTER_HOME/abparts_ops/expected`` when ``DAGSTER_HOME`` is set (the Dagster
       instance's own folder, shared by the webserver, daemon and runs);
    3. ``$XDG_CACHE_HOME/abparts_ops/expected``, else ``~/.cache/abparts_ops/expected``.
    """
    root = os.environ.get("ABPARTS_OPS_CACHE", "").strip()
    if root:
        return Path(root).expanduser() / "expected"
    home = os.environ.get("DAGSTER_HOME", "").strip()
    if home:
        return Path(home).expanduser() / "abparts_ops" / "expected"
    xdg = os.environ.get("XDG_CACHE_HOME", "").strip()
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "abparts_ops" / "expected"


def cache_key(
    fingerprint: str,
    *,
    schema: str,
    exclude: Sequence[str],
    version_table: str,
    privileges: bool = False,
) -> str:
    """The cache key: history fingerprint, schema, exclusions, version table, privileges
    and the snapshot format."""
    parts: list[Any] = [
        FORMAT_VERSION,
        _snapshot_format(),
        fingerprint,
        schema,
        sorted(exclude),
        version_table,
    ]
    if privileges:  # appended only when set: caches without privileges keep their keys
        parts.append("privileges")
    text = canonical_json(parts)
    return hashlib.sha256(text.encode()).hexdigest()


def cache_path(cache_dir: Path, key: str) -> Path:
    """The cache file of ``key`` inside ``cache_dir``."""
    return Path(cache_dir) / f"{CACHE_FILE_PREFIX}{key[:32]}.json"


_CACHE_NAME = re.compile(rf"^{re.escape(CACHE_FILE_PREFIX)}[0-9a-f]{{32}}\.json$")


def _read_cache(
    path: Path,
    *,
    fingerprint: str,
    schema: str,
    exclude: Sequence[str],
    version_table: str,
    privileges: bool = False,
) -> ExpectedSchemas | None:
    """The cached result in ``path`` when it is sound and for exactly these inputs."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as exc:
        log.warning("expected-schemas cache %s cannot be read (%s); rebuilding", path, exc)
        return None
    try:
        data = json.loads(text)
        if isinstance(data, dict) and data.get("snapshot_format") != _snapshot_format():
            raise SchemaError("written by another abparts_ops snapshot format")
        found = ExpectedSchemas.from_dict(data)
    except (AbpartsOpsError, ValueError) as exc:
        log.warning("ignoring expected-schemas cache %s: %s; rebuilding", path, exc)
        return None
    if (
        found.history_fingerprint != fingerprint
        or found.schema != schema
        or sorted(found.exclude) != sorted(exclude)
        or found.version_table != version_table
        or found.privileges != privileges
    ):
        log.warning("ignoring expected-schemas cache %s: built for other inputs", path)
        return None
    return found


def _write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and ``os.replace``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _prune(cache_dir: Path, keep: Path) -> None:
    """Remove all but the newest :data:`CACHE_KEEP` cache files (``keep`` always stays)."""
    try:
        files = [p for p in cache_dir.iterdir() if _CACHE_NAME.match(p.name) and p != keep]
        files.sort(key=lambda p: p.stat().st_mtime_ns, reverse=True)
    except OSError:
        return
    for old in files[CACHE_KEEP - 1 :]:
        with contextlib.suppress(OSError):
            old.unlink()


def cached_expected(
    project: AlembicProject,
    *,
    schema: str = "public",
    exclude: Sequence[str] = (),
    cache_dir: Path | str | None = None,
    privileges: bool = False,
) -> ExpectedSchemas | None:
    """The cached expected schemas of ``project``'s current files, or None (never builds).

    For readers that must not touch a scratch server (a CLI answer, a check): None when
    nothing sound is cached for the current history fingerprint and these settings.
    """
    folder = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    fingerprint = history_fingerprint(project)
    key_args = {
        "schema": schema,
        "exclude": exclude,
        "version_table": project.version_table,
        "privileges": privileges,
    }
    path = cache_path(folder, cache_key(fingerprint, **key_args))
    return _read_cache(path, fingerprint=fingerprint, **key_args)


def load_or_build_expected(
    scratch_url: str,
    project: AlembicProject,
    *,
    schema: str = "public",
    exclude: Sequence[str] = (),
    cache_dir: Path | str | None = None,
    progress: Progress | None = None,
    privileges: bool = False,
) -> tuple[ExpectedSchemas, bool]:
    """The expected schemas of ``project``'s history, from the cache when it is current.

    Returns ``(expected, reused)``. The cache file is keyed by :func:`cache_key` (history
    fingerprint, schema, exclusions, version table, snapshot format) under ``cache_dir``
    (default :func:`default_cache_dir`); a corrupt, foreign or mismatching file is
    ignored (logged) and rebuilt. Files are written atomically (temporary file, then
    ``os.replace``); a cache folder that cannot be written is logged, not fatal. When a
    revision file changes during the build, the build is repeated once, then refused.
    """
    folder = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    key_args = {
        "schema": schema,
        "exclude": exclude,
        "version_table": project.version_table,
        "privileges": privileges,
    }
    for _attempt in range(2):
        fingerprint = history_fingerprint(project)
        path = cache_path(folder, cache_key(fingerprint, **key_args))
        found = _read_cache(path, fingerprint=fingerprint, **key_args)
        if found is not None:
            return found, True
        built = build_expected_schemas(
            scratch_url,
            project,
            schema=schema,
            exclude=exclude,
            progress=progress,
            privileges=privileges,
        )
        if built.history_fingerprint != fingerprint or history_fingerprint(project) != fingerprint:
            continue  # a revision file changed while we built: build again from the files
        try:
            _write_atomic(path, built.to_json())
        except OSError as exc:
            log.warning("expected-schemas cache %s cannot be written: %s", path, exc)
        else:
            _prune(folder, path)
        return built, False
    raise MigrationError(
        f"{project.label}: the revision files changed while the expected schemas were being "
        "built, twice (finish editing the versions folder, then run this again)."
    )


# -- the archived history ----------------------------------------------------------------


def archived_revisions(project: AlembicProject) -> dict[str, str]:
    """Revision id -> archive folder name, for each revision file in the archives.

    The archives are the ``versions_archive_<stamp>`` folders next to each versions
    folder (see :mod:`~abparts_ops.core.migrations.archive`). Ids are read from the files
    without importing them; a file without a readable id is skipped. An id found in
    several archives is attributed to the newest (the last stamp).
    """
    found: dict[str, str] = {}
    parents = sorted({Path(folder).absolute().parent for folder in project.versions_dirs})
    for parent in parents:
        try:
            archives = sorted(
                p for p in parent.iterdir() if p.name.startswith(ARCHIVE_PREFIX) and p.is_dir()
            )
        except OSError:
            continue
        for archive in archives:
            for path in revision_files(archive):
                rev = read_revision_id(path)
                if rev:
                    found[rev] = archive.name
    return found
