"""The expected schema of every revision: what the on-disk history builds, as types.

After the reset the migration history is the reference: an environment whose version
table holds revision ``r`` must have the schema that ``alembic upgrade r`` gives on an
empty database. :class:`ExpectedSchemas` holds that for every revision: the snapshots
(each with its probe fingerprint, so a cheap probe of an environment can be compared
with it) and the graph (order, parents, heads) that says which revisions an environment
still lacks (:meth:`~HistoryShape.pending`). :class:`ExpectedIndex` is everything but
the snapshots, a few KB, for Dagster metadata and sensor ticks; :class:`StaleIndex` an
earlier index read against the files as they are now. :class:`BuildSettings` and
:func:`cache_key` say what identifies one build.

Where the rest lives, in the order a reader meets it:

- :mod:`~abparts_ops.core.history.graph`: the revision files' graph and content
  (:func:`~abparts_ops.core.history.graph.history_fingerprint`: the same formula as
  :func:`abparts_ops.core.history.revisions.versions_fingerprint`; files are read, never
  imported);
- :mod:`~abparts_ops.core.history.expected_build`: the build on one scratch database,
  upgraded revision by revision with a snapshot after each step, incremental from a kept
  template database;
- :mod:`~abparts_ops.core.history.expected_cache`: **the one way to get them**,
  ``load_or_build_expected`` (or ``refresh_expected``, which says what it did): current
  for the revision files as they are (their *content*, not their heads), from the one
  cache (:mod:`~abparts_ops.core.history.expected_store`), built or extended when the
  cache is behind the files; the drift sensor, which must not build, reads the same
  cache through ``reference_index``.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from abparts_ops.core.errors import SchemaError
from abparts_ops.core.history import expected_store as store
from abparts_ops.core.history.changes import HistoryDelta, RevisionChange
from abparts_ops.core.history.graph import (
    INDEX_CONTENT_CHARS,
    HistoryGraph,
    history_delta,
    pending_in,
)
from abparts_ops.core.history.project import AlembicProject
from abparts_ops.core.schema.model import Snapshot, canonical_json, sha256_text

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

#: Called after each revision's snapshot: (revision, position from 1, total built).
Progress = Callable[[str, int, int], None]


def snapshot_format() -> str:
    """What the stored snapshots and probe fingerprints depend on in this abparts_ops."""
    return store.snapshot_format()


def _header_checksum(data: Mapping[str, Any]) -> str:
    return sha256_text(canonical_json({k: v for k, v in data.items() if k != "checksum"}))


def change_of(data: Mapping[str, Any] | None) -> RevisionChange | None:
    """The :class:`RevisionChange` stored in ``data`` (None when there is none)."""
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
        return pending_in(self.order, self.parents, self.dependencies, revisions)


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
            "snapshot_format": snapshot_format(),
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
        return pending_in(self.graph.order, self.graph.parents, self.graph.dependencies, revisions)

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


@dataclass(frozen=True)
class BuildSettings:
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
            data.get("snapshot_format") == snapshot_format()
            and data.get("schema") == self.schema
            and sorted(data.get("exclude") or ()) == sorted(self.exclude)
            and data.get("version_table") == self.version_table
            and bool(data.get("privileges")) == self.privileges
        )


def build_settings(
    project: AlembicProject, schema: str, exclude: Sequence[str], privileges: bool
) -> BuildSettings:
    """The settings that identify a build of ``project``'s history (with the history's
    fingerprint, its cache key)."""
    return BuildSettings(
        schema=schema,
        exclude=tuple(exclude),
        version_table=project.version_table,
        version_table_schema=project.version_table_schema,
        privileges=privileges,
    )


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
        snapshot_format(),
        fingerprint,
        schema,
        sorted(exclude),
        version_table,
    ]
    if privileges:  # appended only when set: caches without privileges keep their keys
        parts.append("privileges")
    text = canonical_json(parts)
    return hashlib.sha256(text.encode()).hexdigest()
