"""Assembles the Dagster definitions: the only place the asset graph is wired.

``defs`` is loaded lazily by Dagster; tests call :func:`build_definitions` with settings
of their own.
"""

from __future__ import annotations

import dagster as dg

from abparts_ops.core.settings import Settings
from abparts_ops.defs.baseline_assets import (
    baseline_revision,
    build_baseline_checks,
    history_checks,
    migration_history,
)
from abparts_ops.defs.environment_assets import build_environment_defs, head_matches_source_schema
from abparts_ops.defs.history_assets import expected_schemas
from abparts_ops.defs.jobs import (
    build_stamp_jobs,
    build_upgrade_jobs,
    refresh_history_job,
    reset_baseline_job,
)
from abparts_ops.defs.live_assets import build_live_checks, build_live_specs
from abparts_ops.defs.project_settings import load_project_settings
from abparts_ops.defs.resources import DatabaseResource, build_resources, env_resource_key
from abparts_ops.defs.schedules import build_schedules
from abparts_ops.defs.schema_assets import reference_dump, source_schema
from abparts_ops.defs.sensors import build_sensors
from abparts_ops.defs.upgrade_assets import build_upgrade_defs


def build_definitions(settings: Settings, *, demo: bool | None = None) -> dg.Definitions:
    """Every asset, check, job, sensor, schedule and resource for ``settings``.

    ``demo`` (default: no ``ABPARTS_OPS_CONFIG``) starts sensors and the schedule running;
    with a production configuration they start stopped. Every environment, the source
    included, gets its stamp, checks and ``stamp_<env>`` job, and its guarded upgrade
    (``<env>/alembic_upgrade``, ``upgrade_<env>``).
    """
    resources = build_resources(settings)
    source = resources[env_resource_key(settings.source)]
    assert isinstance(source, DatabaseResource)
    resources["source_db"] = source
    environment = build_environment_defs(settings)
    upgrades = build_upgrade_defs(settings)
    jobs = [
        reset_baseline_job,
        refresh_history_job,
        *build_stamp_jobs(settings),
        *build_upgrade_jobs(settings),
    ]
    return dg.Definitions(
        assets=[
            source_schema,
            reference_dump,
            migration_history,
            baseline_revision,
            expected_schemas,
            *environment.assets,
            *upgrades.assets,
            *build_live_specs(settings),
        ],
        asset_checks=[
            *history_checks,
            build_baseline_checks(settings.alembic.models is not None),
            head_matches_source_schema,
            *environment.checks,
            *build_live_checks(settings),
        ],
        jobs=jobs,
        sensors=[*build_sensors(settings, demo=demo), *environment.sensors],
        schedules=[*build_schedules(settings, demo=demo), *environment.schedules],
        resources=resources,
    )


@dg.definitions
def defs() -> dg.Definitions:
    """The code location: the configured project, or the embedded demo without one."""
    return build_definitions(load_project_settings())
