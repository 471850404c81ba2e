"""The expected-schemas cache on disk: small manifests, and snapshots stored once each.

Layout of a cache folder (see :func:`~abparts_ops.core.history.expected_cache.
default_cache_dir`)::

    manifest-<key32>.json        one per history and settings: the graph, each revision's
                                 file hash, and a reference to its snapshot (checksummed)
    snapshots/<sha256>.json      one per distinct snapshot, named by the sha256 of its bytes

A manifest is a few KB however large the schema, so a reader that only needs the index
(the drift sensor) or a build that extends an earlier one (only the new revisions are
built) never parses the snapshots it does not use. A snapshot is read only when asked
for, and checked when read (:func:`read_snapshot`): its bytes must hash to its name, it
must carry its ``fingerprint``, and that fingerprint must be its objects'. A snapshot
that fails any of these is a corrupt entry: it is removed (with a warning) and the
revision is built again.

Writes are atomic (temporary file, then ``os.replace``); a snapshot file already there is
not written again. :func:`prune` keeps the newest :data:`KEEP` manifests and removes the
snapshot files none of them uses (when older than :data:`GC_GRACE_S`, so a build that is
still writing its manifest keeps its snapshots).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from abparts_ops.core.errors import SchemaError
from abparts_ops.core.schema import catalog_sql
from abparts_ops.core.schema import model as snapshot_model
from abparts_ops.core.schema.model import Snapshot, canonical_json

log = logging.getLogger(__name__)

MANIFEST_FORMAT = "abparts-ops/expected-manifest"
MANIFEST_VERSION = 1
MANIFEST_PREFIX = "manifest-"
SNAPSHOT_FOLDER = "snapshots"
#: Manifests kept per cache folder (the newest); older ones are removed after a write.
KEEP = 8
#: Unreferenced snapshot files younger than this are left alone by :func:`prune`.
GC_GRACE_S = 3600.0

_MANIFEST_NAME = re.compile(rf"^{re.escape(MANIFEST_PREFIX)}[0-9a-f]{{32}}\.json$")
_SNAPSHOT_NAME = re.compile(r"^[0-9a-f]{64}\.json$")
#: Files of the single-file cache format (before manifests): removed by :func:`prune`.
_OLD_CACHE_NAME = re.compile(r"^expected-[0-9a-f]{32}\.json$")


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file and ``os.replace``.

    Not fsync'd: a file a crash leaves torn fails its check when read (a snapshot's bytes
    must hash to its name, a manifest carries a checksum) and is built again.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


# -- snapshots ---------------------------------------------------------------------------


@dataclass(frozen=True)
class SnapshotRef:
    """Where one revision's snapshot is stored, and what it must be.

    ``address`` is the sha256 of the stored file's bytes (its name), ``fingerprint`` the
    snapshot's own fingerprint and ``probe`` the probe fingerprint expected at the
    revision (kept in the manifest, covered by its checksum).
    """

    address: str
    fingerprint: str
    probe: str | None


def _stored_bytes(snapshot: Snapshot) -> bytes:
    """The stored form: everything that defines the snapshot, not where it came from."""
    data = snapshot.to_dict()
    data.pop("source", None)
    data.pop("probe_fingerprint", None)
    return canonical_json(data).encode("utf-8")


def snapshot_path(folder: Path, address: str) -> Path:
    """The file of the snapshot stored under ``address`` in cache folder ``folder``."""
    return Path(folder) / SNAPSHOT_FOLDER / f"{address}.json"


def write_snapshot(folder: Path, snapshot: Snapshot) -> SnapshotRef:
    """Store ``snapshot`` (once: an existing file of the same bytes is kept); its ref."""
    data = _stored_bytes(snapshot)
    address = _sha256(data)
    path = snapshot_path(folder, address)
    if not path.is_file():
        write_atomic(path, data)
    return SnapshotRef(address, snapshot.fingerprint, snapshot.probe_fingerprint)


def read_snapshot(folder: Path, ref: SnapshotRef, *, source: str | None = None) -> Snapshot:
    """Read and check the snapshot of ``ref``; a SchemaError line says what is wrong.

    The bytes must hash to ``ref.address``; the JSON must carry a ``fingerprint`` equal to
    ``ref.fingerprint`` and to the fingerprint of its objects (a snapshot without one is
    corrupt: nothing else vouches for its objects).
    """
    path = snapshot_path(folder, ref.address)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise SchemaError(f"snapshot file {path.name} is missing") from None
    except OSError as exc:
        raise SchemaError(f"snapshot file {path.name} cannot be read ({exc})") from None
    if _sha256(data) != ref.address:
        raise SchemaError(f"snapshot file {path.name} was changed (its sha256 is not its name)")
    try:
        raw = json.loads(data)
    except ValueError as exc:
        raise SchemaError(f"snapshot file {path.name} is not JSON ({exc})") from None
    if not isinstance(raw, dict) or not raw.get("fingerprint"):
        raise SchemaError(f"snapshot file {path.name} carries no fingerprint")
    if raw["fingerprint"] != ref.fingerprint:
        raise SchemaError(
            f"snapshot file {path.name} has fingerprint {str(raw['fingerprint'])[:12]}, its "
            f"manifest says {ref.fingerprint[:12]}"
        )
    try:
        snapshot = Snapshot.from_dict({**raw, "source": source, "probe_fingerprint": ref.probe})
    except (KeyError, TypeError, AttributeError) as exc:
        raise SchemaError(f"snapshot file {path.name} is malformed ({exc!r})") from None
    return snapshot  # from_dict checked the stored fingerprint against the objects


class CachedSnapshots(Mapping[str, Snapshot]):
    """Revision -> snapshot, each read from the cache (and checked) when first asked for.

    ``preloaded`` snapshots (just built) are held in memory. A snapshot that fails its
    check is removed from the cache with a warning; ``repair(revision)`` then builds it
    again (without a repair, the SchemaError is raised). Pickling loads every snapshot,
    so a pickled copy never depends on the cache folder.
    """

    def __init__(
        self,
        folder: Path,
        refs: Mapping[str, SnapshotRef],
        *,
        preloaded: Mapping[str, Snapshot] | None = None,
        repair: Callable[[str], Snapshot] | None = None,
        label: str = "expected schemas",
    ) -> None:
        self._folder = Path(folder)
        self._refs = dict(refs)
        self._loaded: dict[str, Snapshot] = dict(preloaded or {})
        self._keys = [*self._refs, *(k for k in self._loaded if k not in self._refs)]
        self._repair = repair
        self._label = label

    def ref(self, revision: str) -> SnapshotRef | None:
        """Where the snapshot of ``revision`` is stored (None when not known)."""
        return self._refs.get(revision)

    def probe(self, revision: str) -> str | None:
        """The probe fingerprint at ``revision``, without reading the snapshot."""
        if revision in self._loaded:
            return self._loaded[revision].probe_fingerprint
        ref = self._refs.get(revision)
        return ref.probe if ref else None

    def __getitem__(self, revision: str) -> Snapshot:
        found = self._loaded.get(revision)
        if found is not None:
            return found
        ref = self._refs[revision]  # KeyError for an unknown revision, as a dict
        source = f"expected at {revision}"
        try:
            snapshot = read_snapshot(self._folder, ref, source=source)
        except SchemaError as exc:
            path = snapshot_path(self._folder, ref.address)
            log.warning(
                "ignoring corrupt expected-schemas cache entry: the snapshot of %s: %s; "
                "it is removed and built again",
                revision,
                exc,
            )
            with contextlib.suppress(OSError):
                path.unlink()
            if self._repair is None:
                raise SchemaError(
                    f"{self._label}: the cached snapshot of {revision} is corrupt ({exc}); it "
                    "was removed: build the expected schemas again."
                ) from None
            snapshot = self._repair(revision)
        self._loaded[revision] = snapshot
        return snapshot

    def __iter__(self) -> Iterator[str]:
        return iter(self._keys)

    def __len__(self) -> int:
        return len(self._keys)

    def __contains__(self, revision: object) -> bool:
        return revision in self._loaded or revision in self._refs

    def __repr__(self) -> str:
        return f"CachedSnapshots({len(self._keys)} revisions, {len(self._loaded)} read)"

    def __reduce__(self) -> tuple[Any, ...]:
        return (dict, (dict(self.items()),))


# -- manifests ---------------------------------------------------------------------------


def manifest_path(folder: Path, key: str) -> Path:
    """The manifest file of cache key ``key`` in ``folder``."""
    return Path(folder) / f"{MANIFEST_PREFIX}{key[:32]}.json"


def _checksum(data: Mapping[str, Any]) -> str:
    body = {k: v for k, v in data.items() if k != "checksum"}
    return _sha256(canonical_json(body).encode("utf-8"))


def write_manifest(path: Path, data: Mapping[str, Any]) -> None:
    """Write ``data`` (format, version and checksum added) atomically to ``path``."""
    body = {**data, "format": MANIFEST_FORMAT, "version": MANIFEST_VERSION}
    body["checksum"] = _checksum(body)
    write_atomic(path, canonical_json(body).encode("utf-8"))


def read_manifest(path: Path, *, quiet: bool = False) -> dict[str, Any] | None:
    """The checked content of the manifest at ``path``; None when there is none.

    A file that is not a manifest of this version, or whose checksum does not match, or
    in which a revision lacks its snapshot's fingerprint, is a corrupt entry: logged as
    a warning (``quiet``: at debug level) and ignored (None), so it is built again.
    """
    try:
        text = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        log.warning("expected-schemas cache %s cannot be read (%s); building again", path, exc)
        return None
    problem: str | None = None
    data: Any = None
    try:
        data = json.loads(text)
    except ValueError as exc:
        problem = f"not JSON ({exc})"
    if problem is None:
        if not isinstance(data, dict) or data.get("format") != MANIFEST_FORMAT:
            problem = "not an expected-schemas manifest"
        elif data.get("version") != MANIFEST_VERSION:
            problem = (
                f"manifest version {data.get('version')!r} (this abparts_ops reads "
                f"{MANIFEST_VERSION})"
            )
        else:
            revisions = data.get("revisions")
            if not isinstance(revisions, dict) or not isinstance(data.get("order"), list):
                problem = "it has no revisions"
            else:
                bare = sorted(
                    rev
                    for rev, entry in revisions.items()
                    if not isinstance(entry, dict)
                    or not entry.get("fingerprint")
                    or not entry.get("snapshot")
                )
                if bare:
                    problem = f"revision {', '.join(bare[:5])} carries no snapshot fingerprint"
                elif data.get("checksum") != _checksum(data):
                    problem = "its checksum does not match"
    if problem is not None:
        (log.debug if quiet else log.warning)(
            "ignoring corrupt expected-schemas cache entry %s: %s; building again", path, problem
        )
        return None
    return data


def manifests(folder: Path) -> Iterator[tuple[Path, dict[str, Any]]]:
    """Every sound manifest in ``folder``, newest first."""
    try:
        paths = [p for p in Path(folder).iterdir() if _MANIFEST_NAME.match(p.name)]
        paths.sort(key=lambda p: p.stat().st_mtime_ns, reverse=True)
    except OSError:
        return
    for path in paths:
        data = read_manifest(path, quiet=True)
        if data is not None:
            yield path, data


def refs_of(data: Mapping[str, Any]) -> dict[str, SnapshotRef]:
    """Revision -> :class:`SnapshotRef` of a checked manifest."""
    return {
        rev: SnapshotRef(str(entry["snapshot"]), str(entry["fingerprint"]), entry.get("probe"))
        for rev, entry in data["revisions"].items()
    }


def missing_snapshots(folder: Path, refs: Mapping[str, SnapshotRef]) -> set[str]:
    """Revisions whose snapshot file is not in ``folder`` (a few ``stat`` calls)."""
    return {rev for rev, ref in refs.items() if not snapshot_path(folder, ref.address).is_file()}


def prune(folder: Path, keep: Path, *, now: float | None = None, force: bool = False) -> None:
    """Keep the newest :data:`KEEP` manifests (``keep`` always); drop unused snapshots.

    Snapshots are collected when manifests are dropped (or with ``force``), so a write
    that leaves fewer than :data:`KEEP` manifests costs one directory listing. Files of
    the single-file format this cache replaced are removed too.
    """
    folder = Path(folder)
    now = time.time() if now is None else now
    try:
        names = list(folder.iterdir())
    except OSError:
        return
    for old in names:
        if _OLD_CACHE_NAME.match(old.name):
            with contextlib.suppress(OSError):
                old.unlink()
    found = [p for p in names if _MANIFEST_NAME.match(p.name) and p != keep]
    if len(found) < KEEP and not force:
        return  # nothing to drop: snapshots are collected when manifests are
    with contextlib.suppress(OSError):
        found.sort(key=lambda p: p.stat().st_mtime_ns, reverse=True)
    for old in found[KEEP - 1 :]:
        with contextlib.suppress(OSError):
            old.unlink()
    used: set[str] = set()
    for _path, data in manifests(folder):
        used.update(ref.address for ref in refs_of(data).values())
    snapshots = folder / SNAPSHOT_FOLDER
    try:
        stored = [p for p in snapshots.iterdir() if _SNAPSHOT_NAME.match(p.name)]
    except OSError:
        return
    for path in stored:
        if path.stem in used:
            continue
        with contextlib.suppress(OSError):
            if now - path.stat().st_mtime > GC_GRACE_S:
                path.unlink()


def snapshot_format() -> str:
    """What the stored snapshots and probe fingerprints depend on in this abparts_ops.

    The snapshot format version and the catalog queries themselves: a release that reads
    the catalogs differently gives other fingerprints, so older caches are not reused.
    """
    text = "\n".join(
        (str(snapshot_model.FORMAT_VERSION), catalog_sql.SNAPSHOT_SQL, catalog_sql.PROBE_SQL)
    )
    return f"{snapshot_model.FORMAT_VERSION}:{_sha256(text.encode('utf-8'))[:16]}"
