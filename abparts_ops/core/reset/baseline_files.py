"""The baseline's files: plan, write (atomically, never overwriting) and archive.

:func:`plan_baseline` decides, before anything is written, which file the baseline of a
snapshot goes to and which revision files the archive step moves away; a versions folder
that already holds exactly this baseline (same ``source_fingerprint``) gives a no-op plan.
:func:`write_baseline` writes a file without ever overwriting another one, and
:func:`apply_baseline` writes it and archives the old history
(:mod:`abparts_ops.core.history.archive`).
"""

from __future__ import annotations

import ast
import contextlib
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from abparts_ops.core.errors import MigrationError
from abparts_ops.core.history.archive import ArchiveResult, archive_revisions
from abparts_ops.core.history.project import AlembicProject, revision_files
from abparts_ops.core.reset.baseline_render import render_baseline
from abparts_ops.core.schema.model import Snapshot

BASELINE_SUFFIX = "_baseline_schema_"
_BASELINE_FILE = re.compile(r"^[0-9A-Za-z_]+_baseline_schema_\d{8}_\d{6}\.py$")


def new_revision_id() -> str:
    """A new random revision id: 12 hex digits, as Alembic's ``rev_id()`` makes them."""
    try:
        from alembic.util import rev_id
    except ImportError:  # pragma: no cover - every supported Alembic has it
        import uuid

        return uuid.uuid4().hex[-12:]
    return str(rev_id())


def baseline_filename(revision: str, created: datetime) -> str:
    """The baseline's file name: ``<revision>_baseline_schema_<YYYYmmdd_HHMMSS>.py``."""
    return f"{revision}{BASELINE_SUFFIX}{created:%Y%m%d_%H%M%S}.py"


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def read_baseline_header(path: Path) -> dict[str, Any] | None:
    """Read ``revision``, ``down_revision`` and ``source_fingerprint`` without importing.

    Returns None when the file does not parse; absent names map to ``...`` (Ellipsis) so
    ``down_revision = None`` can be told apart from a missing assignment.
    """
    try:
        tree = ast.parse(path.read_bytes(), filename=str(path))
    except (OSError, SyntaxError, ValueError):
        return None
    found: dict[str, Any] = {"revision": ..., "down_revision": ..., "source_fingerprint": ...}
    for node in tree.body:
        if isinstance(node, ast.Assign):
            targets, value = node.targets, node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            targets, value = [node.target], node.value
        else:
            continue
        for target in targets:
            if isinstance(target, ast.Name) and target.id in found:
                found[target.id] = value.value if isinstance(value, ast.Constant) else ...
    return found


@dataclass(frozen=True)
class BaselinePlan:
    """What :func:`write_baseline` will do, decided before anything is written.

    ``existing`` is set when the versions folder already holds exactly this baseline (the
    only revision file, a root, rendered from a snapshot with the same fingerprint): the
    plan is then a no-op and ``path``/``source``/``sha256`` describe that file.
    ``files_to_archive`` are the other revision files, which the archive step moves away.
    """

    revision: str
    filename: str
    path: Path
    source: str
    sha256: str
    archive_stamp: str
    files_to_archive: tuple[Path, ...]
    existing: Path | None

    @property
    def is_noop(self) -> bool:
        """True when there is nothing to write or archive."""
        return self.existing is not None


def find_existing_baseline(snapshot: Snapshot, versions_dir: Path) -> Path | None:
    """The baseline already in ``versions_dir`` for this snapshot, if it is the only file."""
    files = revision_files(versions_dir)
    if len(files) != 1 or not _BASELINE_FILE.match(files[0].name):
        return None
    header = read_baseline_header(files[0])
    if (
        header is not None
        and header["down_revision"] is None
        and header["source_fingerprint"] == snapshot.fingerprint
        and isinstance(header["revision"], str)
    ):
        return files[0]
    return None


def plan_baseline(
    snapshot: Snapshot,
    versions_dir: Path,
    *,
    revision: str | None = None,
    message: str = "baseline schema",
    now: datetime,
) -> BaselinePlan:
    """Decide the baseline for ``snapshot`` in ``versions_dir`` (nothing is written).

    A no-op plan (``existing`` set) when the folder already holds exactly one revision
    file, a ``*_baseline_schema_*.py`` root whose ``source_fingerprint`` is the snapshot's.
    Otherwise a new file named by :func:`baseline_filename` (``revision`` defaults to
    :func:`new_revision_id`), and every other revision file listed for archiving under
    the stamp ``now`` (``YYYYmmdd_HHMMSS``). ``revision`` and ``message`` do not matter
    for a no-op plan (the existing file is kept as it is). Raises :class:`MigrationError` when the
    folder is missing, or the target file exists with other content.
    """
    versions_dir = Path(versions_dir)
    if not versions_dir.is_dir():
        raise MigrationError(
            f"versions folder {versions_dir} does not exist (fix the Alembic project's "
            "script_location / version_locations)."
        )
    stamp = f"{now:%Y%m%d_%H%M%S}"
    existing = find_existing_baseline(snapshot, versions_dir)
    if existing is not None:
        text = existing.read_text(encoding="utf-8")
        header = read_baseline_header(existing) or {}
        return BaselinePlan(
            revision=str(header.get("revision")),
            filename=existing.name,
            path=existing,
            source=text,
            sha256=_sha256(text),
            archive_stamp=stamp,
            files_to_archive=(),
            existing=existing,
        )
    revision = revision or new_revision_id()
    filename = baseline_filename(revision, now)
    path = versions_dir / filename
    source = render_baseline(snapshot, revision=revision, message=message, created=now)
    if path.exists() and path.read_text(encoding="utf-8") != source:
        raise MigrationError(
            f"{path} already exists with other content; a baseline file is never "
            "overwritten (move it away, or pass another revision id)."
        )
    others = tuple(p for p in revision_files(versions_dir) if p.name != filename)
    return BaselinePlan(
        revision=revision,
        filename=filename,
        path=path,
        source=source,
        sha256=_sha256(source),
        archive_stamp=stamp,
        files_to_archive=others,
        existing=None,
    )


#: Past this size a baseline file is compiled by :func:`precompile` in a child process.
PRECOMPILE_BYTES = 1_000_000


def precompile(path: Path) -> bool:
    """Compile a large revision file to its ``__pycache__`` in a child process.

    CPython's parser and compiler take about 14 times a file's size while they work (110
    MB for the 7.9 MB baseline of 5,000 tables), and the process keeps that memory. Every
    process that loads the history imports the file; with its ``.pyc`` there (checked by
    the source's hash, so valid wherever the same text is), the import only reads the
    compiled code, so the reset's proofs, the expected schemas and every later process
    that loads the history skip the compilation. Files under :data:`PRECOMPILE_BYTES` are
    left to the import (a child would cost more than it saves). Returns True when a
    ``.pyc`` was written; a failure is not an error (the import compiles, and reports a
    broken file itself).
    """
    path = Path(path)
    try:
        if path.stat().st_size < PRECOMPILE_BYTES:
            return False
    except OSError:
        return False
    code = (
        "import py_compile, sys\n"
        "py_compile.compile(sys.argv[1], doraise=True,"
        " invalidation_mode=py_compile.PycInvalidationMode.CHECKED_HASH)\n"
    )
    try:
        done = subprocess.run(
            [sys.executable, "-c", code, str(path)], capture_output=True, timeout=300,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return False
    return done.returncode == 0


def write_baseline(plan: BaselinePlan) -> Path:
    """Write the plan's file atomically and never over another file; returns its path.

    A no-op for a no-op plan, or when the file already exists with exactly this content.
    The text goes to a temporary file in the same folder (flushed to disk), which is then
    hard-linked to the final name (failing if that name exists) and removed.
    """
    if plan.existing is not None:
        return plan.existing
    path = plan.path
    data = plan.source.encode("utf-8")
    if path.exists():
        if path.read_bytes() == data:
            return path
        raise MigrationError(
            f"{path} already exists with other content; a baseline file is never "
            "overwritten (move it away, or plan again)."
        )
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with tmp.open("xb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(tmp, path)
        except FileExistsError:
            if path.read_bytes() != data:
                raise MigrationError(
                    f"{path} appeared while writing, with other content; it was left as it "
                    "is (check who else writes to this versions folder)."
                ) from None
        except OSError:  # filesystems without hard links: exclusive create instead
            with path.open("xb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
        precompile(path)
    except OSError as exc:
        raise MigrationError(
            f"cannot write the baseline {path}: {exc.strerror or exc} (check the folder's "
            "permissions and free space)."
        ) from None
    finally:
        tmp.unlink(missing_ok=True)
    return path


def apply_baseline(plan: BaselinePlan, versions_dir: Path) -> tuple[Path, ArchiveResult | None]:
    """Write the baseline, then archive every other revision file of ``versions_dir``.

    Returns ``(baseline path, ArchiveResult or None)``; a no-op plan archives nothing.
    The new file is written first because the archive step keeps only files that exist;
    if archiving fails (it puts back whatever it moved), the baseline file this call
    created is removed again, so the folder is left exactly as it was.
    """
    if plan.existing is not None:
        return plan.existing, None
    existed = plan.path.exists()
    path = write_baseline(plan)
    try:
        result = archive_revisions(Path(versions_dir), keep=[path], stamp=plan.archive_stamp)
    except BaseException:
        if not existed:
            path.unlink(missing_ok=True)
        raise
    return path, result


@contextlib.contextmanager
def staged_project(project: AlembicProject, plan: BaselinePlan) -> Iterator[AlembicProject]:
    """A temporary copy of ``project`` whose versions folder holds the plan's file alone.

    What the proofs run on before anything is written: the baseline as it would be after
    the reset (old revisions archived), with the project's ``script.py.mako`` (for a
    proof that generates a revision on top) and its version table. The real project is
    only read; the copy is removed on exit.
    """
    with tempfile.TemporaryDirectory(prefix="abparts_baseline_") as tmp:
        root = Path(tmp)
        versions = root / "versions"
        versions.mkdir()
        (versions / plan.filename).write_text(plan.source, encoding="utf-8")
        precompile(versions / plan.filename)
        mako = project.script_location / "script.py.mako"
        if mako.is_file():
            shutil.copyfile(mako, root / "script.py.mako")
        yield AlembicProject(
            ini_path=None,
            script_location=root,
            versions_dirs=(versions,),
            version_table=project.version_table,
            version_table_schema=project.version_table_schema,
        )
