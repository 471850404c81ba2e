"""The expected schema of every revision: what the on-disk history builds, kept once.

After the reset the migration history is the reference: an environment whose version
table holds revision ``r`` must have the schema that ``alembic upgrade r`` gives on an
empty database. :func:`build_expected_schemas` computes that for every revision on one
scratch database, upgraded revision by revision with a snapshot after each step, and
returns an :class:`ExpectedSchemas`: the snapshots (each with its probe fingerprint, so a
cheap probe of an environment can be compared with it) and the graph (order, parents,
heads) that says which revisions an environment still lacks (:meth:`~ExpectedSchemas.
pending`).

**The one way to get them** is :func:`load_or_build_expected` (or :func:`refresh_expected`,
which it delegates to and which says what it did): current for the revision files as
they are (their *content*, not their heads), from the one cache, built or extended when
the cache is behind the files. The checks, the stamp, the guarded upgrade, the CLI and
the ``expected_schemas`` asset all call it; the drift sensor, which must not build, reads
the same cache through :func:`reference_index`.

**Incremental.** The cache (:mod:`~abparts_ops.core.history.expected_store`) keeps,
per history, a manifest with each revision's file hash and a reference to its snapshot.
When the files extend a cached history (the same revisions with the same content, plus
new ones), only the new revisions are built: the scratch database starts as a copy of
the *template* the earlier build kept on the scratch server (its last state, checked by
its version rows and probe fingerprint before use; ``CREATE DATABASE ... TEMPLATE``), or,
without one, from empty with the unchanged revisions replayed without snapshots. A
revision whose file changed is built again from it onwards only, and the new build
remembers, per revision it rebuilt, what the earlier content built there
(:class:`~abparts_ops.core.history.changes.RevisionChange`), so an environment that ran
the old content is named as such.

:class:`ExpectedIndex` is everything but the snapshots, a few KB, for Dagster metadata
and sensor ticks. The history fingerprint is :func:`history_fingerprint`: the same
formula as :func:`abparts_ops.core.history.revisions.versions_fingerprint` (sha256 over
every revision file's name relative to its versions folder and its sha256; files are
read, never imported).
"""

from __future__ import annotations

import contextlib
import hashlib
import heapq
import json
import logging
import os
import socket
import time
import traceback
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
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
from abparts_ops.core.errors import AbpartsOpsError, MigrationError, SchemaError
from abparts_ops.core.history import expected_store as store
from abparts_ops.core.history.archive import ARCHIVE_PREFIX
from abparts_ops.core.history.changes import HistoryDelta, RevisionChange
from abparts_ops.core.history.migrate import RevisionFailed, current_revisions, upgrade
from abparts_ops.core.history.project import (
    AlembicProject,
    load_revisions,
    read_revision_id,
    revision_files,
)
from abparts_ops.core.history.revisions import file_sha256, versions_fingerprint
from abparts_ops.core.quoting import quote_always
from abparts_ops.core.schema.catalog_sql import CATALOG_TOKEN_SQL
from abparts_ops.core.schema.introspect import snapshot_connection
from abparts_ops.core.schema.model import Snapshot, canonical_json, sha256_text
from abparts_ops.core.scratch import LABEL as SCRATCH_LABEL
from abparts_ops.core.scratch import scratch_database, scratch_name

log = logging.getLogger(__name__)

FORMAT = "abparts-ops/expected-schemas"
INDEX_FORMAT = "abparts-ops/expected-index"
FORMAT_VERSION = 1
#: Part of every cache key: manifests never share a key with the single-file cache (1).
CACHE_VERSION = 2
#: Manifests kept per cache folder (the newest); older ones are removed after a write.
CACHE_KEEP = store.KEEP
#: Name prefix of the template databases kept on the scratch server (one per settings).
TEMPLATE_PREFIX = "abparts_exptpl_"
#: Length of the revision file hashes in an :class:`ExpectedIndex` (enough to compare).
INDEX_CONTENT_CHARS = 16

#: Called after each revision's snapshot: (revision, position from 1, total built).
Progress = Callable[[str, int, int], None]


def _snapshot_format() -> str:
    """What the stored snapshots and probe fingerprints depend on in this abparts_ops."""
    return store.snapshot_format()


def history_fingerprint(project: AlembicProject) -> str:
    """sha256 over the revision files of ``project`` (names and contents; no import).

    :func:`~abparts_ops.core.history.revisions.versions_fingerprint` of its versions
    folders: the fingerprint ``revision_files_sensor`` watches.
    """
    return versions_fingerprint(project.versions_dirs)


# -- the graph, shared by the full result, its index and the files -----------------------


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
class HistoryGraph:
    """The revision files as they are: graph, heads and each file's sha256.

    ``order`` is the upgrade order (base first, dependencies before dependants),
    ``contents`` each revision's file hash and ``paths`` its file. ``fingerprint`` is
    :func:`history_fingerprint` of the files.
    """

    fingerprint: str
    heads: tuple[str, ...]
    order: tuple[str, ...]
    parents: Mapping[str, tuple[str, ...]]
    dependencies: Mapping[str, tuple[str, ...]]
    contents: Mapping[str, str]
    paths: Mapping[str, str] = field(default_factory=dict)

    def ancestry(self, revision: str) -> set[str]:
        """``revision`` and every revision ``upgrade revision`` applies from empty."""
        return _ancestry((revision,), self.parents, self.dependencies)


def _dependencies(script: ScriptDirectory, revisions: Iterable[str]) -> dict[str, tuple[str, ...]]:
    found: dict[str, tuple[str, ...]] = {}
    for rev in revisions:
        resolved = getattr(script.get_revision(rev), "_resolved_dependencies", ()) or ()
        deps = tuple(alembic_util.to_tuple(resolved, default=()))
        if deps:
            found[rev] = deps
    return found


def _history_order(parents: Mapping[str, tuple[str, ...]]) -> tuple[str, ...]:
    """Base to head; among revisions ready together the smallest id first.

    The order of :func:`~abparts_ops.core.history.revisions.read_history`.
    """
    indegree = {rev: 0 for rev in parents}
    kids: dict[str, list[str]] = {rev: [] for rev in parents}
    for rev, downs in parents.items():
        for parent in downs:
            if parent in parents:
                indegree[rev] += 1
                kids[parent].append(rev)
    ready = [rev for rev, n in indegree.items() if n == 0]
    heapq.heapify(ready)
    order: list[str] = []
    while ready:
        rev = heapq.heappop(ready)
        order.append(rev)
        for child in kids[rev]:
            indegree[child] -= 1
            if indegree[child] == 0:
                heapq.heappush(ready, child)
    return tuple(order)


def read_graph(project: AlembicProject, script: ScriptDirectory | None = None) -> HistoryGraph:
    """Read the revision files of ``project`` (through Alembic) into a :class:`HistoryGraph`.

    One load of the revisions (``script``'s, when given). Raises one MigrationError line
    on a broken history (see :func:`~abparts_ops.core.history.project.load_revisions`).
    """
    script = script or project.script()
    fingerprint = history_fingerprint(project)
    scripts = load_revisions(project, script)
    parents = {
        sc.revision: tuple(alembic_util.to_tuple(sc.down_revision, default=())) for sc in scripts
    }
    paths = {sc.revision: str(Path(sc.path).resolve()) for sc in scripts}
    dependencies = _dependencies(script, parents)
    return HistoryGraph(
        fingerprint=fingerprint,
        heads=tuple(sorted(sc.revision for sc in scripts if sc.is_head)),
        order=_upgrade_order(_history_order(parents), parents, dependencies),
        parents=parents,
        dependencies=dependencies,
        contents={rev: file_sha256(Path(path)) for rev, path in paths.items()},
        paths=paths,
    )


def _same_content(recorded: str | None, current: str | None) -> bool:
    """Whether a recorded file hash (full, or an index's prefix) is ``current``'s."""
    if not recorded or not current:
        return False
    return recorded[:INDEX_CONTENT_CHARS] == current[:INDEX_CONTENT_CHARS]


def history_delta(
    order: Sequence[str], contents: Mapping[str, str], graph: HistoryGraph
) -> HistoryDelta:
    """How ``graph`` (the files) differs from a build of revisions ``order``/``contents``."""
    built = set(order)
    return HistoryDelta(
        changed=tuple(
            rev
            for rev in graph.order
            if rev in built and not _same_content(contents.get(rev), graph.contents[rev])
        ),
        added=tuple(rev for rev in graph.order if rev not in built),
        removed=tuple(rev for rev in order if rev not in graph.parents),
    )


def _change_of(data: Mapping[str, Any] | None) -> RevisionChange | None:
    return RevisionChange.from_dict(data) if data else None


@dataclass(frozen=True, kw_only=True)
class HistoryShape:
    """What the index and the expected schemas both know of the history they were built
    from, and the questions it answers (is a revision known, what is pending, what changed).

    ``order`` is the upgrade order (base first), ``parents`` each revision's down
    revisions and ``dependencies`` its ``depends_on`` revisions (only where it has some);
    ``contents`` the revision files' hashes the build saw, ``changes`` what the build
    before expected at the revisions it rebuilt because a file they need changed.
    """

    history_fingerprint: str
    schema: str
    exclude: tuple[str, ...]
    version_table: str
    heads: tuple[str, ...]
    order: tuple[str, ...]
    parents: Mapping[str, tuple[str, ...]]
    dependencies: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    privileges: bool = False
    """Whether the snapshots and probe fingerprints include granted privileges."""
    contents: Mapping[str, str] = field(default_factory=dict)
    changes: Mapping[str, RevisionChange] = field(default_factory=dict)

    def knows(self, rev: str) -> bool:
        """Whether ``rev`` is a revision of this history."""
        return rev in self.parents

    def change(self, rev: str) -> RevisionChange | None:
        """What the build before this one expected at ``rev``, when a file it needs changed."""
        return self.changes.get(rev)

    def pending(self, revisions: tuple[str, ...] | None) -> tuple[str, ...]:
        """What ``upgrade heads`` would apply to a database at ``revisions``, in order.

        ``None`` (no version table) and ``()`` (empty one) give the whole history. An id
        this history does not know raises one MigrationError line.
        """
        return _pending(self.order, self.parents, self.dependencies, revisions)


@dataclass(frozen=True, kw_only=True)
class ExpectedIndex(HistoryShape):
    """The expected schemas without their snapshots: small enough for metadata and ticks.

    ``probe_fingerprints`` and ``table_counts`` are per revision; ``contents`` holds the
    first :data:`INDEX_CONTENT_CHARS` characters of each revision file's sha256 (what the
    build saw).
    """

    probe_fingerprints: Mapping[str, str | None]
    table_counts: Mapping[str, int]

    def probe_fingerprint(self, rev: str) -> str | None:
        """The probe fingerprint expected at ``rev`` (None for a revision not known)."""
        return self.probe_fingerprints.get(rev)

    def delta(self, graph: HistoryGraph) -> HistoryDelta:
        """How the files (``graph``) differ from what this index was built from."""
        return history_delta(self.order, self.contents, graph)

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
                    **(
                        {"content": self.contents[rev][:INDEX_CONTENT_CHARS]}
                        if self.contents.get(rev)
                        else {}
                    ),
                    **({"changed": self.changes[rev].to_dict()} if rev in self.changes else {}),
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
                contents={r["id"]: str(r["content"]) for r in revisions if r.get("content")},
                changes={
                    r["id"]: RevisionChange.from_dict(r["changed"])
                    for r in revisions
                    if r.get("changed")
                },
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


@dataclass(frozen=True, kw_only=True)
class ExpectedSchemas(HistoryShape):
    """The schema the on-disk history builds at each of its revisions.

    ``snapshots[r]`` is the snapshot of a database after ``upgrade r`` from empty, with
    the exclusions applied and ``probe_fingerprint`` set (from the cache, each is read and
    checked when first asked for). ``order`` is
    :func:`~abparts_ops.core.history.revisions.read_history`'s order, with a revision
    moved after the revisions it ``depends_on``; ``history_fingerprint`` is
    :func:`history_fingerprint` of the files it was built from and ``contents`` each
    revision file's whole sha256.
    """

    snapshots: Mapping[str, Snapshot]
    server_version: str | None = None
    table_counts: Mapping[str, int] = field(default_factory=dict, compare=False)
    """Tables per revision, when known without reading the snapshots (from the cache)."""

    def snapshot(self, rev: str) -> Snapshot | None:
        """The snapshot expected at ``rev`` (None for a revision not known)."""
        return self.snapshots.get(rev)

    def probe_fingerprint(self, rev: str) -> str | None:
        """The probe fingerprint expected at ``rev`` (None for a revision not known)."""
        if isinstance(self.snapshots, store.CachedSnapshots):
            return self.snapshots.probe(rev)
        snap = self.snapshots.get(rev)
        return snap.probe_fingerprint if snap is not None else None

    def index(self) -> ExpectedIndex:
        """Everything but the snapshots (see :class:`ExpectedIndex`)."""
        tables = {
            r: self.table_counts[r]
            if r in self.table_counts
            else len(self.snapshots[r].kind("table"))
            for r in self.order
        }
        return ExpectedIndex(
            history_fingerprint=self.history_fingerprint,
            schema=self.schema,
            exclude=self.exclude,
            version_table=self.version_table,
            heads=self.heads,
            order=self.order,
            parents=self.parents,
            probe_fingerprints={r: self.probe_fingerprint(r) for r in self.order},
            table_counts=tables,
            dependencies=self.dependencies,
            privileges=self.privileges,
            contents={r: c[:INDEX_CONTENT_CHARS] for r, c in self.contents.items()},
            changes=self.changes,
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
            "contents": dict(sorted(self.contents.items())),
            "changes": {r: c.to_dict() for r, c in sorted(self.changes.items())},
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

        The header carries a checksum and each snapshot its own fingerprint, checked
        against its objects; a snapshot without one is corrupt too (SchemaError).
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
            bare = [
                r for r in order if not isinstance(raw[r], dict) or not raw[r].get("fingerprint")
            ]
            if bare:
                raise SchemaError(
                    f"expected-schemas file is corrupt: the snapshot of {', '.join(bare[:5])} "
                    "carries no fingerprint."
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
                contents={str(r): str(v) for r, v in data.get("contents", {}).items()},
                changes={
                    str(r): RevisionChange.from_dict(v) for r, v in data.get("changes", {}).items()
                },
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


class StaleIndex:
    """An earlier build's index, read against the revision files as they are now.

    For a reader that must not build (the drift sensor) between a change of the files and
    the refresh. The graph (heads, order, pending revisions) is the files'; a revision's
    expected probe fingerprint is the earlier build's only when neither its file nor any
    it depends on changed and it was built then. For every other revision
    :meth:`change` says why it is not built yet (``built`` False), so no state is judged
    from a reference that no longer matches the files.
    """

    def __init__(self, previous: ExpectedIndex, graph: HistoryGraph) -> None:
        self.previous = previous
        self.graph = graph
        self.delta = previous.delta(graph)
        changed = set(self.delta.changed)
        added = set(self.delta.added)
        self._affected: dict[str, RevisionChange] = {}
        for rev in graph.order:
            needs = graph.ancestry(rev)
            if not needs & (changed | added):
                continue
            self._affected[rev] = RevisionChange(
                changed=tuple(r for r in graph.order if r in needs and r in changed),
                added=tuple(r for r in graph.order if r in needs and r in added),
                previous_probe=previous.probe_fingerprint(rev),
                built=False,
            )

    @property
    def history_fingerprint(self) -> str:
        """The fingerprint of the build this index comes from (not the files')."""
        return self.previous.history_fingerprint

    @property
    def heads(self) -> tuple[str, ...]:
        """The heads of the files."""
        return self.graph.heads

    @property
    def order(self) -> tuple[str, ...]:
        """The upgrade order of the files."""
        return self.graph.order

    @property
    def privileges(self) -> bool:
        """Whether the earlier build read granted privileges."""
        return self.previous.privileges

    def knows(self, rev: str) -> bool:
        """Whether ``rev`` is a revision of the files."""
        return rev in self.graph.parents

    def pending(self, revisions: Sequence[str] | None) -> tuple[str, ...]:
        """What ``upgrade heads`` would apply, from the files' graph."""
        return _pending(self.graph.order, self.graph.parents, self.graph.dependencies, revisions)

    def probe_fingerprint(self, rev: str) -> str | None:
        """The earlier build's fingerprint at ``rev`` while still valid, else None."""
        if rev in self._affected:
            return None
        return self.previous.probe_fingerprint(rev)

    def change(self, rev: str) -> RevisionChange | None:
        """Why ``rev``'s expected schema is not built yet (or an earlier recorded change)."""
        return self._affected.get(rev) or self.previous.change(rev)

    @property
    def affected(self) -> tuple[str, ...]:
        """The revisions whose expected schema is not built from the files yet."""
        return tuple(self._affected)


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


def _drop_other_templates(server_url: str, prefix: str, keep: str | None) -> None:
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
class _Settings:
    """What a cache entry is for, besides the history: schema, exclusions, version table."""

    schema: str
    exclude: tuple[str, ...]
    version_table: str
    version_table_schema: str | None
    privileges: bool

    def key(self, fingerprint: str) -> str:
        """The cache key of history ``fingerprint`` with these settings."""
        return cache_key(
            fingerprint,
            schema=self.schema,
            exclude=self.exclude,
            version_table=self.version_table,
            privileges=self.privileges,
        )

    def family(self) -> str:
        """The key without the history: builds that may extend each other."""
        return self.key("")

    def matches(self, data: Mapping[str, Any]) -> bool:
        """Whether a manifest was built with these settings by this snapshot format."""
        return (
            data.get("snapshot_format") == _snapshot_format()
            and data.get("schema") == self.schema
            and sorted(data.get("exclude") or ()) == sorted(self.exclude)
            and data.get("version_table") == self.version_table
            and bool(data.get("privileges")) == self.privileges
        )


@dataclass(frozen=True)
class _Base:
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


def _best_base(folder: Path, graph: HistoryGraph, settings: _Settings) -> _Base | None:
    """The cached build with these settings that the files reuse most of (None: none)."""
    best: _Base | None = None
    for _path, data in store.manifests(folder):
        if not settings.matches(data):
            continue
        refs = store.refs_of(data)
        reusable = _reusable(graph, data["revisions"], store.missing_snapshots(folder, refs))
        if reusable and (best is None or len(reusable) > len(best.reusable)):
            contents = {rev: str(e.get("content", "")) for rev, e in data["revisions"].items()}
            best = _Base(data, refs, reusable, history_delta(data["order"], contents, graph))
        if best is not None and len(best.reusable) == len(best.data["order"]):
            break  # every revision of that build is still the files': take it
    return best


@dataclass
class _Built:
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
    conn: sa.Connection, template: Mapping[str, Any], settings: _Settings
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


def _build(
    scratch_url: str,
    project: AlembicProject,
    graph: HistoryGraph,
    settings: _Settings,
    *,
    script: ScriptDirectory,
    base: _Base | None = None,
    keep: str | None = None,
    progress: Progress | None = None,
) -> _Built:
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
    return _Built(built, applied_log, seeds, kept, server_version, adopted is not None)


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
    settings = _settings(project, schema, exclude, privileges)
    built = _build(scratch_url, project, graph, settings, script=script, progress=progress)
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


def _settings(
    project: AlembicProject, schema: str, exclude: Sequence[str], privileges: bool
) -> _Settings:
    return _Settings(
        schema=schema,
        exclude=tuple(exclude),
        version_table=project.version_table,
        version_table_schema=project.version_table_schema,
        privileges=privileges,
    )


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
        CACHE_VERSION,
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
    """The cache file (the manifest) of ``key`` inside ``cache_dir``."""
    return store.manifest_path(Path(cache_dir), key)


def _manifest_data(
    graph: HistoryGraph,
    settings: _Settings,
    refs: Mapping[str, store.SnapshotRef],
    tables: Mapping[str, int],
    changes: Mapping[str, RevisionChange],
    template: Mapping[str, Any] | None,
    server_version: str | None,
) -> dict[str, Any]:
    revisions: dict[str, Any] = {}
    for rev in graph.order:
        ref = refs[rev]
        entry: dict[str, Any] = {
            "parents": list(graph.parents[rev]),
            "content": graph.contents[rev],
            "snapshot": ref.address,
            "fingerprint": ref.fingerprint,
            "probe": ref.probe,
            "tables": int(tables[rev]),
        }
        if graph.dependencies.get(rev):
            entry["depends_on"] = list(graph.dependencies[rev])
        if rev in changes:
            entry["changed"] = changes[rev].to_dict()
        revisions[rev] = entry
    return {
        "snapshot_format": _snapshot_format(),
        "history_fingerprint": graph.fingerprint,
        "schema": settings.schema,
        "exclude": list(settings.exclude),
        "version_table": settings.version_table,
        "privileges": settings.privileges,
        "server_version": server_version,
        "heads": list(graph.heads),
        "order": list(graph.order),
        "revisions": revisions,
        "template": dict(template) if template else None,
    }


def _from_manifest(
    folder: Path,
    data: Mapping[str, Any],
    *,
    preloaded: Mapping[str, Snapshot] | None = None,
    repair: Callable[[str], Snapshot] | None = None,
) -> ExpectedSchemas:
    revisions = data["revisions"]
    order = tuple(data["order"])
    return ExpectedSchemas(
        history_fingerprint=str(data["history_fingerprint"]),
        schema=str(data["schema"]),
        exclude=tuple(data["exclude"]),
        version_table=str(data["version_table"]),
        heads=tuple(data["heads"]),
        order=order,
        parents={rev: tuple(revisions[rev]["parents"]) for rev in order},
        snapshots=store.CachedSnapshots(
            folder, store.refs_of(data), preloaded=preloaded, repair=repair
        ),
        dependencies={
            rev: tuple(revisions[rev]["depends_on"])
            for rev in order
            if revisions[rev].get("depends_on")
        },
        server_version=data.get("server_version"),
        privileges=bool(data.get("privileges")),
        contents={rev: str(revisions[rev]["content"]) for rev in order},
        changes={
            rev: change
            for rev in order
            if (change := _change_of(revisions[rev].get("changed"))) is not None
        },
        table_counts={rev: int(revisions[rev].get("tables", 0)) for rev in order},
    )


def _index_from_manifest(data: Mapping[str, Any]) -> ExpectedIndex:
    revisions = data["revisions"]
    order = tuple(data["order"])
    return ExpectedIndex(
        history_fingerprint=str(data["history_fingerprint"]),
        schema=str(data["schema"]),
        exclude=tuple(data["exclude"]),
        version_table=str(data["version_table"]),
        heads=tuple(data["heads"]),
        order=order,
        parents={rev: tuple(revisions[rev]["parents"]) for rev in order},
        probe_fingerprints={rev: revisions[rev].get("probe") for rev in order},
        table_counts={rev: int(revisions[rev].get("tables", 0)) for rev in order},
        dependencies={
            rev: tuple(revisions[rev]["depends_on"])
            for rev in order
            if revisions[rev].get("depends_on")
        },
        privileges=bool(data.get("privileges")),
        contents={rev: str(revisions[rev]["content"])[:INDEX_CONTENT_CHARS] for rev in order},
        changes={
            rev: change
            for rev in order
            if (change := _change_of(revisions[rev].get("changed"))) is not None
        },
    )


def _current_manifest(
    folder: Path, fingerprint: str, settings: _Settings
) -> tuple[Path, dict[str, Any] | None]:
    path = store.manifest_path(folder, settings.key(fingerprint))
    data = store.read_manifest(path)
    if data is not None and (
        data.get("history_fingerprint") != fingerprint or not settings.matches(data)
    ):
        log.warning("ignoring expected-schemas cache %s: built for other inputs", path)
        data = None
    return path, data


def _changes(
    graph: HistoryGraph, base: _Base | None, built: Mapping[str, Snapshot]
) -> dict[str, RevisionChange]:
    """What to remember about changed revisions: carried from ``base``, or new ones."""
    if base is None:
        return {}
    previous = base.data["revisions"]
    changed = set(base.delta.changed)
    out: dict[str, RevisionChange] = {}
    for rev in graph.order:
        entry = previous.get(rev)
        if entry is None:
            continue
        earlier = _change_of(entry.get("changed"))
        if rev in base.reusable or rev not in built:
            if earlier is not None:
                out[rev] = earlier
            continue
        needs = graph.ancestry(rev)
        because = tuple(r for r in graph.order if r in needs and r in changed)
        before, now = entry.get("probe"), built[rev].probe_fingerprint
        if because and before and before != now:
            out[rev] = RevisionChange(changed=because, previous_probe=str(before))
        elif not because and earlier is not None:
            out[rev] = earlier  # rebuilt for another reason (a snapshot file was lost)
    return out


@dataclass(frozen=True)
class Refresh:
    """What :func:`refresh_expected` did to get current expected schemas.

    ``reused``: the cache held them, nothing was built. Otherwise ``built`` lists the
    revisions built and snapshotted (in order), ``applied`` every revision upgrade run on
    a scratch database (a prefix replayed from empty counts), ``seeds`` how each scratch
    database started (``"empty"`` or ``"template at <rev>"``), ``base`` the history
    fingerprint of the cached build it extended (None: a cold build) and ``delta`` how the
    files differ from that build.
    """

    expected: ExpectedSchemas
    reused: bool
    built: tuple[str, ...] = ()
    applied: tuple[str, ...] = ()
    seeds: tuple[str, ...] = ()
    base: str | None = None
    delta: HistoryDelta = field(default_factory=HistoryDelta)

    def describe(self) -> str:
        """One line: what was reused, extended or built."""
        if self.reused:
            return "reused from the cache"
        if self.base is None:
            return f"built cold: {len(self.built)} revision(s) on a scratch database"
        parts = self.delta.parts()
        start = ", ".join(dict.fromkeys(self.seeds)) or "nothing to build"
        return (
            f"extended a cached build ({'; '.join(parts) or 'same revisions'}): "
            f"{len(self.built)} revision(s) built, scratch from {start}"
        )


def refresh_expected(
    scratch_url: str,
    project: AlembicProject,
    *,
    schema: str = "public",
    exclude: Sequence[str] = (),
    cache_dir: Path | str | None = None,
    progress: Progress | None = None,
    privileges: bool = False,
    keep_template: bool = True,
) -> Refresh:
    """Current expected schemas of ``project``'s files, from the cache, built or extended.

    The one way to get them (:func:`load_or_build_expected` returns the same, shorter).
    The cache entry is keyed by :func:`cache_key` (history fingerprint, schema,
    exclusions, version table, snapshot format) under ``cache_dir`` (default
    :func:`default_cache_dir`). When it is not there, the cached build with the same
    settings that the files reuse most of is extended: only the revisions it does not
    give are built (see the module docstring); without one, everything is built. A
    corrupt entry (a manifest whose checksum fails, a snapshot without its fingerprint
    or whose bytes changed) is ignored with a warning and built again; a snapshot is
    checked when first read, and rebuilt then when it fails.

    ``keep_template`` keeps the last scratch database on the scratch server as the next
    build's starting point (one per settings; the previous one is dropped). Files are
    written atomically; a cache folder that cannot be written is logged, not fatal. When
    a revision file changes during the build, the build is repeated once, then refused.
    """
    folder = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    settings = _settings(project, schema, exclude, privileges)

    def repair(revision: str) -> Snapshot:
        """Build the snapshot of ``revision`` again after its cached file failed its check."""
        again = refresh_expected(
            scratch_url,
            project,
            schema=schema,
            exclude=exclude,
            cache_dir=folder,
            privileges=privileges,
            keep_template=keep_template,
        )
        found = again.expected.snapshot(revision)
        if found is None:
            raise MigrationError(
                f"{project.label}: revision {revision} is no longer in the history on disk "
                "(its cached snapshot was corrupt); read the expected schemas again."
            )
        return found

    for _attempt in range(2):
        fingerprint = history_fingerprint(project)
        path, data = _current_manifest(folder, fingerprint, settings)
        if data is not None:
            missing = store.missing_snapshots(folder, store.refs_of(data))
            if not missing:
                return Refresh(_from_manifest(folder, data, repair=repair), reused=True)
            log.warning(
                "expected-schemas cache %s: the snapshot file of %s is missing; building "
                "them again",
                path,
                ", ".join(sorted(missing)),
            )
        script = project.script()
        graph = read_graph(project, script)
        if graph.fingerprint != fingerprint:
            continue
        base = _best_base(folder, graph, settings)
        family = settings.family()
        template = f"{TEMPLATE_PREFIX}{family[:10]}_{settings.key(fingerprint)[:10]}"
        built = _build(
            scratch_url,
            project,
            graph,
            settings,
            script=script,
            base=base,
            keep=template if keep_template else None,
            progress=progress,
        )
        if history_fingerprint(project) != fingerprint:
            continue  # a revision file changed while we built: build again from the files
        if (
            built.template is not None
            and built.template.get("database") == template
            and not built.adopted
        ):
            _drop_other_templates(scratch_url, f"{TEMPLATE_PREFIX}{family[:10]}_", template)
        refs: dict[str, store.SnapshotRef] = {}  # the reused ones now, the built ones below
        tables: dict[str, int] = {}
        for rev in graph.order:
            if rev in built.snapshots:
                tables[rev] = len(built.snapshots[rev].kind("table"))
            else:
                assert base is not None
                refs[rev] = base.refs[rev]
                tables[rev] = int(base.data["revisions"][rev].get("tables", 0))
        server_version = built.server_version or (base.data.get("server_version") if base else None)
        changes = _changes(graph, base, built.snapshots)
        try:
            for rev, snap in built.snapshots.items():
                refs[rev] = store.write_snapshot(folder, snap)
            data = _manifest_data(
                graph, settings, refs, tables, changes, built.template, server_version
            )
            store.write_manifest(path, data)
        except OSError as exc:
            log.warning("expected-schemas cache %s cannot be written: %s", path, exc)
            expected = _built_expected(graph, settings, built, base, folder, changes, tables)
        else:
            store.prune(folder, path)
            expected = _from_manifest(folder, data, preloaded=built.snapshots, repair=repair)
        return Refresh(
            expected,
            reused=False,
            built=tuple(rev for rev in graph.order if rev in built.snapshots),
            applied=tuple(built.applied),
            seeds=tuple(built.seeds),
            base=str(base.data["history_fingerprint"]) if base else None,
            delta=base.delta if base else HistoryDelta(),
        )
    raise MigrationError(
        f"{project.label}: the revision files changed while the expected schemas were being "
        "built, twice (finish editing the versions folder, then run this again)."
    )


def _built_expected(
    graph: HistoryGraph,
    settings: _Settings,
    built: _Built,
    base: _Base | None,
    folder: Path,
    changes: Mapping[str, RevisionChange],
    tables: Mapping[str, int],
) -> ExpectedSchemas:
    """The result when the cache cannot be written: built snapshots, the rest from base."""
    refs = dict(base.refs) if base else {}
    return ExpectedSchemas(
        history_fingerprint=graph.fingerprint,
        schema=settings.schema,
        exclude=settings.exclude,
        version_table=settings.version_table,
        heads=graph.heads,
        order=graph.order,
        parents=graph.parents,
        snapshots=store.CachedSnapshots(
            folder, {rev: refs[rev] for rev in graph.order if rev in refs},
            preloaded=built.snapshots,
        ),
        dependencies=graph.dependencies,
        server_version=built.server_version,
        privileges=settings.privileges,
        contents=graph.contents,
        changes=changes,
        table_counts=tables,
    )


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
    """THE way to get the expected schemas: current for the files, from the one cache.

    Returns ``(expected, reused)``: :func:`refresh_expected`'s result (built or extended
    when the cache is behind the files; ``reused`` when nothing had to be built).
    """
    found = refresh_expected(
        scratch_url,
        project,
        schema=schema,
        exclude=exclude,
        cache_dir=cache_dir,
        progress=progress,
        privileges=privileges,
    )
    return found.expected, found.reused


def cached_expected(
    project: AlembicProject,
    *,
    schema: str = "public",
    exclude: Sequence[str] = (),
    cache_dir: Path | str | None = None,
    privileges: bool = False,
) -> ExpectedSchemas | None:
    """The cached expected schemas of ``project``'s current files, or None (never builds).

    For readers that must not touch a scratch server: None when nothing sound is cached
    for the current history fingerprint and these settings. A snapshot found corrupt
    when read raises one SchemaError line (and is removed, so the next build makes it).
    """
    folder = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    settings = _settings(project, schema, exclude, privileges)
    _path, data = _current_manifest(folder, history_fingerprint(project), settings)
    if data is None or store.missing_snapshots(folder, store.refs_of(data)):
        return None
    return _from_manifest(folder, data)


def cached_index(
    fingerprint: str,
    *,
    schema: str = "public",
    exclude: Sequence[str] = (),
    version_table: str = "alembic_version",
    privileges: bool = False,
    cache_dir: Path | str | None = None,
) -> ExpectedIndex | None:
    """The index of the cached build of history ``fingerprint`` (None: not cached).

    Reads one manifest, never a snapshot: what a sensor tick can afford.
    """
    folder = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    settings = _Settings(schema, tuple(exclude), version_table, None, privileges)
    _path, data = _current_manifest(folder, fingerprint, settings)
    return None if data is None else _index_from_manifest(data)


def reference_index(
    graph: HistoryGraph,
    *,
    schema: str = "public",
    exclude: Sequence[str] = (),
    version_table: str = "alembic_version",
    privileges: bool = False,
    cache_dir: Path | str | None = None,
    fallback: ExpectedIndex | None = None,
) -> ExpectedIndex | StaleIndex | None:
    """What a reader that must not build compares environments with (the drift sensor).

    The cached index of the files as they are (``graph``) when there is one (or
    ``fallback``, the latest ``expected_schemas`` materialization's index, when it was
    built from these very files). Otherwise a :class:`StaleIndex`: the earlier build
    (cached with these settings, or ``fallback``) that still gives the most revisions,
    read against the files. None when there is no build at all.
    """
    current = cached_index(
        graph.fingerprint,
        schema=schema,
        exclude=exclude,
        version_table=version_table,
        privileges=privileges,
        cache_dir=cache_dir,
    )
    if current is not None:
        return current
    if fallback is not None and fallback.history_fingerprint == graph.fingerprint:
        return fallback
    folder = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    settings = _Settings(schema, tuple(exclude), version_table, None, privileges)
    candidates = [fallback] if fallback is not None else []
    candidates += [
        _index_from_manifest(data)
        for _path, data in store.manifests(folder)
        if settings.matches(data)
    ]
    best: StaleIndex | None = None
    for index in candidates:
        view = StaleIndex(index, graph)
        if best is None or len(view.affected) < len(best.affected):
            best = view
    return best


# -- the archived history ----------------------------------------------------------------


def archived_revisions(project: AlembicProject) -> dict[str, str]:
    """Revision id -> archive folder name, for each revision file in the archives.

    The archives are the ``versions_archive_<stamp>`` folders next to each versions
    folder (see :mod:`~abparts_ops.core.history.archive`). Ids are read from the files
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
