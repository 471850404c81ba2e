"""The project's configuration file: load, validate, and explain every problem at once.

One YAML file (path in ``ABPARTS_OPS_CONFIG``) names the Alembic project, the source
environment, the exclusions, the scratch server and every environment. Database URLs
are never in the file: each environment names the environment variable that holds its
URL. Relative paths are relative to the file. Validation collects every problem and
raises one :class:`~abparts_ops.core.errors.ConfigError` with one line per problem,
each naming the key and the fix.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from abparts_ops.core.db import parse_url
from abparts_ops.core.errors import ConfigError, DatabaseError
from abparts_ops.core.schema.exclusions import glob_to_regex

CONFIG_ENV = "ABPARTS_OPS_CONFIG"

_TOP_KEYS = {"alembic", "source", "exclude", "scratch", "environments", "schema", "reference"}
_ALEMBIC_KEYS = {"config", "script_location", "models", "sys_path", "version_table"}
_ENV_KEYS = {"url_env", "protected", "schema"}
_SCRATCH_KEYS = {"url_env"}
_REFERENCE_KEYS = {"path"}
_NAME_RE = re.compile(r"^[a-z][a-z0-9_]*$")
_ENV_VAR_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_MODELS_RE = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")


@dataclass(frozen=True)
class EnvironmentSettings:
    """One database environment: its name, the variable holding its URL, protection."""

    name: str
    url_env: str
    protected: bool = False
    schema: str = "public"

    def url(self) -> str:
        """The environment's URL, read from its variable now (never stored, never logged)."""
        return resolve_url_env(self.url_env, f"environment {self.name!r}", label=self.name)


@dataclass(frozen=True)
class AlembicSettings:
    """Where the application's Alembic project and (optionally) its models live."""

    ini_path: Path | None
    script_location: Path | None
    models: str | None = None
    sys_path: tuple[Path, ...] = ()
    version_table: str = "alembic_version"


@dataclass(frozen=True)
class Settings:
    """The validated configuration. ``path`` is the file it came from."""

    path: Path
    alembic: AlembicSettings
    source: str
    environments: Mapping[str, EnvironmentSettings]
    exclude: tuple[str, ...] = ()
    scratch_url_env: str | None = None
    schema: str = "public"
    reference_path: Path | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def source_environment(self) -> EnvironmentSettings:
        """The environment whose schema is the reference (usually dev)."""
        return self.environments[self.source]

    @property
    def targets(self) -> list[EnvironmentSettings]:
        """Every environment other than the source, in file order: the ones to stamp."""
        return [env for name, env in self.environments.items() if name != self.source]

    def scratch_url(self) -> str:
        """URL of a database on the scratch server (throwaway databases are made there).

        Defaults to the source environment's server when ``scratch`` is not configured.
        """
        if self.scratch_url_env:
            return resolve_url_env(self.scratch_url_env, "scratch", label="scratch")
        return self.source_environment.url()

    def resolved_reference_path(self) -> Path:
        """Where the reference dump is written: ``reference.path`` or next to Alembic."""
        if self.reference_path is not None:
            return self.reference_path
        base = self.alembic.ini_path.parent if self.alembic.ini_path else self.path.parent
        return base / "schema" / "reference.sql"


def resolve_url_env(variable: str, what: str, *, label: str | None = None) -> str:
    """Read a URL from ``variable``; a clear ConfigError when it is unset, empty or bad.

    The URL must parse (:func:`abparts_ops.core.db.parse_url`): a bad port, an unknown
    driver or an unencoded ``@`` is reported naming ``variable``, never the value.
    """
    value = os.environ.get(variable)
    if value is None:
        raise ConfigError(
            f"{what}: environment variable {variable} is not set (export {variable}="
            "postgresql://user:password@host:5432/dbname)."
        )
    if not value.strip():
        raise ConfigError(
            f"{what}: environment variable {variable} is empty (set it to the database URL)."
        )
    try:
        parse_url(value.strip(), label=label or what, variable=variable)
    except DatabaseError as exc:
        raise ConfigError(str(exc)) from None
    return value.strip()


def _resolve(base: Path, value: str) -> Path:
    path = Path(os.path.expanduser(value))
    return (path if path.is_absolute() else base / path).resolve()


class _Problems:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.items: list[str] = []

    def add(self, key: str, message: str) -> None:
        self.items.append(f"{self.path.name}: {key}: {message}")

    def unknown(self, where: str, data: Mapping[str, Any], allowed: set[str]) -> None:
        for key in sorted(set(data) - allowed, key=str):
            if key == "url":  # its value is never echoed
                self.add(
                    f"{where}url",
                    "URLs never go in the file: use `url_env: SOME_VARIABLE` and export it.",
                )
                continue
            close = difflib.get_close_matches(str(key), sorted(allowed), n=1)
            hint = f"did you mean `{close[0]}`? " if close else ""
            self.add(
                f"{where}{key}",
                f"unknown key ({hint}allowed: {', '.join(sorted(allowed))}); remove or rename it.",
            )

    def raise_if_any(self) -> None:
        if self.items:
            raise ConfigError("\n".join(self.items))


def _check_variable_name(problems: _Problems, key: str, value: Any) -> bool:
    """True when ``value`` is a valid variable name; a problem (never echoing a URL) if not."""
    if isinstance(value, str) and _ENV_VAR_RE.match(value):
        return True
    if isinstance(value, str) and "://" in value:
        problems.add(
            key,
            "holds a URL, not a variable name: export the URL in a variable and name the "
            "variable here (URLs never go in the file).",
        )
    else:
        problems.add(key, f"{value!r} is not a valid variable name (letters, digits, _).")
    return False


def _mapping(problems: _Problems, key: str, value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        problems.add(key, f"must be a mapping, got {type(value).__name__}.")
        return {}
    return value


def _parse_alembic(problems: _Problems, base: Path, data: dict[str, Any]) -> AlembicSettings:
    problems.unknown("alembic.", data, _ALEMBIC_KEYS)
    ini_path = script_location = None
    if "config" in data and "script_location" in data:
        problems.add("alembic", "give either `config` or `script_location`, not both.")
    if data.get("config"):
        ini_path = _resolve(base, str(data["config"]))
        if not ini_path.is_file():
            problems.add("alembic.config", f"no file at {ini_path} (fix the path).")
        elif not os.access(ini_path, os.R_OK):
            problems.add("alembic.config", f"{ini_path} is not readable (fix its permissions).")
    elif data.get("script_location"):
        script_location = _resolve(base, str(data["script_location"]))
        if not script_location.is_dir():
            problems.add("alembic.script_location", f"no folder at {script_location}.")
    else:
        problems.add("alembic", "set `config` (path to alembic.ini) or `script_location`.")
    models = data.get("models")
    if models is not None and not (isinstance(models, str) and _MODELS_RE.match(models)):
        problems.add("alembic.models", "must look like `package.module:Base` (import path).")
    raw_sys_path = data.get("sys_path") or []
    if isinstance(raw_sys_path, str):
        raw_sys_path = [raw_sys_path]
    sys_path: list[Path] = []
    if not isinstance(raw_sys_path, list):
        problems.add("alembic.sys_path", "must be a list of folders.")
        raw_sys_path = []
    for entry in raw_sys_path:
        folder = _resolve(base, str(entry))
        if not folder.is_dir():
            problems.add("alembic.sys_path", f"no folder at {folder} (fix or remove it).")
        sys_path.append(folder)
    version_table = str(data.get("version_table") or "alembic_version")
    return AlembicSettings(
        ini_path=ini_path,
        script_location=script_location,
        models=models,
        sys_path=tuple(sys_path),
        version_table=version_table,
    )


def _parse_environments(
    problems: _Problems, data: dict[str, Any]
) -> dict[str, EnvironmentSettings]:
    environments: dict[str, EnvironmentSettings] = {}
    if not data:
        problems.add("environments", "name at least the source environment.")
    for name, raw in data.items():
        key = f"environments.{name}"
        if not isinstance(name, str) or not _NAME_RE.match(name):
            problems.add(key, "names are lower-case letters, digits and _ (start with a letter).")
            continue
        if raw is not None and not isinstance(raw, dict):
            problems.add(
                key,
                f"must be a mapping such as {{url_env: SOME_VARIABLE}}, got {type(raw).__name__}.",
            )
            continue
        env = _mapping(problems, key, raw)
        problems.unknown(f"{key}.", env, _ENV_KEYS)
        if "url" in env:
            continue
        url_env = env.get("url_env")
        if not url_env:
            problems.add(f"{key}.url_env", "missing: name the environment variable with the URL.")
            continue
        if not _check_variable_name(problems, f"{key}.url_env", url_env):
            continue
        protected = env.get("protected", False)
        if not isinstance(protected, bool):
            problems.add(f"{key}.protected", "must be true or false.")
            protected = True
        environments[name] = EnvironmentSettings(
            name=name,
            url_env=url_env,
            protected=protected,
            schema=str(env.get("schema") or "public"),
        )
    return environments


def parse_settings(data: Any, path: Path, *, check_env: bool = True) -> Settings:
    """Validate parsed YAML ``data`` read from ``path``; every problem in one ConfigError.

    With ``check_env`` every named environment variable must be set and non-empty.
    """
    problems = _Problems(path)
    if not isinstance(data, dict):
        problems.add("<file>", "must be a YAML mapping (see README: Configuration).")
        problems.raise_if_any()
    base = path.parent
    problems.unknown("", data, _TOP_KEYS)
    alembic = _parse_alembic(problems, base, _mapping(problems, "alembic", data.get("alembic")))
    raw_envs = _mapping(problems, "environments", data.get("environments"))
    environments = _parse_environments(problems, raw_envs)
    users: dict[str, list[str]] = {}
    for env in environments.values():
        users.setdefault(env.url_env, []).append(env.name)
    for variable, names in users.items():
        if len(names) > 1:
            problems.add(
                f"environments.{names[-1]}.url_env",
                f"{variable} is also the variable of {', '.join(names[:-1])}: each "
                "environment needs its own variable (a stamp must never hit the wrong one).",
            )
    source = data.get("source")
    if not source:
        problems.add("source", "missing: name the environment whose schema is the reference.")
    elif source not in raw_envs:
        problems.add(
            "source",
            f"{source!r} is not among the environments ({', '.join(map(str, raw_envs)) or 'none'}"
            "): name one of them, or add it under `environments`.",
        )
    raw_exclude = data.get("exclude") or []
    if isinstance(raw_exclude, str):
        raw_exclude = [raw_exclude]
    exclude: list[str] = []
    if not isinstance(raw_exclude, list):
        problems.add("exclude", "must be a list of table names or globs.")
        raw_exclude = []
    for pattern in raw_exclude:
        try:
            glob_to_regex(str(pattern))
        except ConfigError as exc:
            problems.add("exclude", str(exc).removeprefix("exclude: "))
            continue
        exclude.append(str(pattern))
    scratch = _mapping(problems, "scratch", data.get("scratch"))
    problems.unknown("scratch.", scratch, _SCRATCH_KEYS)
    scratch_url_env = scratch.get("url_env")
    if scratch_url_env is not None and not _check_variable_name(
        problems, "scratch.url_env", scratch_url_env
    ):
        scratch_url_env = None
    reference = _mapping(problems, "reference", data.get("reference"))
    problems.unknown("reference.", reference, _REFERENCE_KEYS)
    reference_path = _resolve(base, str(reference["path"])) if reference.get("path") else None
    if check_env:
        variables = [(f"environments.{e.name}.url_env", e.url_env) for e in environments.values()]
        if scratch_url_env:
            variables.append(("scratch.url_env", str(scratch_url_env)))
        for key, variable in variables:
            value = os.environ.get(variable)
            if value is None:
                problems.add(key, f"environment variable {variable} is not set (export it).")
            elif not value.strip():
                problems.add(key, f"environment variable {variable} is empty (set it to a URL).")
    problems.raise_if_any()
    return Settings(
        path=path,
        alembic=alembic,
        source=str(source),
        environments=environments,
        exclude=tuple(exclude),
        scratch_url_env=str(scratch_url_env) if scratch_url_env else None,
        schema=str(data.get("schema") or "public"),
        reference_path=reference_path,
    )


def load_settings(path: Path | str | None = None, *, check_env: bool = True) -> Settings:
    """Load and validate the configuration at ``path`` (default: ``$ABPARTS_OPS_CONFIG``)."""
    if path is None:
        raw = os.environ.get(CONFIG_ENV)
        if not raw:
            raise ConfigError(
                f"{CONFIG_ENV} is not set: point it at your abparts_ops.yaml "
                "(or leave it unset in the Dagster project to use the embedded demo)."
            )
        path = raw
    config_path = Path(path).expanduser().resolve()
    if not config_path.is_file():
        raise ConfigError(f"{config_path}: no configuration file there (fix {CONFIG_ENV}).")
    try:
        data = yaml.safe_load(config_path.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{config_path.name}: not valid YAML{where} (fix the syntax).") from None
    except OSError as exc:
        raise ConfigError(f"{config_path}: cannot read it ({exc.strerror}).") from None
    return parse_settings(data, config_path, check_env=check_env)
