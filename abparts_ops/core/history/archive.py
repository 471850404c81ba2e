"""Moving old revision files aside, with a manifest, never overwriting or deleting.

:func:`archive_revisions` moves the revision files of a versions folder (every ``*.py``
but ``__init__.py``) that are not kept into a sibling folder
``versions_archive_<YYYYMMDD_HHMMSS>/`` next to ``versions/`` (inside the Alembic project,
where Alembic does not look for revisions), and records each file's name, revision id and
sha256 in ``MANIFEST.json`` and ``MANIFEST.md``.

Crash safety: the manifest is first written under a temporary name inside the new archive
folder, then the files are moved, then the manifest is renamed to its final name (so a
``MANIFEST.json`` means a completed archive). If a move fails, the files already moved are
moved back, the temporary manifest and the empty folder (both ours) are removed, and a
MigrationError is raised. ``__pycache__`` and non-Python files are left where they are.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from abparts_ops.core.errors import MigrationError
from abparts_ops.core.history.project import AlembicProject, read_revision_id, revision_files

ARCHIVE_PREFIX = "versions_archive_"
MANIFEST_JSON = "MANIFEST.json"
MANIFEST_MD = "MANIFEST.md"
_TMP_JSON = ".MANIFEST.json.tmp"
_TMP_MD = ".MANIFEST.md.tmp"
_STAMP_RE = re.compile(r"^\d{8}_\d{6}$")
MANIFEST_FORMAT = 1


@dataclass(frozen=True)
class ArchiveEntry:
    """One archived file: its name, the revision it declares (if any), its sha256."""

    file: str
    revision: str | None
    sha256: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return {"file": self.file, "revision": self.revision, "sha256": self.sha256}


@dataclass(frozen=True)
class ArchiveResult:
    """Where the files went and what was moved.

    ``entries`` is empty when there was nothing to move; the folder and manifest are then
    not created (unless an identical completed archive with this stamp already existed,
    whose entries are returned).
    """

    archive_dir: Path
    entries: tuple[ArchiveEntry, ...]
    manifest_path: Path

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return {
            "archive_dir": str(self.archive_dir),
            "manifest_path": str(self.manifest_path),
            "entries": [e.to_dict() for e in self.entries],
        }


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _check_stamp(stamp: str) -> None:
    if not _STAMP_RE.match(stamp):
        raise MigrationError(
            f"archive stamp {stamp!r} is not valid (expected YYYYMMDD_HHMMSS, e.g. "
            "20240131_235959)."
        )


def archive_dir_for(versions_dir: Path, stamp: str) -> Path:
    """The archive folder for ``stamp``: ``versions_archive_<stamp>`` next to versions."""
    _check_stamp(stamp)
    return Path(versions_dir).absolute().parent / f"{ARCHIVE_PREFIX}{stamp}"


def _is_candidate(path: Path) -> bool:
    name = path.name
    return (
        name.endswith(".py")
        and name != "__init__.py"
        and not name.startswith(".#")
        and (path.is_file() or path.is_symlink())
    )


def plan_archive(versions_dir: Path, keep: Collection[Path], stamp: str) -> list[ArchiveEntry]:
    """The files :func:`archive_revisions` would move, sorted by name (nothing is written).

    ``keep`` holds paths to leave in place; a relative path is taken relative to
    ``versions_dir``. Every kept path must exist (a missing baseline would otherwise
    leave the folder empty). Only the top level of ``versions_dir`` is considered.
    """
    _check_stamp(stamp)
    versions_dir = Path(versions_dir).absolute()
    if not versions_dir.is_dir():
        raise MigrationError(
            f"versions folder {versions_dir} does not exist or is not a folder (fix the "
            "Alembic project's script_location/version_locations)."
        )
    kept: set[Path] = set()
    for path in keep:
        path = Path(path)
        full = path if path.is_absolute() else versions_dir / path
        if not full.exists():
            raise MigrationError(
                f"file to keep {full} does not exist (write it before archiving the "
                "others; nothing was moved)."
            )
        kept.add(full.resolve())
    entries = []
    for path in sorted(versions_dir.iterdir(), key=lambda p: p.name):
        if not _is_candidate(path) or path.resolve() in kept:
            continue
        entries.append(
            ArchiveEntry(file=path.name, revision=read_revision_id(path), sha256=_sha256(path))
        )
    return entries


def _manifest_json(stamp: str, versions_dir: Path, entries: list[ArchiveEntry]) -> str:
    body = {
        "format": MANIFEST_FORMAT,
        "stamp": stamp,
        "source": versions_dir.name,
        "archive": f"{ARCHIVE_PREFIX}{stamp}",
        "count": len(entries),
        "files": [e.to_dict() for e in entries],
    }
    return json.dumps(body, indent=2, sort_keys=False) + "\n"


def _manifest_md(stamp: str, versions_dir: Path, entries: list[ArchiveEntry]) -> str:
    lines = [
        f"# Archived Alembic revisions ({stamp})",
        "",
        f"Moved from `{versions_dir.name}/` by abparts_ops: {len(entries)} files. Alembic does "
        "not load revisions from this folder.",
        "",
        "| file | revision | sha256 |",
        "|---|---|---|",
    ]
    for e in entries:
        lines.append(f"| {e.file} | {e.revision or '(none)'} | `{e.sha256}` |")
    return "\n".join(lines) + "\n"


def _write_new(path: Path, text: str) -> None:
    """Create ``path`` (never overwriting) and flush it to disk."""
    with path.open("x", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())


def _move_file(src: Path, dst: Path) -> None:
    """Move ``src`` to ``dst`` on the same filesystem, refusing to overwrite."""
    if dst.exists() or dst.is_symlink():
        raise FileExistsError(f"{dst} already exists")
    os.rename(src, dst)


def read_manifest(manifest_path: Path) -> tuple[ArchiveEntry, ...]:
    """The entries recorded in an archive's ``MANIFEST.json``."""
    try:
        data = json.loads(manifest_path.read_text(encoding="utf-8"))
        return tuple(
            ArchiveEntry(file=f["file"], revision=f.get("revision"), sha256=f["sha256"])
            for f in data["files"]
        )
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise MigrationError(
            f"archive manifest {manifest_path} cannot be read: {exc} (check the archive "
            "folder by hand)."
        ) from None


def archive_revisions(versions_dir: Path, *, keep: Collection[Path], stamp: str) -> ArchiveResult:
    """Move every revision file of ``versions_dir`` not in ``keep`` into the archive.

    Returns what was moved. Rerunning is idempotent: with nothing left to move, no folder
    is created (and an existing completed archive with this stamp is returned as it is).
    Refuses (MigrationError) when the archive folder already exists and files would be
    moved into it, and rolls every move back when one fails.
    """
    versions_dir = Path(versions_dir).absolute()
    entries = plan_archive(versions_dir, keep, stamp)
    target = archive_dir_for(versions_dir, stamp)
    manifest = target / MANIFEST_JSON
    if target.exists() or target.is_symlink():
        if not entries and manifest.is_file():
            return ArchiveResult(target, read_manifest(manifest), manifest)
        state = "a completed archive" if manifest.is_file() else "an incomplete archive"
        raise MigrationError(
            f"archive folder {target} already exists ({state}); refusing to move "
            f"{len(entries)} files into it (use another stamp, or check that folder and "
            "move it away by hand)."
        )
    if not entries:
        return ArchiveResult(target, (), manifest)

    target.mkdir()
    tmp_json, tmp_md = target / _TMP_JSON, target / _TMP_MD
    try:
        _write_new(tmp_json, _manifest_json(stamp, versions_dir, entries))
        _write_new(tmp_md, _manifest_md(stamp, versions_dir, entries))
        for entry in entries:
            _move_file(versions_dir / entry.file, target / entry.file)
    except BaseException as exc:
        _roll_back(versions_dir, target, entries, exc)
        raise
    os.rename(tmp_md, target / MANIFEST_MD)
    os.rename(tmp_json, manifest)  # last: its presence marks a completed archive
    return ArchiveResult(target, tuple(entries), manifest)


def _roll_back(
    versions_dir: Path, target: Path, entries: list[ArchiveEntry], exc: BaseException
) -> None:
    """Put moved files back and remove our temporary manifest and folder; then raise.

    A file counts as moved when it is in the archive and no longer in the versions
    folder (so an interruption right after a move is rolled back too).
    """
    moved = [
        e
        for e in entries
        if os.path.lexists(target / e.file) and not os.path.lexists(versions_dir / e.file)
    ]
    stuck: list[str] = []
    for entry in reversed(moved):
        try:
            _move_file(target / entry.file, versions_dir / entry.file)
        except OSError:
            stuck.append(entry.file)
    if stuck:
        raise MigrationError(
            f"archiving into {target} failed ({exc}) and {len(stuck)} files could not be "
            f"moved back: {', '.join(sorted(stuck))} (move them back into {versions_dir} "
            f"by hand; the temporary manifest {target / _TMP_JSON} lists them)."
        ) from exc
    for name in (_TMP_JSON, _TMP_MD):
        try:
            (target / name).unlink(missing_ok=True)
        except OSError:
            pass
    try:
        target.rmdir()
    except OSError:
        pass
    if isinstance(exc, Exception):
        raise MigrationError(
            f"archiving into {target} failed: {exc}; the {len(moved)} files already moved "
            f"were put back into {versions_dir} and nothing was archived (fix the cause and "
            "rerun)."
        ) from exc


def _read_tmp_manifest(path: Path) -> list[ArchiveEntry] | None:
    """Entries of a temporary manifest, None when it is missing or unreadable."""
    try:
        return list(read_manifest(path))
    except MigrationError:
        return None


def recover_interrupted_archives(versions_dir: Path, *, dry_run: bool = False) -> list[str]:
    """Finish or clean the archives a crash left incomplete; one message per folder.

    An archive folder next to ``versions_dir`` without ``MANIFEST.json`` but with our
    temporary manifest is an interrupted :func:`archive_revisions`. Using the files the
    temporary manifest lists:

    - none was moved (the folder holds only ``.MANIFEST.*.tmp``): the temporary files and
      the folder are removed;
    - all were moved: the manifests get their final names (the archive is completed);
    - some were moved: they are moved back into ``versions_dir`` and the folder removed,
      so the next archive starts from the state before the interrupted one.

    A folder this does not understand (no readable temporary manifest, a listed file in
    both places or in neither, other files) is left alone and reported. ``dry_run``
    changes nothing and says what would be done.
    """
    versions_dir = Path(versions_dir).absolute()
    parent = versions_dir.parent
    messages: list[str] = []
    if not parent.is_dir():
        return messages
    for folder in sorted(parent.glob(f"{ARCHIVE_PREFIX}*")):
        if not folder.is_dir() or (folder / MANIFEST_JSON).exists():
            continue
        tmp_json, tmp_md = folder / _TMP_JSON, folder / _TMP_MD
        if not tmp_json.exists() and not tmp_md.exists():
            continue
        messages.append(_recover_one(versions_dir, folder, dry_run=dry_run))
    return messages


def _recover_one(versions_dir: Path, folder: Path, *, dry_run: bool) -> str:
    tmp_json, tmp_md = folder / _TMP_JSON, folder / _TMP_MD
    entries = _read_tmp_manifest(tmp_json)
    others = sorted(p.name for p in folder.iterdir() if p.name not in (_TMP_JSON, _TMP_MD))
    would = "would be " if dry_run else ""
    if entries is None:
        if others:
            return (
                f"interrupted archive {folder} has no readable temporary manifest and holds "
                f"{len(others)} other files; left as it is (check it by hand)."
            )
        if not dry_run:
            tmp_json.unlink(missing_ok=True)
            tmp_md.unlink(missing_ok=True)
            folder.rmdir()
        return f"interrupted archive {folder} (only a temporary manifest) {would}removed."
    moved, waiting, unclear = [], [], []
    for entry in entries:
        in_archive = os.path.lexists(folder / entry.file)
        in_versions = os.path.lexists(versions_dir / entry.file)
        if in_archive and not in_versions:
            moved.append(entry)
        elif in_versions and not in_archive:
            waiting.append(entry)
        else:
            unclear.append(entry.file)
    listed = {e.file for e in entries}
    strangers = [name for name in others if name not in listed]
    if unclear or strangers:
        odd = ", ".join(sorted(unclear + strangers))
        return (
            f"interrupted archive {folder} cannot be finished or undone safely ({odd} in "
            f"both places, in neither, or not listed); left as it is (check it by hand)."
        )
    if not moved:
        if not dry_run:
            tmp_json.unlink()
            tmp_md.unlink(missing_ok=True)
            folder.rmdir()
        return (
            f"interrupted archive {folder} (no file had been moved yet, only a temporary "
            f"manifest) {would}removed; its {len(waiting)} files stay in {versions_dir.name}/."
        )
    if not waiting:
        if not dry_run:
            stamp = folder.name[len(ARCHIVE_PREFIX) :]
            if not tmp_md.exists():
                _write_new(tmp_md, _manifest_md(stamp, versions_dir, entries))
            os.rename(tmp_md, folder / MANIFEST_MD)
            os.rename(tmp_json, folder / MANIFEST_JSON)
        return (
            f"interrupted archive {folder} {would}completed: all {len(moved)} files had been "
            "moved, the manifest was missing its final name."
        )
    if not dry_run:
        for entry in moved:
            _move_file(folder / entry.file, versions_dir / entry.file)
        tmp_json.unlink()
        tmp_md.unlink(missing_ok=True)
        folder.rmdir()
    return (
        f"interrupted archive {folder} {would}rolled back: {len(moved)} of {len(entries)} "
        f"files had been moved; they {'would go' if dry_run else 'went'} back into "
        f"{versions_dir.name}/."
    )


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
