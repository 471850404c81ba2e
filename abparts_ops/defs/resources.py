"""Dagster resources built from the configuration file.

Database URLs reach Dagster only as ``EnvVar`` references, so the UI and the run config
show variable names, never values.
"""


import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg

from abparts_ops.core.db import parse_url
from abparts_ops.core.errors import ConfigError, DatabaseError
from abparts_ops.core.history.project import AlembicProject, load_project
from abparts_ops.core.settings import Settings


class DatabaseResource(dg.ConfigurableResource):
    """One environment's database (or the scratch server): name, URL variable, policy."""

    environment: str
    url: str
    protected: bool = False
    schema_name: str = "public"
    url_env: str | None = None

    def get_url(self) -> str:
        """The URL, checked to be non-empty and valid; never log or attach it anywhere."""
        if not self.url or not self.url.strip():
            raise ConfigError(
                f"environment {self.environment!r}: its URL variable is empty (set it to "
                "postgresql://user:password@host:5432/dbname)."
            )
        try:
            parse_url(self.url.strip(), label=self.environment, variable=self.url_env)
        except DatabaseError as exc:
            raise ConfigError(str(exc)) from None
        return self.url.strip()


class AlembicResource(dg.ConfigurableResource):
    """The application's Alembic project and, optionally, its SQLAlchemy models."""

    ini_path: str | None = None
    script_location: str | None = None
    version_table: str = "alembic_version"
    models: str | None = None
    sys_path: list[str] = []

    def project(self) -> AlembicProject:
        """Load the project (raises a one-line MigrationError on bad input)."""
        return load_project(
            ini_path=Path(self.ini_path) if self.ini_path else None,
            script_location=Path(self.script_location) if self.script_location else None,
            version_table=self.version_table,
        )

    @contextmanager
    def models_path(self) -> Iterator[None]:
        """Put the configured folders first on ``sys.path`` while models are imported."""
        added = [p for p in self.sys_path if p not in sys.path]
        sys.path[:0] = added
        try:
            yield
        finally:
            for entry in added:
                if entry in sys.path:
                    sys.path.remove(entry)


class SchemaPolicyResource(dg.ConfigurableResource):
    """What is compared: the source environment, the schema, the exclusions."""

    source: str
    schema_name: str = "public"
    exclude: list[str] = []
    reference_path: str
    compare_privileges: bool = False
    """Read granted privileges too (config ``compare_privileges``), everywhere alike."""


def env_resource_key(environment: str) -> str:
    """Resource key of an environment's database resource."""
    return f"db_{environment}"


def build_resources(settings: Settings) -> dict[str, dg.ConfigurableResource]:
    """Every resource the definitions need, from the validated settings."""
    alembic = settings.alembic
    resources: dict[str, dg.ConfigurableResource] = {
        "alembic": AlembicResource(
            ini_path=str(alembic.ini_path) if alembic.ini_path else None,
            script_location=str(alembic.script_location) if alembic.script_location else None,
            version_table=alembic.version_table,
            models=alembic.models,
            sys_path=[str(p) for p in alembic.sys_path],
        ),
        "policy": SchemaPolicyResource(
            source=settings.source,
            schema_name=settings.schema,
            exclude=list(settings.exclude),
            reference_path=str(settings.resolved_reference_path()),
            compare_privileges=settings.compare_privileges,
        ),
        "scratch": DatabaseResource(
            environment="scratch",
            url=dg.EnvVar(settings.scratch_url_env or settings.source_environment.url_env),
            url_env=settings.scratch_url_env or settings.source_environment.url_env,
        ),
    }
    for env in settings.environments.values():
        resources[env_resource_key(env.name)] = DatabaseResource(
            environment=env.name,
            url=dg.EnvVar(env.url_env),
            url_env=env.url_env,
            protected=env.protected,
            schema_name=env.schema,
        )
    return resources
