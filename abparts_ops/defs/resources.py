"""Dagster resources that read the one configuration: the validated ``Settings``.

The configuration has one shape, :class:`~abparts_ops.core.settings.Settings` (frozen
pydantic models, validated from the file). The resources do not copy its fields: each
holds the ``Settings`` object itself, as a ``dg.ResourceDependency[Settings]``, and
its methods and properties read from it (``alembic.project()``, ``policy.exclude``, an
environment's ``protected``). Dagster's nested resource *config* would have to be
``dg.Config`` classes of Dagster's own config types (no ``Path``, no models of
``core/``, which imports no Dagster), so it would be a second, hand-kept copy of the
shape; a resource dependency takes any Python object, and Dagster passes it through
unchanged when it builds the resources of a run (the run's process loads the
definitions, and so the file, itself).

Database URLs reach Dagster only as ``EnvVar`` references (``DatabaseResource.url``, whose
other config field is the environment's name), so the UI and the run config show
variable names, never values; the ``Settings`` object holds variable names only. The UI
lists the ``Settings`` object as each resource's nested (anonymous) resource; the values
it holds are in the file, and no run config overrides them.
"""

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg

from abparts_ops.core.db import parse_url
from abparts_ops.core.errors import ConfigError, DatabaseError
from abparts_ops.core.history.project import AlembicProject, load_project
from abparts_ops.core.settings import AlembicSettings, EnvironmentSettings, Settings


class DatabaseResource(dg.ConfigurableResource):
    """One environment's database (or, ``environment=None``, the scratch server).

    ``url`` is an ``EnvVar`` of the environment's variable; the rest (the variable's
    name, ``protected``, the schema) is read from ``settings``.
    """

    settings: dg.ResourceDependency[Settings]
    url: str
    environment: str | None = None

    @property
    def env(self) -> EnvironmentSettings | None:
        """The environment's settings (None for the scratch server)."""
        return None if self.environment is None else self.settings.environments[self.environment]

    @property
    def label(self) -> str:
        """The environment's name, or ``scratch``."""
        return "scratch" if self.environment is None else self.environment

    @property
    def url_env(self) -> str:
        """The variable holding the URL (its name only)."""
        env = self.env
        return self.settings.scratch_variable if env is None else env.url_env

    @property
    def protected(self) -> bool:
        """Whether the environment is protected (the scratch server never is)."""
        env = self.env
        return env is not None and env.protected

    @property
    def schema_name(self) -> str:
        """The environment's schema (``public`` for the scratch server)."""
        env = self.env
        return "public" if env is None else env.schema

    def get_url(self) -> str:
        """The URL, checked to be non-empty and valid; never log or attach it anywhere."""
        if not self.url or not self.url.strip():
            raise ConfigError(
                f"environment {self.label!r}: its URL variable is empty (set it to "
                "postgresql://user:password@host:5432/dbname)."
            )
        try:
            parse_url(self.url.strip(), label=self.label, variable=self.url_env)
        except DatabaseError as exc:
            raise ConfigError(str(exc)) from None
        return self.url.strip()


class AlembicResource(dg.ConfigurableResource):
    """The application's Alembic project and, optionally, its SQLAlchemy models.

    Reads ``settings.alembic``.
    """

    settings: dg.ResourceDependency[Settings]

    @property
    def config(self) -> AlembicSettings:
        """The ``alembic`` section of the configuration."""
        return self.settings.alembic

    @property
    def ini_path(self) -> Path | None:
        """The alembic.ini (None when ``script_location`` is given instead)."""
        return self.config.ini_path

    @property
    def script_location(self) -> Path | None:
        """The revision scripts' folder, when given without an ini."""
        return self.config.script_location

    @property
    def version_table(self) -> str:
        """Alembic's version table."""
        return self.config.version_table

    @property
    def models(self) -> str | None:
        """The models' import path (``package.module:Base``), if configured."""
        return self.config.models

    @property
    def sys_path(self) -> tuple[Path, ...]:
        """Folders put first on ``sys.path`` while the models are imported."""
        return self.config.sys_path

    def project(self) -> AlembicProject:
        """Load the project (raises a one-line MigrationError on bad input)."""
        return load_project(
            ini_path=self.ini_path,
            script_location=self.script_location,
            version_table=self.version_table,
        )

    @contextmanager
    def models_path(self) -> Iterator[None]:
        """Put the configured folders first on ``sys.path`` while models are imported."""
        added = [str(p) for p in self.sys_path if str(p) not in sys.path]
        sys.path[:0] = added
        try:
            yield
        finally:
            for entry in added:
                if entry in sys.path:
                    sys.path.remove(entry)


class SchemaPolicyResource(dg.ConfigurableResource):
    """What is compared: the source environment, the schema, the exclusions.

    Reads ``settings``.
    """

    settings: dg.ResourceDependency[Settings]

    @property
    def source(self) -> str:
        """The source environment's name."""
        return self.settings.source

    @property
    def schema_name(self) -> str:
        """The schema compared."""
        return self.settings.schema

    @property
    def exclude(self) -> tuple[str, ...]:
        """The tables left out of every comparison (names or globs)."""
        return self.settings.exclude

    @property
    def reference_path(self) -> Path:
        """Where the reference dump is written."""
        return self.settings.resolved_reference_path()

    @property
    def compare_privileges(self) -> bool:
        """Read granted privileges too (config ``compare_privileges``), everywhere alike."""
        return self.settings.compare_privileges


def env_resource_key(environment: str) -> str:
    """Resource key of an environment's database resource."""
    return f"db_{environment}"


def build_resources(settings: Settings) -> dict[str, dg.ConfigurableResource]:
    """Every resource the definitions need, each reading ``settings``."""
    resources: dict[str, dg.ConfigurableResource] = {
        "alembic": AlembicResource(settings=settings),
        "policy": SchemaPolicyResource(settings=settings),
        "scratch": DatabaseResource(settings=settings, url=dg.EnvVar(settings.scratch_variable)),
    }
    for name, env in settings.environments.items():
        resources[env_resource_key(name)] = DatabaseResource(
            settings=settings, url=dg.EnvVar(env.url_env), environment=name
        )
    return resources
