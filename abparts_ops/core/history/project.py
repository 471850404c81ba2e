"""Locating and loading an Alembic project: ``alembic.ini``, script location, versions.

:func:`load_project` checks everything an operator can get wrong (missing ini, missing
``script_location``, missing or unreadable versions folder, a revision file that does not
import) and reports each as one :class:`~abparts_ops.core.errors.MigrationError` line that
names the file and the fix. Nothing is written.

Paths in ``alembic.ini`` that are relative are resolved against the folder of the ini file
(Alembic itself resolves them against the working directory, which is the same folder when
``alembic`` is run the usual way, next to its ini). ``%(here)s`` works as in Alembic.
"""

from __future__ import annotations

import ast
import configparser
import os
import re
import sys
import traceback
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from alembic import util as alembic_util
from alembic.config import Config
from alembic.script import Script, ScriptDirectory

from abparts_ops.core.errors import MigrationError

DEFAULT_VERSION_TABLE = "alembic_version"

#: Alembic's own rule for which files of a versions folder are revision files.
_REVISION_FILE = re.compile(r"^(?!\.#|__init__)(.*\.py)$")


def _escape_ini(value: str) -> str:
    """Escape ``%`` so ConfigParser interpolation leaves a literal path alone."""
    return value.replace("%", "%%")


def _resolve(value: str, base: Path) -> Path:
    """Resolve an ini path value: package resources, then relative to ``base``."""
    value = value.strip()
    if not os.path.isabs(value) and ":" in value:
        try:
            return Path(alembic_util.coerce_resource_to_filename(value)).absolute()
        except (ImportError, TypeError, ValueError) as exc:
            raise MigrationError(
                f"cannot resolve the package resource {value!r}: {exc} (install the package "
                "or use a filesystem path)."
            ) from None
    path = Path(value).expanduser()
    if not path.is_absolute():
        path = base / path
    return Path(os.path.normpath(path))


@dataclass(frozen=True)
class AlembicProject:
    """Where an Alembic project lives, and where its revision history is recorded.

    ``versions_dirs`` are absolute; ``version_table``/``version_table_schema`` name the
    table Alembic keeps the applied revisions in (as an ``env.py`` would configure it).
    """

    ini_path: Path | None
    script_location: Path
    versions_dirs: tuple[Path, ...]
    version_table: str = DEFAULT_VERSION_TABLE
    version_table_schema: str | None = None

    @property
    def label(self) -> str:
        """How errors name this project: the ini file, else the script location."""
        return str(self.ini_path if self.ini_path is not None else self.script_location)

    def _sys_paths(self) -> list[str]:
        """The ini's ``prepend_sys_path`` entries, made absolute against the ini folder."""
        if self.ini_path is None:
            return []
        original = Config(str(self.ini_path))
        try:
            entries = original.get_prepend_sys_paths_list() or []
        except (configparser.Error, ValueError) as exc:
            raise MigrationError(
                f"{self.ini_path}: cannot read prepend_sys_path: {_first_line(exc)} "
                "(fix it in this ini file)."
            ) from None
        return [str(_resolve(entry, self.ini_path.parent)) for entry in entries if entry]

    def config(self) -> Config:
        """Return a fresh Alembic :class:`~alembic.config.Config` for this project.

        It reads the ini file when there is one, and always carries absolute
        ``script_location``, ``version_locations`` and ``prepend_sys_path`` values so it
        works from any working directory.
        """
        sys_paths = self._sys_paths()
        cfg = Config(str(self.ini_path)) if self.ini_path is not None else Config()
        try:
            cfg.set_main_option("script_location", _escape_ini(str(self.script_location)))
            cfg.set_main_option("path_separator", "os")
            if self.versions_dirs != (self.script_location / "versions",):
                cfg.set_main_option(
                    "version_locations",
                    _escape_ini(os.pathsep.join(str(p) for p in self.versions_dirs)),
                )
            elif cfg.file_config.has_option(cfg.config_ini_section, "version_locations"):
                cfg.file_config.remove_option(cfg.config_ini_section, "version_locations")
            if sys_paths:
                cfg.set_main_option("prepend_sys_path", _escape_ini(os.pathsep.join(sys_paths)))
        except configparser.Error as exc:
            raise MigrationError(
                f"{self.label}: cannot read the Alembic configuration: {_first_line(exc)} "
                "(fix the ini file)."
            ) from None
        return cfg

    def script(self) -> ScriptDirectory:
        """Return a fresh :class:`~alembic.script.ScriptDirectory` for this project.

        ``prepend_sys_path`` entries are added to ``sys.path`` once (Alembic would prepend
        them again on every call).
        """
        cfg = self.config()
        sys_paths = cfg.get_prepend_sys_paths_list() or []
        if cfg.file_config.has_option(cfg.config_ini_section, "prepend_sys_path"):
            cfg.file_config.remove_option(cfg.config_ini_section, "prepend_sys_path")
        for entry in reversed(sys_paths):
            if entry not in sys.path:
                sys.path.insert(0, entry)
        try:
            return ScriptDirectory.from_config(cfg)
        except alembic_util.CommandError as exc:
            raise MigrationError(
                f"{self.label}: {_first_line(exc)} (fix script_location)."
            ) from None


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else exc.__class__.__name__


def _check_readable_dir(path: Path, *, what: str, source: str, fix: str) -> None:
    """Raise one MigrationError line when ``path`` is not a folder we can list.

    Permission bits only deny a non-root user: for root, ``os.access`` and listing both
    succeed whatever the mode, so the "unreadable" branch can only fire for non-root
    users (or for filesystems that refuse even root, e.g. some network mounts).
    """
    if not path.exists():
        raise MigrationError(f"{source}: {what} {path} does not exist ({fix}).")
    if not path.is_dir():
        raise MigrationError(f"{source}: {what} {path} is not a folder ({fix}).")
    if not os.access(path, os.R_OK | os.X_OK):
        raise MigrationError(
            f"{source}: {what} {path} is not readable by this user (give it read and "
            "execute permission, e.g. chmod u+rx, or run as its owner)."
        )
    try:
        with os.scandir(path) as entries:
            next(entries, None)
    except OSError as exc:
        raise MigrationError(
            f"{source}: {what} {path} cannot be listed: {exc.strerror or exc} (give it "
            "read and execute permission, e.g. chmod u+rx, or run as its owner)."
        ) from None


def load_project(
    ini_path: Path | str | None = None,
    script_location: Path | str | None = None,
    version_table: str = DEFAULT_VERSION_TABLE,
    *,
    version_table_schema: str | None = None,
) -> AlembicProject:
    """Locate an Alembic project, check it can be read, and return it.

    Give ``ini_path`` (an ``alembic.ini``), ``script_location`` (the folder holding
    ``versions/``), or both (``script_location`` then overrides the ini's value). Every
    revision file is imported once (through Alembic) so a broken file is reported here,
    naming the file and line. Raises :class:`MigrationError` (one line) on bad input.
    """
    if ini_path is None and script_location is None:
        raise MigrationError(
            "no Alembic project given: pass the path of alembic.ini (or the script "
            "location folder that holds versions/)."
        )
    ini: Path | None = None
    version_locations: list[str] | None = None
    base = Path.cwd()
    if ini_path is not None:
        ini = Path(ini_path).expanduser().absolute()
        if not ini.is_file():
            raise MigrationError(
                f"Alembic ini file {ini} not found (fix the path to alembic.ini in the "
                "configuration, or create the file)."
            )
        base = ini.parent
        cfg = Config(str(ini))
        try:
            raw_location = cfg.get_main_option("script_location")
            version_locations = cfg.get_version_locations_list()
        except (configparser.Error, ValueError) as exc:
            raise MigrationError(
                f"{ini}: cannot be parsed: {_first_line(exc)} (fix the ini syntax)."
            ) from None
        if script_location is None:
            if not raw_location:
                raise MigrationError(
                    f"{ini}: no script_location in its [alembic] section (add a line such "
                    "as 'script_location = %(here)s/alembic')."
                )
            location = _resolve(raw_location, base)
        else:
            location = Path(script_location).expanduser().absolute()
    else:
        location = Path(str(script_location)).expanduser().absolute()
    source = str(ini) if ini is not None else str(location)

    _check_readable_dir(
        location,
        what="script_location folder",
        source=source,
        fix="fix script_location in the ini file"
        if ini is not None
        else "fix the script location path",
    )
    if version_locations:
        versions_dirs = tuple(_resolve(v, base) for v in version_locations if v.strip())
        fix = f"create it or fix version_locations in {source}"
    else:
        versions_dirs = (location / "versions",)
        fix = f"create it: mkdir {location / 'versions'}"
    for folder in versions_dirs:
        _check_readable_dir(folder, what="versions folder", source=source, fix=fix)

    project = AlembicProject(
        ini_path=ini,
        script_location=location,
        versions_dirs=versions_dirs,
        version_table=version_table,
        version_table_schema=version_table_schema,
    )
    load_revisions(project)
    return project


def revision_files(directory: Path, *, recursive: bool = False) -> list[Path]:
    """Files of ``directory`` that Alembic treats as revision files (sorted).

    Alembic's rule: every ``*.py`` except ``__init__.py`` and editor lock files ``.#*``;
    ``__pycache__`` is skipped.
    """
    found: list[Path] = []
    for root, dirs, files in os.walk(directory):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        for name in sorted(files):
            if _REVISION_FILE.match(name):
                found.append(Path(root) / name)
        if not recursive:
            break
    return found


def read_revision_id(path: Path) -> str | None:
    """Read ``revision = "..."`` from a revision file without running it (None if absent).

    A file that does not parse, or assigns something other than a string literal, gives
    None; this never imports the file, so it is safe on broken or untrusted files.
    """
    try:
        tree = ast.parse(path.read_bytes(), filename=str(path))
    except (OSError, SyntaxError, ValueError):
        return None
    for node in tree.body:
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            targets = [node.target]
        else:
            continue
        if any(isinstance(t, ast.Name) and t.id == "revision" for t in targets):
            value = node.value
            if isinstance(value, ast.Constant) and isinstance(value.value, str):
                return value.value
            return None
    return None


def _find_referrer(project: AlembicProject, revision: str) -> Path | None:
    """The first revision file whose text quotes ``revision`` in a reference."""
    needles = (f'"{revision}"', f"'{revision}'")
    for folder in project.versions_dirs:
        for path in revision_files(folder, recursive=True):
            try:
                text = path.read_text(encoding="utf-8", errors="replace")
            except OSError:
                continue
            if any(n in text for n in needles):
                return path
    return None


def _within(path: str | None, folders: Sequence[Path]) -> bool:
    if not path:
        return False
    try:
        resolved = Path(path).resolve()
    except OSError:
        return False
    return any(resolved.is_relative_to(f.resolve()) for f in folders)


def _explain_load_error(project: AlembicProject, exc: BaseException) -> MigrationError:
    """Turn whatever Alembic raised while loading revisions into one clear line."""
    label = project.label
    # Alembic sometimes wraps the real cause; look through the chain for a SyntaxError.
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, SyntaxError):
            return MigrationError(
                f"{label}: revision file {cause.filename} line {cause.lineno} has a syntax "
                f"error: {cause.msg} (fix the file, or move it out of the versions folder)."
            )
        cause = cause.__cause__ or cause.__context__
    if isinstance(exc, KeyError) and exc.args:
        missing = str(exc.args[0])
        referrer = _find_referrer(project, missing)
        where = f"revision file {referrer}" if referrer else "a revision file"
        return MigrationError(
            f"{label}: {where} refers to revision '{missing}', which no file in the "
            "versions folder defines (fix down_revision/depends_on, or restore the missing "
            "revision file)."
        )
    frames = [
        f
        for f in traceback.extract_tb(exc.__traceback__)
        if _within(f.filename, project.versions_dirs)
    ]
    if frames:
        frame = frames[-1]
        return MigrationError(
            f"{label}: revision file {frame.filename} line {frame.lineno} cannot be loaded: "
            f"{exc.__class__.__name__}: {_first_line(exc)} (fix the file, or make what it "
            "imports importable, e.g. with prepend_sys_path in alembic.ini)."
        )
    filename = getattr(exc, "filename", None)
    if isinstance(exc, OSError) and filename:
        return MigrationError(
            f"{label}: revision file {filename} cannot be read: {exc.strerror or exc} "
            "(give it read permission)."
        )
    if isinstance(exc, AttributeError) and "down_revision" in str(exc):
        return MigrationError(
            f"{label}: a revision file has no down_revision ({_first_line(exc)}; every "
            "revision file needs 'revision' and 'down_revision' variables)."
        )
    return MigrationError(
        f"{label}: the revision history cannot be loaded: {exc.__class__.__name__}: "
        f"{_first_line(exc)} (fix the revision files in the versions folder)."
    )


def load_revisions(project: AlembicProject, script: ScriptDirectory | None = None) -> list[Script]:
    """Load every revision of ``project`` through Alembic; broken files become one line.

    Returns Alembic's scripts (head first, as ``walk_revisions`` gives them). Two files
    declaring the same revision id are an error here (Alembic only warns and keeps one).
    """
    script = script or project.script()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            scripts = list(script.walk_revisions())
        except MigrationError:
            raise
        except Exception as exc:
            raise _explain_load_error(project, exc) from None
    for warning in caught:
        text = str(warning.message)
        match = re.match(r"Revision (\S+) is present more than once", text)
        if match:
            rev = match.group(1)
            files = [
                str(path)
                for folder in project.versions_dirs
                for path in revision_files(folder, recursive=script.recursive_version_locations)
                if read_revision_id(path) == rev
            ]
            raise MigrationError(
                f"{project.label}: revision {rev} is declared by more than one file "
                f"({', '.join(files) or 'in the versions folder'}); keep one and give the "
                "other a new revision id or archive it."
            )
        warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)
    return scripts
