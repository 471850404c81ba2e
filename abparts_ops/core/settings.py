"""The project's configuration file: load, validate, and explain every problem at once.

One YAML file (path in ``ABPARTS_OPS_CONFIG``) names the Alembic project, the source
environment, the exclusions, the scratch server and every environment. Database URLs
are never in the file: each environment names the environment variable that holds its
URL. Relative paths are relative to the file.

The file's shape is declared once, as frozen pydantic models (``extra="forbid"``,
patterns for names, validators for the rules that span fields), and the validated
models are the settings themselves: :class:`Settings` and its parts are what the CLI,
the core and the Dagster resources read, with no second copy. An attribute is named for
what code reads (``ini_path``) and its alias for the file's key (``config``). Two
attributes are not keys of the file and are filled in while it is validated:
:attr:`Settings.path` and :attr:`EnvironmentSettings.name` (the environment's key under
``environments``).

A duplicate key anywhere in the YAML is refused with its line (YAML itself would keep
the last one silently, and with it drop a ``protected: true``). Every problem is
collected and raised as one :class:`~abparts_ops.core.errors.ConfigError` with one line
per problem, each naming the dotted key and the fix (:func:`_format_error` turns
pydantic's errors into those lines; a URL's value is never echoed).
"""

from __future__ import annotations

import difflib
import os
import re
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    StrictBool,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from abparts_ops.core.db import parse_url
from abparts_ops.core.errors import ConfigError, DatabaseError, MigrationError
from abparts_ops.core.schema.exclusions import glob_to_regex

CONFIG_ENV = "ABPARTS_OPS_CONFIG"

_NAME_PATTERN = r"^[a-z][a-z0-9_]*$"
_ENV_VAR_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_MODELS_PATTERN = r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$"
_RULE_PATTERN = r"^[a-z][a-z0-9-]*$"


# ------------------------------------------------------------------ the simple sections


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ProbeSettings(_Strict):
    """The drift sensor's probes: a hanging host costs ``connect_timeout_s``, once."""

    connect_timeout_s: float = Field(3, gt=0, le=60)
    """libpq's connect timeout for each probe (whole seconds, at least 1, are used)."""
    timeout_s: float = Field(10, gt=0, le=300)
    """The whole probe's deadline (connection plus statements)."""


class LintExclusion(_Strict):
    """A squawk rule the guarded upgrade does not apply, and why (the reason is required).

    The rule must be one squawk knows (or one of the project's own): a misspelt name is
    refused when the file loads, with the closest names, not after a rehearsal. When
    squawk is not installed the name is kept unchecked (the lint says what is missing).
    """

    rule: str = Field(pattern=_RULE_PATTERN)
    reason: str = Field(min_length=1)

    @field_validator("rule")
    @classmethod
    def _rule_known(cls, value: str) -> str:
        # Imported here: the lint module loads Alembic, which loading a file does not need.
        from abparts_ops.core.rollout.lint import describe_unknown_rules, unknown_rules

        try:
            unknown = unknown_rules([value])
        except MigrationError:
            return value
        if unknown:
            raise _problem(describe_unknown_rules(unknown))
        return value

    @field_validator("reason")
    @classmethod
    def _reason_not_blank(cls, value: str) -> str:
        if not value.strip():
            raise PydanticCustomError("blank_reason", "give the reason for leaving the rule out.")
        return value.strip()


class SquawkSettings(_Strict):
    """The migration linter's settings."""

    exclude: tuple[LintExclusion, ...] = ()


class RehearsalSettings(_Strict):
    """What the upgrade's rehearsal copies to the scratch server, and for how long.

    An environment whose ``pg_database_size`` is at most ``max_bytes`` is copied with its
    rows (a copy of prod's data: the scratch server must be as trusted as prod; the copy
    is dropped at the end of the run, failure or not); a larger one is copied schema
    only, and read-only pre-checks derived from the rehearsed statements run on the
    environment instead. ``schema_only_tables`` (names or globs) are copied without
    their rows even when the database fits. ``timeout_s`` bounds the copy.
    """

    max_bytes: int = Field(1 << 30, ge=0)
    schema_only_tables: tuple[str, ...] = ()
    timeout_s: float = Field(1800, gt=0, le=86400)


class UpgradeSettings(_Strict):
    """The guarded upgrade: how long it waits for locks and for each statement."""

    lock_timeout_s: float = Field(5, gt=0, le=3600)
    statement_timeout_s: float = Field(900, gt=0, le=86400)
    squawk: SquawkSettings = SquawkSettings()
    rehearsal: RehearsalSettings = RehearsalSettings()


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


# ------------------------------------------------------ the file's shape: the settings


def _problem(message: str) -> PydanticCustomError:
    """A validation error whose text is ``message`` as it is (one line, with the fix)."""
    return PydanticCustomError("abparts", "{message}", {"message": message})


def _base(info: ValidationInfo) -> Path:
    context = info.context or {}
    return Path(context.get("base", "."))


def _resolve(base: Path, value: str) -> Path:
    path = Path(os.path.expanduser(value))
    return (path if path.is_absolute() else base / path).resolve()


def _as_list(value: Any) -> Any:
    if value is None:
        return []
    return [value] if isinstance(value, str) else value


def _check_variable(value: Any) -> Any:
    """A variable name; a URL in its place is refused without echoing it."""
    if isinstance(value, str) and _ENV_VAR_RE.match(value):
        return value
    if isinstance(value, str) and "://" in value:
        raise _problem(
            "holds a URL, not a variable name: export the URL in a variable and name the "
            "variable here (URLs never go in the file)."
        )
    raise _problem(f"{value!r} is not a valid variable name (letters, digits, _).")


def _default_if_unset(default: str) -> BeforeValidator:
    """An unset or empty value (``key:`` or ``key: ""``) stands for ``default``."""
    return BeforeValidator(lambda value: default if value is None or value == "" else value)


VariableName = Annotated[str, BeforeValidator(_check_variable)]
EnvironmentName = Annotated[str, Field(pattern=_NAME_PATTERN)]
SchemaName = Annotated[str, _default_if_unset("public")]


class EnvironmentSettings(_Strict):
    """One database environment: its name, the variable holding its URL, protection.

    ``block_on_lint_errors`` (the guarded upgrade stops on a lint error) defaults to
    ``protected``. ``name`` is the environment's key under ``environments`` (given by
    :class:`Settings` as it validates the file, or by :meth:`named`).
    """

    url_env: VariableName
    protected: StrictBool = False
    schema_name: SchemaName = Field("public", alias="schema")
    block_on_lint_errors: StrictBool | None = None
    _name: str = PrivateAttr("")

    @model_validator(mode="before")
    @classmethod
    def _blocks_when_protected(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("block_on_lint_errors") is None:
            protected = data.get("protected", False)
            if isinstance(protected, bool):
                return {**data, "block_on_lint_errors": protected}
        return data

    @classmethod
    def named(cls, name: str, **fields: Any) -> EnvironmentSettings:
        """The environment ``name`` with ``fields`` (the keys of its mapping in the file)."""
        env = cls(**fields)
        env._name = name
        return env

    @property
    def name(self) -> str:
        """The environment's name (its key under ``environments``)."""
        return self._name

    @property
    def schema(self) -> str:
        """The schema compared and stamped (``schema``, default ``public``)."""
        return self.schema_name

    def url(self) -> str:
        """The environment's URL, read from its variable now (never stored, never logged)."""
        return resolve_url_env(self.url_env, f"environment {self.name!r}", label=self.name)


class ScratchSettings(_Strict):
    """The scratch server (throwaway databases): the variable holding its URL."""

    url_env: VariableName | None = None


class ReferenceSettings(_Strict):
    """Where the reference dump is written (``path``, relative to the file)."""

    path: Path | None = None

    @field_validator("path", mode="before")
    @classmethod
    def _relative_to_file(cls, value: Any, info: ValidationInfo) -> Any:
        if value is None or isinstance(value, Path):
            return value
        if not isinstance(value, str):
            raise PydanticCustomError("string_type", "Input should be a valid string")
        return _resolve(_base(info), value) if value else None


class AlembicSettings(_Strict):
    """Where the application's Alembic project and (optionally) its models live.

    Give either ``config`` (the alembic.ini, read as ``ini_path``) or ``script_location``;
    relative paths are relative to the file.
    """

    ini_path: Path | None = Field(None, alias="config")
    script_location: Path | None = None
    models: str | None = Field(None, pattern=_MODELS_PATTERN)
    sys_path: tuple[Path, ...] = ()
    version_table: Annotated[str, _default_if_unset("alembic_version")] = "alembic_version"

    @field_validator("ini_path", mode="before")
    @classmethod
    def _config_file(cls, value: Any, info: ValidationInfo) -> Any:
        if not value:
            return None
        path = _resolve(_base(info), str(value))
        if not path.is_file():
            raise _problem(f"no file at {path} (fix the path).")
        if not os.access(path, os.R_OK):
            raise _problem(f"{path} is not readable (fix its permissions).")
        return path

    @field_validator("script_location", mode="before")
    @classmethod
    def _script_folder(cls, value: Any, info: ValidationInfo) -> Any:
        if not value:
            return None
        path = _resolve(_base(info), str(value))
        if not path.is_dir():
            raise _problem(f"no folder at {path}.")
        return path

    @field_validator("sys_path", mode="before")
    @classmethod
    def _folders(cls, value: Any, info: ValidationInfo) -> Any:
        value = _as_list(value)
        if not isinstance(value, list):
            raise _problem("must be a list of folders.")
        folders = [_resolve(_base(info), str(entry)) for entry in value]
        for folder in folders:
            if not folder.is_dir():
                raise _problem(f"no folder at {folder} (fix or remove it).")
        return tuple(folders)

    @model_validator(mode="before")
    @classmethod
    def _one_location(cls, data: Any) -> Any:
        if isinstance(data, dict):
            if "config" in data and "script_location" in data:
                raise _problem("give either `config` or `script_location`, not both.")
            if not data.get("config") and not data.get("script_location"):
                raise _problem("set `config` (path to alembic.ini) or `script_location`.")
        return data


def _check_pattern(value: Any) -> Any:
    try:
        glob_to_regex(str(value))
    except ConfigError as exc:
        raise _problem(str(exc).removeprefix("exclude: ")) from None
    return str(value)


class Settings(_Strict):
    """The validated configuration: the file's shape, and what everything else reads.

    :attr:`path` is the file it came from. Cross-field rules are in
    :class:`_CrossFieldRules`.
    """

    alembic: AlembicSettings
    source: Annotated[str, _default_if_unset("")] = ""
    exclude: Annotated[
        tuple[Annotated[str, BeforeValidator(_check_pattern)], ...], BeforeValidator(_as_list)
    ] = ()
    scratch: ScratchSettings = ScratchSettings()
    environments: dict[EnvironmentName, EnvironmentSettings] = Field(default_factory=dict)
    schema_name: SchemaName = Field("public", alias="schema")
    reference: ReferenceSettings = ReferenceSettings()
    compare_privileges: StrictBool = False
    probe: ProbeSettings = ProbeSettings()
    upgrade: UpgradeSettings = UpgradeSettings()
    _path: Path = PrivateAttr(Path("."))

    @field_validator("alembic", "scratch", "reference", "probe", "upgrade", mode="before")
    @classmethod
    def _empty_section(cls, value: Any, info: ValidationInfo) -> Any:
        return {} if value is None else value

    @field_validator("environments", mode="before")
    @classmethod
    def _environment_mappings(cls, value: Any) -> Any:
        if value is None:
            return {}
        if isinstance(value, dict):
            return {name: {} if raw is None else raw for name, raw in value.items()}
        return value

    @model_validator(mode="after")
    def _names(self, info: ValidationInfo) -> Settings:
        """Each environment gets its name (its key); the settings, the file's path."""
        for name, env in self.environments.items():
            env._name = name
        self._path = Path((info.context or {}).get("path", "."))
        return self

    @property
    def path(self) -> Path:
        """The configuration file these settings were read from."""
        return self._path

    @property
    def schema(self) -> str:
        """The schema compared (``schema``, default ``public``)."""
        return self.schema_name

    @property
    def scratch_url_env(self) -> str | None:
        """The variable of the scratch server's URL (``scratch.url_env``), if configured."""
        return self.scratch.url_env

    @property
    def scratch_variable(self) -> str:
        """The variable :meth:`scratch_url` reads: ``scratch.url_env`` or the source's."""
        return self.scratch.url_env or self.source_environment.url_env

    @property
    def reference_path(self) -> Path | None:
        """``reference.path``, resolved against the file (None when not configured)."""
        return self.reference.path

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


def _rule(key: str, message: str) -> PydanticCustomError:
    return PydanticCustomError("abparts", "{message}", {"message": message, "key": key})


class _CrossFieldRules(BaseModel):
    """The rules that span fields, checked on the raw file even when a field is wrong.

    Separate field validators, so that each rule is reported beside the others.
    """

    model_config = ConfigDict(extra="allow")

    environments: Any = Field(None, validate_default=True)
    source: Any = Field(None, validate_default=True)

    @field_validator("environments")
    @classmethod
    def _own_variables(cls, value: Any) -> Any:
        environments = value if isinstance(value, dict) else {}
        if not environments:
            raise _rule("environments", "name at least the source environment.")
        users: dict[str, list[str]] = {}
        for name, raw in environments.items():
            if isinstance(raw, dict) and isinstance(raw.get("url_env"), str):
                users.setdefault(raw["url_env"], []).append(str(name))
        for variable, names in users.items():
            if len(names) > 1:
                raise _rule(
                    f"environments.{names[-1]}.url_env",
                    f"{variable} is also the variable of {', '.join(names[:-1])}: each "
                    "environment needs its own variable (a stamp must never hit the wrong one).",
                )
        return value

    @field_validator("source")
    @classmethod
    def _source_is_an_environment(cls, value: Any, info: ValidationInfo) -> Any:
        if not value:
            raise _rule("source", "missing: name the environment whose schema is the reference.")
        raw = (info.context or {}).get("environments")
        environments = raw if isinstance(raw, dict) else {}
        if value not in environments:
            known = ", ".join(map(str, environments)) or "none"
            raise _rule(
                "source",
                f"{value!r} is not among the environments ({known}): name one of them, or add "
                "it under `environments`.",
            )
        return value


# ------------------------------------------------------------------- pydantic -> lines


def _model_at(loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The model that validates the mapping at ``loc`` of the file (None if not one)."""
    current: Any = Settings
    for part in loc:
        if isinstance(current, type) and issubclass(current, BaseModel):
            fields = {f.alias or name: f for name, f in current.model_fields.items()}
            if part not in fields:
                return None
            current = fields[part].annotation
        else:  # a dict[...] or tuple[...]: the key or index picks an item
            args = [a for a in typing.get_args(current) if a is not Ellipsis]
            if not args:
                return None
            current = args[-1]
        if typing.get_origin(current) in (typing.Union, types.UnionType):
            current = next(a for a in typing.get_args(current) if a is not type(None))
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _allowed(model: type[BaseModel]) -> list[str]:
    return sorted(f.alias or name for name, f in model.model_fields.items())


def _dotted(loc: tuple[Any, ...]) -> str:
    return ".".join(str(part) for part in loc if not isinstance(part, int)) or "<file>"


_MESSAGES = {
    "bool_type": "must be true or false.",
    "missing": "missing.",
    "string_type": "must be a string.",
    "float_parsing": "must be a number.",
    "float_type": "must be a number.",
    "greater_than": "must be greater than {gt:g}.",
    "less_than_equal": "must be at most {le:g}.",
    "too_short": "must not be empty.",
    "string_too_short": "must not be empty.",
}
_MISSING = {
    "alembic": "set `config` (path to alembic.ini) or `script_location`.",
    "url_env": "missing: name the environment variable with the URL.",
    "rule": "missing: name the squawk rule (e.g. prefer-robust-stmts).",
    "reason": "missing: say why the rule is left out (a reason is required).",
}
_PATTERNS = {
    "models": "must look like `package.module:Base` (import path).",
    "rule": "must be a squawk rule name such as prefer-robust-stmts.",
}
_NAME_MESSAGE = "names are lower-case letters, digits and _ (start with a letter)."


def _format_error(error: Mapping[str, Any]) -> tuple[str, str] | None:
    """One pydantic error as (dotted key, message); None for an error already told."""
    loc = tuple(error["loc"])
    kind = error["type"]
    ctx = error.get("ctx") or {}
    if kind == "abparts":
        return str(ctx.get("key") or _dotted(loc)), str(ctx["message"])
    if loc and loc[-1] == "[key]":
        return _dotted(loc[:-1]), _NAME_MESSAGE
    if kind == "extra_forbidden":
        key = str(loc[-1])
        if key == "url":  # its value is never echoed
            return (
                _dotted(loc),
                "URLs never go in the file: use `url_env: SOME_VARIABLE` and export it.",
            )
        model = _model_at(loc[:-1])
        allowed = _allowed(model) if model else []
        close = difflib.get_close_matches(key, allowed, n=1)
        hint = f"did you mean `{close[0]}`? " if close else ""
        return (
            _dotted(loc),
            f"unknown key ({hint}allowed: {', '.join(allowed)}); remove or rename it.",
        )
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        got = type(error.get("input")).__name__
        if len(loc) == 2 and loc[0] == "environments":
            return (
                _dotted(loc),
                f"must be a mapping such as {{url_env: SOME_VARIABLE}}, got {got}.",
            )
        return _dotted(loc), f"must be a mapping, got {got}."
    if kind in ("tuple_type", "list_type"):
        return _dotted(loc), "must be a list."
    if kind == "missing" and loc and loc[-1] in _MISSING:
        return _dotted(loc), _MISSING[str(loc[-1])]
    if kind == "string_pattern_mismatch":
        return _dotted(loc), _PATTERNS.get(str(loc[-1]), _NAME_MESSAGE)
    template = _MESSAGES.get(kind)
    if template is None:
        return _dotted(loc), str(error.get("msg", "is not valid")).rstrip(".") + "."
    return _dotted(loc), template.format(**ctx)


def _problems_of(exc: ValidationError) -> list[tuple[str, str]]:
    found = [
        item for error in exc.errors(include_url=False) if (item := _format_error(error))
    ]
    # An environment with a `url` key has already been told where its URL goes.
    told = {key.removesuffix(".url") for key, _ in found if key.endswith(".url")}
    return [(k, m) for k, m in found if not (k.endswith(".url_env") and k[:-8] in told)]


# ------------------------------------------------------------------------- the loaders


def parse_settings(data: Any, path: Path, *, check_env: bool = True) -> Settings:
    """Validate parsed YAML ``data`` read from ``path``; every problem in one ConfigError.

    With ``check_env`` every named environment variable must be set and non-empty.
    """
    if not isinstance(data, dict):
        raise ConfigError(
            f"{path.name}: <file>: must be a YAML mapping (see README: Configuration)."
        )
    problems: list[tuple[str, str]] = []
    settings: Settings | None = None
    try:
        settings = Settings.model_validate(data, context={"base": path.parent, "path": path})
    except ValidationError as exc:
        problems.extend(_problems_of(exc))
    try:
        _CrossFieldRules.model_validate(data, context={"environments": data.get("environments")})
    except ValidationError as exc:
        problems.extend(_problems_of(exc))
    if check_env:
        problems.extend(_variable_problems(data))
    if problems:
        raise ConfigError("\n".join(f"{path.name}: {key}: {message}" for key, message in problems))
    assert settings is not None
    return settings


def _variable_problems(data: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Each variable the file names (validly) that is unset or empty: one problem each."""
    named: list[tuple[str, Any]] = []
    environments = data.get("environments")
    if isinstance(environments, dict):
        for name, raw in environments.items():
            if isinstance(raw, dict) and re.match(_NAME_PATTERN, str(name)):
                named.append((f"environments.{name}.url_env", raw.get("url_env")))
    scratch = data.get("scratch")
    if isinstance(scratch, dict):
        named.append(("scratch.url_env", scratch.get("url_env")))
    problems: list[tuple[str, str]] = []
    for key, variable in named:
        if not (isinstance(variable, str) and _ENV_VAR_RE.match(variable)):
            continue
        value = os.environ.get(variable)
        if value is None:
            problems.append((key, f"environment variable {variable} is not set (export it)."))
        elif not value.strip():
            problems.append((key, f"environment variable {variable} is empty (set it to a URL)."))
    return problems


class _UniqueKeyLoader(yaml.SafeLoader):
    """A SafeLoader that refuses a key given twice in one mapping, naming both lines."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _value in node.value:
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            try:
                first = seen.get(key)
            except TypeError:  # an unhashable key: SafeLoader reports it itself
                continue
            if first is not None:
                raise _DuplicateKey(key, line, first)
            seen[key] = line
        return super().construct_mapping(node, deep=deep)


class _DuplicateKey(Exception):
    def __init__(self, key: Any, line: int, first: int) -> None:
        super().__init__(key, line, first)
        self.key, self.line, self.first = key, line, first


def read_yaml(path: Path) -> Any:
    """The YAML document at ``path``; a duplicate key or bad syntax is a ConfigError line."""
    try:
        return yaml.load(path.read_text(), Loader=_UniqueKeyLoader)  # noqa: S506 - SafeLoader
    except _DuplicateKey as dup:
        raise ConfigError(
            f"{path.name}: line {dup.line}: key `{dup.key}` is given twice (first at line "
            f"{dup.first}); YAML would silently keep only the last one: merge them into one."
        ) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path.name}: not valid YAML{where} (fix the syntax).") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read it ({exc.strerror}).") from None


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
    return parse_settings(read_yaml(config_path), config_path, check_env=check_env)
