"""archive_revisions: moves + manifest, idempotent, never overwrites, rolls back."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from abparts_ops.core.errors import MigrationError
from abparts_ops.core.history import archive as archive_mod
from abparts_ops.core.history.archive import (
    MANIFEST_JSON,
    MANIFEST_MD,
    archive_revisions,
    plan_archive,
    read_manifest,
)
from abparts_ops.core.history.project import load_project
from abparts_ops.core.history.revisions import read_history
from abparts_ops_tests.core.history.projects import Rev, linear, write_project, write_rev

STAMP = "20240131_235959"
MOVED = ["b1_rev.py", "b2_rev.py", "r001_rev.py", "r002_rev.py", "r003_rev.py"]


def _setup(tmp_path: Path) -> tuple[Path, Path, Path]:
    """A tangled project plus a new baseline file to keep; returns (ini, versions, keep)."""
    revs = [*linear(3), Rev("b1", "r003"), Rev("b2", "r003")]
    ini = write_project(tmp_path, revs)
    versions = tmp_path / "migrations" / "versions"
    (versions / "__init__.py").write_text("", encoding="utf-8")
    (versions / "README").write_text("notes\n", encoding="utf-8")
    (versions / "__pycache__").mkdir()
    (versions / "__pycache__" / "r001_rev.cpython-311.pyc").write_bytes(b"\0")
    keep = write_rev(versions, Rev("base01", None, filename="base01_baseline.py"))
    return ini, versions, keep


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
    }


def test_plan_lists_what_would_move(tmp_path: Path) -> None:
    _, versions, keep = _setup(tmp_path)
    before = _snapshot(tmp_path)
    plan = plan_archive(versions, [keep], STAMP)
    assert [e.file for e in plan] == MOVED
    assert [e.revision for e in plan] == ["b1", "b2", "r001", "r002", "r003"]
    assert _snapshot(tmp_path) == before  # nothing written
    assert [e.file for e in plan_archive(versions, [Path("base01_baseline.py")], STAMP)] == [
        e.file for e in plan
    ]


def test_archive_moves_files_and_writes_manifest(tmp_path: Path) -> None:
    ini, versions, keep = _setup(tmp_path)
    originals = {p.name: p.read_bytes() for p in versions.glob("*.py")}

    result = archive_revisions(versions, keep=[keep], stamp=STAMP)

    target = tmp_path / "migrations" / f"versions_archive_{STAMP}"
    assert result.archive_dir == target
    assert result.manifest_path == target / MANIFEST_JSON
    moved = MOVED
    assert [e.file for e in result.entries] == moved
    assert sorted(p.name for p in target.iterdir()) == sorted([*moved, MANIFEST_JSON, MANIFEST_MD])
    assert sorted(p.name for p in versions.iterdir()) == [
        "README",
        "__init__.py",
        "__pycache__",
        "base01_baseline.py",
    ]
    assert (versions / "__pycache__" / "r001_rev.cpython-311.pyc").exists()
    data = json.loads(result.manifest_path.read_text())
    assert data["stamp"] == STAMP and data["count"] == 5
    for item in data["files"]:
        content = (target / item["file"]).read_bytes()
        assert content == originals[item["file"]]
        assert item["sha256"] == hashlib.sha256(content).hexdigest()
        assert item["revision"] == item["file"].split("_")[0]
    assert read_manifest(result.manifest_path) == result.entries
    md = (target / MANIFEST_MD).read_text()
    for entry in result.entries:
        assert entry.file in md and entry.sha256 in md
    assert not list(target.glob(".*"))  # no temporary manifest left

    # Alembic does not pick the archive up: only the kept revision remains.
    history = read_history(load_project(ini))
    assert [r.revision for r in history.revisions] == ["base01"]


def test_rerun_is_idempotent(tmp_path: Path) -> None:
    _, versions, keep = _setup(tmp_path)
    first = archive_revisions(versions, keep=[keep], stamp=STAMP)
    after_first = _snapshot(tmp_path)

    same = archive_revisions(versions, keep=[keep], stamp=STAMP)
    assert same == first
    later = archive_revisions(versions, keep=[keep], stamp="20240201_000000")
    assert later.entries == ()
    assert not later.archive_dir.exists()
    assert _snapshot(tmp_path) == after_first


def test_never_overwrites_an_existing_archive(tmp_path: Path) -> None:
    _, versions, keep = _setup(tmp_path)
    archive_revisions(versions, keep=[keep], stamp=STAMP)
    write_rev(versions, Rev("c1", "base01"))
    before = _snapshot(tmp_path)
    with pytest.raises(MigrationError, match="already exists") as exc:
        archive_revisions(versions, keep=[keep], stamp=STAMP)
    assert "\n" not in str(exc.value)
    assert _snapshot(tmp_path) == before


def test_refuses_a_folder_that_is_not_a_completed_archive(tmp_path: Path) -> None:
    _, versions, keep = _setup(tmp_path)
    target = versions.parent / f"versions_archive_{STAMP}"
    target.mkdir()
    (target / "r001_rev.py").write_text("someone else's file\n", encoding="utf-8")
    before = _snapshot(tmp_path)
    with pytest.raises(MigrationError, match="incomplete archive"):
        archive_revisions(versions, keep=[keep], stamp=STAMP)
    assert _snapshot(tmp_path) == before


def test_rollback_when_a_move_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _, versions, keep = _setup(tmp_path)
    before = _snapshot(tmp_path)
    real_move = archive_mod._move_file
    calls: list[Path] = []

    def flaky(src: Path, dst: Path) -> None:
        calls.append(src)
        if len(calls) == 2:
            raise OSError(5, "Input/output error", str(src))
        real_move(src, dst)

    monkeypatch.setattr(archive_mod, "_move_file", flaky)
    with pytest.raises(MigrationError) as exc:
        archive_revisions(versions, keep=[keep], stamp=STAMP)
    text = str(exc.value)
    assert "put back" in text and "nothing was archived" in text and "\n" not in text
    assert _snapshot(tmp_path) == before
    assert not (versions.parent / f"versions_archive_{STAMP}").exists()

    monkeypatch.setattr(archive_mod, "_move_file", real_move)
    assert len(archive_revisions(versions, keep=[keep], stamp=STAMP).entries) == 5


def test_interrupt_rolls_back_and_propagates(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, versions, keep = _setup(tmp_path)
    before = _snapshot(tmp_path)
    real_move = archive_mod._move_file
    calls: list[Path] = []

    def interrupted(src: Path, dst: Path) -> None:
        calls.append(src)
        real_move(src, dst)
        if len(calls) == 3:
            raise KeyboardInterrupt  # right after the third file moved

    monkeypatch.setattr(archive_mod, "_move_file", interrupted)
    with pytest.raises(KeyboardInterrupt):
        archive_revisions(versions, keep=[keep], stamp=STAMP)
    assert _snapshot(tmp_path) == before


def test_missing_keep_file_and_bad_stamp(tmp_path: Path) -> None:
    _, versions, _ = _setup(tmp_path)
    before = _snapshot(tmp_path)
    with pytest.raises(MigrationError, match="does not exist"):
        archive_revisions(versions, keep=[versions / "baseline.py"], stamp=STAMP)
    with pytest.raises(MigrationError, match="YYYYMMDD_HHMMSS"):
        archive_revisions(versions, keep=[], stamp="2024-01-31")
    with pytest.raises(MigrationError, match="does not exist"):
        archive_revisions(tmp_path / "nope", keep=[], stamp=STAMP)
    assert _snapshot(tmp_path) == before


def test_unparseable_file_is_archived_with_no_revision(tmp_path: Path) -> None:
    _, versions, keep = _setup(tmp_path)
    (versions / "broken.py").write_text("def (:\n", encoding="utf-8")
    result = archive_revisions(versions, keep=[keep], stamp=STAMP)
    broken = [e for e in result.entries if e.file == "broken.py"]
    assert broken and broken[0].revision is None


def _interrupt(tmp_path: Path, moved: int) -> tuple[Path, Path, Path]:
    """A crash after the temporary manifest was written and ``moved`` files were moved."""
    _, versions, keep = _setup(tmp_path)
    entries = plan_archive(versions, [keep], STAMP)
    target = archive_mod.archive_dir_for(versions, STAMP)
    target.mkdir()
    (target / archive_mod._TMP_JSON).write_text(
        archive_mod._manifest_json(STAMP, versions, entries), encoding="utf-8"
    )
    (target / archive_mod._TMP_MD).write_text(
        archive_mod._manifest_md(STAMP, versions, entries), encoding="utf-8"
    )
    for entry in entries[:moved]:
        (versions / entry.file).rename(target / entry.file)
    return versions, keep, target


def test_interrupted_archive_holding_only_the_tmp_manifest_is_removed(tmp_path: Path) -> None:
    """A crash before the first move leaves only ``.MANIFEST.*.tmp``: removed, said so."""
    versions, keep, target = _interrupt(tmp_path, moved=0)
    before = _snapshot(versions)
    dry = archive_mod.recover_interrupted_archives(versions, dry_run=True)
    assert len(dry) == 1 and "would be removed" in dry[0]
    assert sorted(p.name for p in target.iterdir()) == [".MANIFEST.json.tmp", ".MANIFEST.md.tmp"]
    messages = archive_mod.recover_interrupted_archives(versions)
    assert len(messages) == 1
    assert f"interrupted archive {target} (no file had been moved yet" in messages[0]
    assert "removed" in messages[0]
    assert not target.exists()
    assert _snapshot(versions) == before
    assert archive_mod.recover_interrupted_archives(versions) == []
    result = archive_revisions(versions, keep=[keep], stamp=STAMP)  # the archive now works
    assert [e.file for e in result.entries] == MOVED


def test_interrupted_archive_with_every_file_moved_is_completed(tmp_path: Path) -> None:
    versions, _keep, target = _interrupt(tmp_path, moved=len(MOVED))
    (target / archive_mod._TMP_MD).unlink()  # the crash came before the .md was written
    messages = archive_mod.recover_interrupted_archives(versions)
    assert len(messages) == 1 and "completed" in messages[0]
    assert [e.file for e in read_manifest(target / MANIFEST_JSON)] == MOVED
    assert (target / MANIFEST_MD).is_file()
    assert not list(target.glob(".MANIFEST*"))


def test_half_moved_interrupted_archive_is_rolled_back(tmp_path: Path) -> None:
    versions, _keep, target = _interrupt(tmp_path, moved=2)
    messages = archive_mod.recover_interrupted_archives(versions)
    assert len(messages) == 1 and "rolled back: 2 of 5 files" in messages[0]
    assert not target.exists()
    assert set(MOVED) <= {p.name for p in versions.iterdir()}


def test_interrupted_archive_it_does_not_understand_is_left_alone(tmp_path: Path) -> None:
    versions, _keep, target = _interrupt(tmp_path, moved=1)
    (target / "stranger.py").write_text("x = 1\n", encoding="utf-8")
    before = _snapshot(tmp_path)
    messages = archive_mod.recover_interrupted_archives(versions)
    assert len(messages) == 1 and "left as it is" in messages[0] and "stranger.py" in messages[0]
    assert _snapshot(tmp_path) == before
