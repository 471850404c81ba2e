"""Issue 10's whole story on the demo, with real runs and real sensor ticks.

A copy of the demo project, its three environments and an instance of their own (the
story writes a revision into the project, so it shares nothing with other packages):

1. reset and stamp every environment, dev included: all in sync, ``alembic current``
   at the head everywhere;
2. write a new revision with Alembic's ``command.revision`` and apply it to dev;
3. dev in sync, staging behind by 1 with no schema difference, prod upgraded by hand
   passes ``verify_environments``; a stamp now refuses (upgrade instead);
4. a column added by hand on staging is schema drift against its own revision, with
   the diff;
5. a revision id found in no history is an unknown revision.
"""

from __future__ import annotations

import io
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
from alembic import command
from alembic.config import Config

from abparts_ops.core.db import drop_database, make_engine
from abparts_ops.core.settings import load_settings
from abparts_ops.core.watch.drift import DriftCursor
from abparts_ops.core.watch.states import EnvironmentState
from abparts_ops.definitions import build_definitions
from abparts_ops.defs.environment_assets import StampConfig
from abparts_ops.defs.names import ENVIRONMENT_TAG, EXPECTED_SCHEMAS, stamp_job_name
from abparts_ops.embedded.demo import (
    DEMO_OLD_HEAD,
    build_environments,
    build_template,
    demo_database_name,
    prepare_demo_project,
    write_stamp_configs,
)
from abparts_ops_tests.defs.environments.conftest import check_results, read_revisions, stamp_op
from abparts_ops_tests.demo_config import demo_config_yaml, url_variable
from abparts_ops_tests.sql import run_sql

NAMES = ("dev", "staging", "prod")
NEW_REVISION = "5709e1e5a0b1"


def variable(env: str) -> str:
    """The variable holding ``env``'s URL in this package."""
    return url_variable("STORY", env)


def config_yaml(names: tuple[str, ...] = NAMES) -> str:
    """The demo's configuration with this package's variables (only ``names``)."""
    return demo_config_yaml("STORY", names)


class Story:
    """The demo, its definitions and instance; ``run`` and ``tick`` as the daemon does."""

    def __init__(self, root: Path, urls: dict[str, str], defs: dg.Definitions, instance: Any):
        self.root = root
        self.urls = urls
        self.defs = defs
        self.instance = instance
        self.cursors: dict[str, str | None] = {}

    def run(self, job: str, run_config: Any = None) -> dg.ExecuteInProcessResult:
        return self.defs.resolve_job_def(job).execute_in_process(
            instance=self.instance, run_config=run_config, raise_on_error=False
        )

    def stamp(self, env: str, **config: Any) -> dg.ExecuteInProcessResult:
        run_config = dg.RunConfig(ops={stamp_op(env): StampConfig(**config)})
        return self.run(stamp_job_name(env), run_config)

    def tick(self, name: str = "schema_drift_sensor", fresh: bool = False) -> Any:
        sensor = self.defs.resolve_sensor_def(name)
        resources = {key: self.defs.resources[key] for key in sensor.required_resource_keys}
        with dg.build_sensor_context(
            instance=self.instance,
            cursor=None if fresh else self.cursors.get(name),
            definitions=self.defs,
            sensor_name=name,
            resources=resources,
        ) as context:
            data = sensor.evaluate_tick(context)
        for event in data.asset_events:
            self.instance.report_runless_asset_event(event)
        self.cursors[name] = data.cursor
        return data

    def alembic(self, env: str, action: str, *args: Any) -> str:
        """Run ``alembic <action>`` against ``env`` with Alembic's own API; its output."""
        cfg = Config(str(self.root / "app" / "alembic.ini"), stdout=io.StringIO())
        engine = make_engine(self.urls[env])
        try:
            with engine.connect() as conn:
                cfg.attributes["connection"] = conn
                getattr(command, action)(cfg, *args)
                conn.commit()
        finally:
            engine.dispose()
        return cfg.stdout.getvalue()  # type: ignore[attr-defined]


def states(data: Any) -> dict[str, dict[str, Any]]:
    """The tick's ``live_revision`` observations per environment (metadata values)."""
    return {
        event.asset_key.path[0]: {k: v.value for k, v in event.metadata.items()}
        for event in data.asset_events
        if isinstance(event, dg.AssetObservation) and event.asset_key.path[-1] == "live_revision"
    }


@pytest.fixture(scope="module")
def story(admin_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Story]:
    home = tmp_path_factory.mktemp("story_demo")
    layout = prepare_demo_project(home)
    config_path = layout.root / "abparts_ops_story.yaml"
    config_path.write_text(config_yaml(), encoding="utf-8")
    build_template(admin_url, layout)
    prefix = f"story{uuid.uuid4().hex[:8]}_"
    urls = build_environments(admin_url, layout, names=NAMES, prefix=prefix)
    patch = pytest.MonkeyPatch()
    try:
        for name, url in urls.items():
            patch.setenv(variable(name), url)
        patch.setenv(variable("scratch"), admin_url)
        patch.setenv("ABPARTS_OPS_CACHE", str(home / "cache"))
        defs = build_definitions(load_settings(config_path), demo=True)
        dagster_home = home / "dagster_home"
        dagster_home.mkdir()
        with dg.DagsterInstance.ephemeral(tempdir=str(dagster_home)) as instance:
            yield Story(layout.root, dict(urls), defs, instance)
    finally:
        patch.undo()
        for name in NAMES:
            drop_database(admin_url, demo_database_name(name, prefix=prefix))


def test_the_whole_story(story: Story) -> None:
    # 1. the reset, then the stamps of every environment, the source first
    reset = story.run("reset_baseline")
    assert reset.success
    baseline = reset.output_for_node("baseline_revision").revision
    expected = {e.check_name: e for e in reset.get_asset_check_evaluations()}
    assert expected["head_matches_source_schema"].passed
    before = states(story.tick(fresh=True))
    assert before["dev"]["state"] == "awaiting_stamp"  # at an archived revision
    assert before["prod"]["state"] == "unknown_revision"  # 9c1f0e7d2b44: in no history
    for env in NAMES:
        config = {"confirm": "prod"} if env == "prod" else {}
        result = story.stamp(env, dry_run=False, **config)
        assert result.success, env
        assert all(e.passed for e in result.get_asset_check_evaluations())
    synced = story.tick()
    assert synced.skip_message.startswith("all in sync:")
    for env in NAMES:
        assert read_revisions(story.urls[env]) == (baseline,)
        assert baseline in story.alembic(env, "current")  # no "Can't locate revision"

    # 2. a new revision, written the normal Alembic way, applied to dev only
    story.tick("revision_files_sensor", fresh=True)  # starts watching the versions folder
    cfg = Config(str(story.root / "app" / "alembic.ini"))
    script = command.revision(cfg, message="add parts notes", rev_id=NEW_REVISION)
    path = Path(script.path)  # type: ignore[union-attr]
    source = path.read_text(encoding="utf-8")
    source = source.replace(
        "def upgrade() -> None:\n", "def upgrade() -> None:\n    op.add_column('parts', "
        "sa.Column('notes', sa.Text(), nullable=True))\n", 1
    ).replace(
        "def downgrade() -> None:\n", "def downgrade() -> None:\n    op.drop_column('parts', "
        "'notes')\n", 1
    )
    path.write_text(source, encoding="utf-8")
    story.alembic("dev", "upgrade", "head")
    assert read_revisions(story.urls["dev"]) == (NEW_REVISION,)

    # the versions folder changed: the reference is refreshed, no verification requested
    files = story.tick("revision_files_sensor")
    [request] = files.run_requests
    assert request.job_name == "refresh_history"
    assert story.run("refresh_history").success

    # 3. dev in sync, staging and prod behind by one with no schema difference
    behind = story.tick()
    assert not behind.run_requests  # behind is reported, not verified
    seen = states(behind)
    assert seen["dev"]["state"] == "in_sync"
    for env in ("staging", "prod"):
        assert seen[env]["state"] == "behind"
        assert (seen[env]["pending"], seen[env]["pending_count"]) == (NEW_REVISION, 1)
        assert "no schema difference" in seen[env]["reason"]
        assert "upgrade_" + env in seen[env]["reason"]
    cursor = DriftCursor.decode(behind.cursor)
    assert cursor.environments["staging"].status == EnvironmentState.BEHIND
    # prod, upgraded by hand, passes verify_environments; staging fails only its revision
    story.alembic("prod", "upgrade", "head")
    results = check_results(story.run("verify_environments"))
    for env in ("dev", "prod"):
        assert results[(env, "revision_is_head")].passed
        assert results[(env, "schema_matches_reference")].passed
    assert not results[("staging", "revision_is_head")].passed
    assert "behind" in results[("staging", "revision_is_head")].description
    staging_schema = results[("staging", "schema_matches_reference")]
    assert staging_schema.passed
    assert staging_schema.metadata["differences"].value == 0
    assert staging_schema.metadata["expected_revision"].value == baseline

    # a stamp writes only the proven baseline: with the head past it, it says to upgrade
    refused = story.stamp("staging", dry_run=False)
    assert not refused.success  # at the baseline, behind: only an upgrade helps
    # back at an archived revision, awaiting its stamp
    run_sql(story.urls["staging"], f"UPDATE alembic_version SET version_num = '{DEMO_OLD_HEAD}'")
    refused = story.stamp("staging", dry_run=False)
    assert not refused.success
    failure = next(e for e in refused.all_events if e.is_step_failure)
    text = str(failure.step_failure_data.user_failure_data.description)
    assert f"moved on past the proven baseline {baseline}" in text
    assert "upgrade_staging" in text
    assert read_revisions(story.urls["staging"]) == (DEMO_OLD_HEAD,)
    allowed = story.stamp("staging", dry_run=False, allow_behind_head=True)
    assert allowed.success
    assert read_revisions(story.urls["staging"]) == (baseline,)

    # 4. a column added by hand on staging: schema drift against its own revision
    run_sql(story.urls["staging"], "ALTER TABLE parts ADD COLUMN hand_made integer")
    drift = story.tick()
    [request] = drift.run_requests
    assert request.tags[ENVIRONMENT_TAG] == "staging"
    assert states(drift)["staging"]["state"] == "schema_drift"
    verified = check_results(story.run("verify_environments"))
    schema = verified[("staging", "schema_matches_reference")]
    assert not schema.passed
    assert f"expected schema at {baseline}" in schema.description
    assert "hand_made" in schema.metadata["diff"].value
    assert schema.metadata["differences"].value == 1
    run_sql(story.urls["staging"], "ALTER TABLE parts DROP COLUMN hand_made")

    # 5. a revision id found in no history
    run_sql(story.urls["staging"], "UPDATE alembic_version SET version_num = 'c0ffee000000'")
    unknown = story.tick()
    seen = states(unknown)
    assert seen["staging"]["state"] == "unknown_revision"
    assert "c0ffee000000 is in no history" in seen["staging"]["reason"]
    assert [r.tags[ENVIRONMENT_TAG] for r in unknown.run_requests] == ["staging"]


def test_a_configuration_naming_only_the_source_works(
    story: Story, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 10: today the code location crashed (the schedule's job was not defined)."""
    if story.instance.get_latest_materialization_event(EXPECTED_SCHEMAS) is None:
        # Run alone (not after the whole story): the sensor needs its reference first.
        assert story.run("reset_baseline").success
    config = story.root / "abparts_ops_story_source_only.yaml"
    config.write_text(config_yaml(("dev",)), encoding="utf-8")
    defs = build_definitions(load_settings(config), demo=True)
    dg.Definitions.validate_loadable(defs)
    schedule = defs.resolve_schedule_def("nightly_verification")
    assert schedule.job_name == "verify_environments"
    verify = defs.resolve_job_def("verify_environments")
    assert {key.asset_key.path[0] for key in verify.asset_layer.asset_graph.asset_check_keys} >= {
        "dev"
    }
    assert defs.resolve_job_def("stamp_dev")
    sensor = defs.resolve_sensor_def("schema_drift_sensor")
    resources = {key: defs.resources[key] for key in sensor.required_resource_keys}
    with dg.build_sensor_context(instance=story.instance, resources=resources) as context:
        data = sensor.evaluate_tick(context)
    assert [line.split(":")[0] for line in data.skip_message.splitlines()[1:]] == ["dev"], (
        data.skip_message
    )


def test_the_demo_stamp_configs_are_the_stamp_jobs_run_configs(
    story: Story, tmp_path: Path
) -> None:
    """scripts/demo stamps every environment with these files: they must validate."""
    paths = write_stamp_configs(prepare_demo_project(tmp_path))
    assert list(paths) == list(NAMES)  # the source first
    for env, path in paths.items():
        config = json.loads(path.read_text(encoding="utf-8"))
        assert config["ops"][stamp_op(env)]["config"]["dry_run"] is False
        assert dg.validate_run_config(story.defs.resolve_job_def(stamp_job_name(env)), config)
    assert json.loads(paths["prod"].read_text())["ops"][stamp_op("prod")]["config"] == {
        "dry_run": False,
        "confirm": "prod",
    }
    assert write_stamp_configs(prepare_demo_project(tmp_path)) == paths  # idempotent
