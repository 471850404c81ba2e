"""The shape of the definitions, read without a database: the fast test layer.

Definitions are built from a configuration whose URLs point nowhere (nothing connects
while the graph, checks, jobs, sensors and schedules are wired), so these tests run in
`pytest -m "not db"`.
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest

from abparts_ops.core.settings import Settings, load_settings
from abparts_ops.definitions import build_definitions
from abparts_ops.defs.live_assets import live_revision_key, live_schema_key
from abparts_ops.defs.names import STAMP_POOL, STAMP_TAG, stamp_key
from abparts_ops.embedded.demo import prepare_demo_project
from abparts_ops_tests.defs.drift.conftest import NAMES, config_yaml, variable


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """The demo's configuration over a copy of its project, every URL a closed port."""
    layout = prepare_demo_project(tmp_path_factory.mktemp("shape"))
    config = layout.root / "abparts_ops_shape.yaml"
    config.write_text(config_yaml(), encoding="utf-8")
    patch = pytest.MonkeyPatch()
    for name in (*NAMES, "scratch"):
        patch.setenv(variable(name), f"postgresql://nobody@127.0.0.1:9/{name}")
    try:
        return load_settings(Path(config))
    finally:
        patch.undo()


def test_stamps_checks_and_jobs_per_environment(settings: Settings) -> None:
    """One stamp per environment (the source too), its checks, the jobs; no automatic stamp."""
    defs = build_definitions(settings, demo=True)
    graph = defs.resolve_asset_graph()
    for env in NAMES:
        node = graph.get(stamp_key(env))
        assert node.group_name == "environments"
        assert dg.AssetKey("baseline_revision") in node.parent_keys
        assert dg.AssetKey("expected_schemas") in node.parent_keys  # the history is the reference
        assets_def = node.assets_def
        assert assets_def.op.tags[next(iter(STAMP_TAG))] == "true"
        assert assets_def.op.pool == STAMP_POOL
        assert {key.name for key in graph.asset_check_keys if key.asset_key == stamp_key(env)} == {
            "revision_is_head",
            "schema_matches_reference",
        }
    assert defs.resolve_job_def("stamp_dev")  # the source is stamped like the others
    expected = graph.get(dg.AssetKey("expected_schemas"))
    assert dg.AssetKey("baseline_revision") in expected.parent_keys  # built after the reset
    verify = defs.resolve_job_def("verify_environments")
    assert sorted(node.name for node in verify.graph.node_defs) == sorted(
        f"{env}__alembic_stamp_{name}"
        for env in NAMES
        for name in ("revision_is_head", "schema_matches_reference")
    )
    assert defs.resolve_job_def("stamp_prod").tags[next(iter(STAMP_TAG))] == "true"
    for schedule in defs.schedules or []:
        assert "stamp" not in getattr(schedule, "job_name", "")
    for sensor in defs.sensors or []:
        assert all("stamp" not in job.name for job in sensor.jobs) if sensor.has_jobs else True


def test_live_specs_sensors_and_schedule_are_defined(settings: Settings) -> None:
    """The live observations, both sensors and the nightly schedule; stopped in production."""
    defs = build_definitions(settings, demo=True)
    dg.Definitions.validate_loadable(defs)
    graph = defs.resolve_asset_graph()
    for env in NAMES:
        for key in (live_revision_key(env), live_schema_key(env)):
            assert graph.get(key).group_name == "live"
    sensor = defs.resolve_sensor_def("schema_drift_sensor")
    assert sensor.minimum_interval_seconds == 60
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
    files = defs.resolve_sensor_def("revision_files_sensor")
    assert {t.job_name for t in files.targets} == {"refresh_history"}
    schedule = defs.resolve_schedule_def("nightly_verification")
    assert schedule.cron_schedule == "0 2 * * *"
    assert schedule.job_name == "verify_environments"
    assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING
    verify_job = defs.resolve_job_def("verify_environments")
    assert not verify_job.asset_layer.executable_asset_keys  # checks only, never a stamp
    production = build_definitions(settings, demo=False)
    assert (
        production.resolve_sensor_def("schema_drift_sensor").default_status
        == dg.DefaultSensorStatus.STOPPED
    )
    assert (
        production.resolve_sensor_def("revision_files_sensor").default_status
        == dg.DefaultSensorStatus.STOPPED
    )
    assert (
        production.resolve_schedule_def("nightly_verification").default_status
        == dg.DefaultScheduleStatus.STOPPED
    )
