"""Fixtures of the drift-watch tests: demo environments, definitions, an instance.

Once per package: a copy of the demo Alembic project in a temporary folder, a
configuration of our own (URLs in variables only this package uses), ``dev``,
``staging`` and ``prod`` cloned from the demo template under a unique prefix (prod's
version row set to the head, as after a stamp, so everything starts in sync), a
temporary Dagster instance and one real materialization of ``source_schema`` and of
``expected_schemas`` on it: the history's schema per revision, the reference the drift
sensor compares each environment with.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from abparts_ops.core.db import drop_database, make_engine
from abparts_ops.core.settings import Settings, load_settings
from abparts_ops.defs.baseline_assets import migration_history
from abparts_ops.defs.environment_assets import build_environment_defs
from abparts_ops.defs.history_assets import expected_schemas
from abparts_ops.defs.jobs import build_stamp_jobs, refresh_history_job
from abparts_ops.defs.live_assets import build_live_checks, build_live_specs
from abparts_ops.defs.resources import build_resources, env_resource_key
from abparts_ops.defs.schedules import build_schedules
from abparts_ops.defs.schema_assets import source_schema
from abparts_ops.defs.sensors import build_sensors
from abparts_ops.embedded.demo import (
    DEMO_OLD_HEAD,
    DemoLayout,
    build_environments,
    build_template,
    demo_database_name,
    prepare_demo_project,
)
from abparts_ops_tests.demo_config import demo_config_yaml, url_variable

NAMES = ("dev", "staging", "prod")


def variable(env: str) -> str:
    """The variable holding ``env``'s URL in these tests."""
    return url_variable("DRIFTTEST", env)


def config_yaml(extra: Mapping[str, str] = {}) -> str:  # noqa: B006 - read only
    """The test configuration: the demo's, with this package's variables (+ ``extra``)."""
    return demo_config_yaml("DRIFTTEST", extra=extra)


def make_definitions(settings: Settings, *, demo: bool = True) -> dg.Definitions:
    """The definitions the drift watch lives in (as the lead wires them)."""
    resources: dict[str, Any] = dict(build_resources(settings))
    resources["source_db"] = resources[env_resource_key(settings.source)]
    environment = build_environment_defs(settings)
    return dg.Definitions(
        assets=[
            source_schema,
            migration_history,
            expected_schemas,
            *environment.assets,
            *build_live_specs(settings),
        ],
        asset_checks=[*environment.checks, *build_live_checks(settings)],
        jobs=[*build_stamp_jobs(settings), refresh_history_job],
        sensors=build_sensors(settings, demo=demo),
        schedules=build_schedules(settings, demo=demo),
        resources=resources,
    )


def run_sql(url: str, sql: str, params: Mapping[str, Any] | None = None) -> None:
    """Execute ``sql`` in one committed transaction."""
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql(sql, dict(params or {}))
    finally:
        engine.dispose()


@dataclass
class Watch:
    """Everything a drift test needs; ``tick`` evaluates a sensor like the daemon does."""

    admin_url: str = field(repr=False)  # holds the test server's password
    layout: DemoLayout
    config_path: Path
    settings: Settings
    defs: dg.Definitions
    instance: dg.DagsterInstance
    urls: dict[str, str] = field(repr=False)
    head: str = DEMO_OLD_HEAD
    cursors: dict[str, str | None] = field(default_factory=dict)

    def tick(
        self,
        name: str = "schema_drift_sensor",
        *,
        defs: dg.Definitions | None = None,
        cursor: str | None = None,
        fresh: bool = False,
    ) -> Any:
        """One tick of sensor ``name``; cursor carried from the previous tick unless fresh.

        Asset events are recorded on the instance, as the sensor daemon does.
        """
        defs = defs or self.defs
        previous = cursor if cursor is not None or fresh else self.cursors.get(name)
        sensor = defs.resolve_sensor_def(name)
        resources = {key: defs.resources[key] for key in sensor.required_resource_keys}
        with dg.build_sensor_context(
            instance=self.instance,
            cursor=previous,
            definitions=defs,
            sensor_name=name,
            resources=resources,
        ) as context:
            data = sensor.evaluate_tick(context)
        for event in data.asset_events:
            self.instance.report_runless_asset_event(event)
        self.cursors[name] = data.cursor
        return data

    def set_version(self, env: str, revision: str) -> None:
        """Rewrite ``env``'s version row (as a hand-made stamp would)."""
        run_sql(self.urls[env], "UPDATE alembic_version SET version_num = %(r)s", {"r": revision})


@pytest.fixture(scope="package")
def watch(admin_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Watch]:
    """The demo environments, in sync, with a real source_schema materialization."""
    home = tmp_path_factory.mktemp("drift_demo")
    layout = prepare_demo_project(home)
    config_path = layout.root / "abparts_ops_drifttest.yaml"
    config_path.write_text(config_yaml(), encoding="utf-8")
    build_template(admin_url, layout)
    prefix = f"drft{uuid.uuid4().hex[:8]}_"
    urls = build_environments(admin_url, layout, names=NAMES, prefix=prefix)
    patch = pytest.MonkeyPatch()
    try:
        for name, url in urls.items():
            patch.setenv(variable(name), url)
        patch.setenv(variable("scratch"), admin_url)
        patch.setenv("ABPARTS_OPS_CACHE", str(home / "cache"))
        run_sql(
            urls["prod"], "UPDATE alembic_version SET version_num = %(r)s", {"r": DEMO_OLD_HEAD}
        )
        settings = load_settings(config_path)
        defs = make_definitions(settings)
        dagster_home = home / "dagster_home"
        dagster_home.mkdir()
        with dg.instance_for_test(temp_dir=str(dagster_home)) as instance:
            resources = defs.resources
            result = dg.materialize(
                [source_schema, expected_schemas],
                instance=instance,
                resources={
                    key: resources[key] for key in ("policy", "source_db", "alembic", "scratch")
                },
            )
            assert result.success
            yield Watch(
                admin_url=admin_url,
                layout=layout,
                config_path=config_path,
                settings=settings,
                defs=defs,
                instance=instance,
                urls=dict(urls),
            )
    finally:
        patch.undo()
        for name in NAMES:
            drop_database(admin_url, demo_database_name(name, prefix=prefix))
