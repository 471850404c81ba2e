"""The one cache of the expected schemas, and the one way to get them current.

:func:`load_or_build_expected` (and :func:`refresh_expected`, which says what it did)
returns the expected schemas of the revision files as they are, from the cache, building
or extending them when the cache is behind the files; :func:`reference_index` is the
drift sensor's read-only view of the same cache.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from abparts_ops.core.errors import MigrationError
from abparts_ops.core.history import expected_store as store
from abparts_ops.core.history.changes import HistoryDelta, RevisionChange
from abparts_ops.core.history.expected import (
    TEMPLATE_PREFIX,
    BuildSettings,
    ExpectedIndex,
    ExpectedSchemas,
    Progress,
    StaleIndex,
    build_settings,
    change_of,
    snapshot_format,
)
from abparts_ops.core.history.expected_build import (
    BuildBase,
    Built,
    best_base,
    build_incremental,
    drop_other_templates,
)
from abparts_ops.core.history.graph import (
    INDEX_CONTENT_CHARS,
    HistoryGraph,
    history_fingerprint,
    read_graph,
)
from abparts_ops.core.history.project import (
    AlembicProject,
)
from abparts_ops.core.schema.model import Snapshot

log = logging.getLogger(__name__)

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


def cache_path(cache_dir: Path, key: str) -> Path:
    """The cache file (the manifest) of ``key`` inside ``cache_dir``."""
    return store.manifest_path(Path(cache_dir), key)


def _manifest_data(
    graph: HistoryGraph,
    settings: BuildSettings,
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
        "snapshot_format": snapshot_format(),
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
        **_shape_from_manifest(data),
        snapshots=store.CachedSnapshots(
            folder, store.refs_of(data), preloaded=preloaded, repair=repair
        ),
        server_version=data.get("server_version"),
        table_counts={rev: int(revisions[rev].get("tables", 0)) for rev in order},
    )


def _shape_from_manifest(
    data: Mapping[str, Any], content_chars: int | None = None
) -> dict[str, Any]:
    """The :class:`HistoryShape` fields a manifest holds (file hashes cut to ``content_chars``)."""
    revisions = data["revisions"]
    order = tuple(data["order"])
    return {
        "history_fingerprint": str(data["history_fingerprint"]),
        "schema": str(data["schema"]),
        "exclude": tuple(data["exclude"]),
        "version_table": str(data["version_table"]),
        "heads": tuple(data["heads"]),
        "order": order,
        "parents": {rev: tuple(revisions[rev]["parents"]) for rev in order},
        "dependencies": {
            rev: tuple(revisions[rev]["depends_on"])
            for rev in order
            if revisions[rev].get("depends_on")
        },
        "privileges": bool(data.get("privileges")),
        "contents": {rev: str(revisions[rev]["content"])[:content_chars] for rev in order},
        "changes": {
            rev: change
            for rev in order
            if (change := change_of(revisions[rev].get("changed"))) is not None
        },
    }


def _index_from_manifest(data: Mapping[str, Any]) -> ExpectedIndex:
    revisions = data["revisions"]
    order = tuple(data["order"])
    return ExpectedIndex(
        **_shape_from_manifest(data, INDEX_CONTENT_CHARS),
        probe_fingerprints={rev: revisions[rev].get("probe") for rev in order},
        table_counts={rev: int(revisions[rev].get("tables", 0)) for rev in order},
    )


def _current_manifest(
    folder: Path, fingerprint: str, settings: BuildSettings
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
    graph: HistoryGraph, base: BuildBase | None, built: Mapping[str, Snapshot]
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
        earlier = change_of(entry.get("changed"))
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
    settings = build_settings(project, schema, exclude, privileges)

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
        base = best_base(folder, graph, settings)
        family = settings.family()
        template = f"{TEMPLATE_PREFIX}{family[:10]}_{settings.key(fingerprint)[:10]}"
        built = build_incremental(
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
            drop_other_templates(scratch_url, f"{TEMPLATE_PREFIX}{family[:10]}_", template)
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
    settings: BuildSettings,
    built: Built,
    base: BuildBase | None,
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
    settings = build_settings(project, schema, exclude, privileges)
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
    settings = BuildSettings(schema, tuple(exclude), version_table, None, privileges)
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
    settings = BuildSettings(schema, tuple(exclude), version_table, None, privileges)
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
