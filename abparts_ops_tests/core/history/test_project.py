"""load_project: a good project loads; each kind of bad input is one clear line."""

from __future__ import annotations

import os
import pwd
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

from abparts_ops.core.errors import MigrationError
from abparts_ops.core.history.project import (
    AlembicProject,
    load_project,
    load_revisions,
    read_revision_id,
)
from abparts_ops_tests.core.history.projects import Rev, linear, write_project, write_rev

IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


def _one_line(exc: pytest.ExceptionInfo[MigrationError]) -> str:
    text = str(exc.value)
    assert "\n" not in text
    return text


def test_loads_from_ini(tmp_path: Path) -> None:
    ini = write_project(tmp_path, linear(3))
    project = load_project(ini)
    assert project.ini_path == ini
    assert project.script_location == tmp_path / "migrations"
    assert project.versions_dirs == (tmp_path / "migrations" / "versions",)
    assert project.version_table == "alembic_version"
    script = project.script()
    assert script.get_current_head() == "r003"
    cfg = project.config()
    assert cfg is not project.config()  # fresh each call
    assert cfg.get_main_option("script_location") == str(tmp_path / "migrations")


def test_loads_from_script_location_without_ini(tmp_path: Path) -> None:
    location = write_project(tmp_path, linear(2), ini=False)
    project = load_project(script_location=location, version_table="my_versions")
    assert project.ini_path is None
    assert project.version_table == "my_versions"
    assert project.script().get_current_head() == "r002"
    assert project.config().get_main_option("script_location") == str(location)


def test_relative_script_location_resolves_against_the_ini(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ini = write_project(tmp_path, linear(1))
    ini.write_text("[alembic]\nscript_location = migrations\n", encoding="utf-8")
    monkeypatch.chdir("/")
    project = load_project(ini)
    assert project.script_location == tmp_path / "migrations"
    assert project.script().get_current_head() == "r001"


def test_version_locations_and_prepend_sys_path(tmp_path: Path) -> None:
    ini = write_project(tmp_path, linear(1))
    extra = tmp_path / "more_versions"
    extra.mkdir()
    write_rev(extra, Rev("x001", "r001", upgrade="import helper_mod_abparts  # noqa"))
    lib = tmp_path / "lib"
    lib.mkdir()
    (lib / "helper_mod_abparts.py").write_text("VALUE = 1\n", encoding="utf-8")
    ini.write_text(
        "[alembic]\nscript_location = %(here)s/migrations\npath_separator = os\n"
        f"version_locations = %(here)s/migrations/versions{os.pathsep}more_versions\n"
        "prepend_sys_path = lib\n",
        encoding="utf-8",
    )
    project = load_project(ini)
    assert project.versions_dirs == (tmp_path / "migrations" / "versions", extra)
    assert project.script().get_current_head() == "x001"
    before = list(sys.path)
    project.script()
    project.script()
    assert sys.path.count(str(lib)) == 1  # added once, not on every call
    assert len(sys.path) == len(before)


def test_no_project_given() -> None:
    with pytest.raises(MigrationError, match="no Alembic project given"):
        load_project()


def test_missing_ini(tmp_path: Path) -> None:
    with pytest.raises(MigrationError) as exc:
        load_project(tmp_path / "nope" / "alembic.ini")
    text = _one_line(exc)
    assert str(tmp_path / "nope" / "alembic.ini") in text
    assert "not found" in text


def test_ini_without_script_location(tmp_path: Path) -> None:
    ini = tmp_path / "alembic.ini"
    ini.write_text("[alembic]\nsqlalchemy.url = driver://u:p@h/db\n", encoding="utf-8")
    with pytest.raises(MigrationError) as exc:
        load_project(ini)
    text = _one_line(exc)
    assert str(ini) in text and "script_location" in text and "add" in text


def test_ini_that_does_not_parse(tmp_path: Path) -> None:
    ini = tmp_path / "alembic.ini"
    ini.write_text("script_location = x\n", encoding="utf-8")  # no section header
    with pytest.raises(MigrationError) as exc:
        load_project(ini)
    assert str(ini) in _one_line(exc)


def test_script_location_missing(tmp_path: Path) -> None:
    ini = tmp_path / "alembic.ini"
    ini.write_text("[alembic]\nscript_location = %(here)s/gone\n", encoding="utf-8")
    with pytest.raises(MigrationError) as exc:
        load_project(ini)
    text = _one_line(exc)
    assert str(tmp_path / "gone") in text and "does not exist" in text
    assert "fix script_location" in text


def test_versions_folder_missing(tmp_path: Path) -> None:
    ini = write_project(tmp_path, [])
    (tmp_path / "migrations" / "versions").rmdir()
    with pytest.raises(MigrationError) as exc:
        load_project(ini)
    text = _one_line(exc)
    assert str(tmp_path / "migrations" / "versions") in text
    assert "mkdir" in text


def test_versions_is_a_file_not_a_folder(tmp_path: Path) -> None:
    ini = write_project(tmp_path, [])
    versions = tmp_path / "migrations" / "versions"
    versions.rmdir()
    versions.write_text("oops", encoding="utf-8")
    with pytest.raises(MigrationError) as exc:
        load_project(ini)
    text = _one_line(exc)
    assert str(versions) in text and "not a folder" in text


def _load_error_as(uid: int | None, ini: Path) -> str:
    """The one-line error ``load_project(ini)`` raises, read by user ``uid`` (None: as the
    current user; otherwise in a forked child that dropped to that user, as root must to
    be denied anything)."""
    if uid is None:
        with pytest.raises(MigrationError) as exc:
            load_project(ini)
        return _one_line(exc)
    read_end, write_end = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - runs in the child, which reports through the pipe
        status = 0
        try:
            os.close(read_end)
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)
            try:
                load_project(ini)
                message = "loaded without an error"
            except MigrationError as exc:
                message = str(exc)
            os.write(write_end, message.encode())
        except BaseException:  # noqa: BLE001 - anything else is reported by the status
            status = 1
        finally:
            os._exit(status)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        message = pipe.read().decode()
    _pid, status = os.waitpid(child, 0)
    assert os.waitstatus_to_exitcode(status) == 0, "the unprivileged child failed"
    assert "\n" not in message
    return message


def test_versions_folder_unreadable_chmod(tmp_path: Path) -> None:
    """A versions folder its reader may not list (chmod 000). Root is never denied, so
    as root the project is read by ``nobody`` in a forked child, from a folder it may
    reach (pytest's own temporary folders are root's alone)."""
    uid, home = None, tmp_path
    if IS_ROOT:
        uid = pwd.getpwnam("nobody").pw_uid
        home = Path(tempfile.mkdtemp(prefix="abparts_ops_chmod_"))
        home.chmod(0o755)
    try:
        ini = write_project(home, linear(1))
        versions = home / "migrations" / "versions"
        versions.chmod(0)
        try:
            text = _load_error_as(uid, ini)
        finally:
            versions.chmod(0o755)
    finally:
        if home != tmp_path:
            shutil.rmtree(home)
    assert str(versions) in text and "not readable" in text


def test_versions_folder_denied_by_os_access(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The permission check a non-root user hits (simulated: root is never denied)."""
    ini = write_project(tmp_path, linear(1))
    versions = tmp_path / "migrations" / "versions"
    real_access = os.access

    def deny(path: object, mode: int, **kw: object) -> bool:
        if Path(str(path)) == versions:
            return False
        return real_access(path, mode, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "access", deny)
    with pytest.raises(MigrationError) as exc:
        load_project(ini)
    text = _one_line(exc)
    assert str(versions) in text and "not readable" in text and "chmod u+rx" in text


def test_versions_folder_unreadable_listing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As root chmod 000 does not deny reads, so simulate the OS refusing the listing."""
    ini = write_project(tmp_path, linear(1))
    versions = tmp_path / "migrations" / "versions"
    real_scandir = os.scandir

    def refusing(path: object = ".") -> object:
        if Path(str(path)) == versions:
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "scandir", refusing)
    with pytest.raises(MigrationError) as exc:
        load_project(ini)
    text = _one_line(exc)
    assert str(versions) in text and "cannot be listed" in text and "Permission denied" in text


def test_revision_with_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    revs = linear(2)
    revs[1].extra = "def broken(:\n    pass"
    ini = write_project(tmp_path, revs)
    with pytest.raises(MigrationError) as exc:
        load_project(ini)
    text = _one_line(exc)
    bad = tmp_path / "migrations" / "versions" / "r002_rev.py"
    line = bad.read_text().splitlines().index("def broken(:") + 1
    assert str(bad) in text
    assert f"line {line}" in text
    assert "syntax error" in text


def test_revision_that_fails_to_import_names_file(tmp_path: Path) -> None:
    revs = linear(1)
    revs[0].extra = "import module_that_does_not_exist_abparts"
    ini = write_project(tmp_path, revs)
    with pytest.raises(MigrationError) as exc:
        load_project(ini)
    text = _one_line(exc)
    assert "r001_rev.py" in text and "module_that_does_not_exist_abparts" in text


def test_missing_down_revision_names_the_referrer(tmp_path: Path) -> None:
    ini = write_project(tmp_path, [Rev("a1", None), Rev("a2", "zz_missing")])
    with pytest.raises(MigrationError) as exc:
        load_project(ini)
    text = _one_line(exc)
    assert "zz_missing" in text and "a2_rev.py" in text


def test_duplicate_revision_id_is_an_error(tmp_path: Path) -> None:
    ini = write_project(tmp_path, [Rev("a1", None), Rev("a1", None, filename="copy_of_a1.py")])
    with pytest.raises(MigrationError) as exc:
        load_project(ini)
    text = _one_line(exc)
    assert "a1" in text and "copy_of_a1.py" in text and "a1_rev.py" in text


def test_env_py_is_never_run(tmp_path: Path) -> None:
    ini = write_project(tmp_path, linear(2))
    project = load_project(ini)  # env.py raises if imported
    assert len(load_revisions(project)) == 2


def test_read_revision_id_is_safe(tmp_path: Path) -> None:
    good = tmp_path / "good.py"
    good.write_text('import os\nrevision: str = "abc"\nos.remove("/nope")\n', encoding="utf-8")
    assert read_revision_id(good) == "abc"  # read, never executed
    broken = tmp_path / "broken.py"
    broken.write_text("revision = (\n", encoding="utf-8")
    assert read_revision_id(broken) is None
    computed = tmp_path / "computed.py"
    computed.write_text("revision = 'a' + 'b'\n", encoding="utf-8")
    assert read_revision_id(computed) is None


def test_project_is_frozen(tmp_path: Path) -> None:
    project = AlembicProject(None, tmp_path, (tmp_path / "versions",))
    with pytest.raises(AttributeError):
        project.version_table = "x"  # type: ignore[misc]
