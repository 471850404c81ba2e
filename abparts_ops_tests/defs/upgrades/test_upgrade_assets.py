"""``upgrade_<env>`` jobs in real Dagster runs: dry run, upgrade, prod's confirm and lint.

A small Alembic project (``r001`` applied on both environments, ``r002`` pending), a
configuration file of its own and an ephemeral Dagster instance; the expected schemas
are built into a cache folder of the test.
"""

from __future__ import annotations

import getpass
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from abparts_ops.core.db import connect, make_engine
from abparts_ops.core.history.migrate import upgrade
from abparts_ops.core.history.project import load_project
from abparts_ops.core.schema.introspect import take_snapshot
from abparts_ops.core.settings import load_settings
from abparts_ops.definitions import build_definitions
from abparts_ops.defs.jobs import build_upgrade_jobs
from abparts_ops.defs.names import STAMP_POOL, STAMP_TAG
from abparts_ops.defs.resources import build_resources
from abparts_ops.defs.upgrade_assets import (
    UpgradeConfig,
    build_upgrade_defs,
    upgrade_key,
    upgrade_op,
    upgrade_policy,
)
from abparts_ops_tests.core.history.projects import Rev, write_project
from abparts_ops_tests.sql import run_sql, version_rows

R001 = Rev(
    "r001",
    None,
    "op.create_table('parts', sa.Column('id', sa.BigInteger, primary_key=True), "
    "sa.Column('notes', sa.Text))",
    "op.drop_table('parts')",
)
ADD = Rev("r002", "r001", "op.add_column('parts', sa.Column('colour', sa.Text))",
          "op.drop_column('parts', 'colour')")
DROP = Rev("r002", "r001", "op.drop_column('parts', 'notes')",
           "op.add_column('parts', sa.Column('notes', sa.Text))")
CONFIG = """\
alembic: {config: project/alembic.ini}
source: staging
scratch: {url_env: ABPT_UPG_SCRATCH_URL}
environments:
  staging: {url_env: ABPT_UPG_STAGING_URL}
  prod:    {url_env: ABPT_UPG_PROD_URL, protected: true}
"""


def _values(metadata: Any) -> dict[str, Any]:
    return {k: getattr(v, "value", v) for k, v in metadata.items()}


class Harness:
    """The definitions, instance and environment URLs of one test."""

    def __init__(
        self, defs: dg.Definitions, instance: dg.DagsterInstance, urls: dict, ini: Path
    ) -> None:
        self.defs = defs
        self.instance = instance
        self.urls = urls
        self.ini = ini

    def run(self, env: str, **config: Any) -> dg.ExecuteInProcessResult:
        """Run ``upgrade_<env>`` with ``config`` (UpgradeConfig fields)."""
        run_config = dg.RunConfig(ops={upgrade_op(env): UpgradeConfig(**config)})
        return self.defs.resolve_job_def(f"upgrade_{env}").execute_in_process(
            instance=self.instance, run_config=run_config, raise_on_error=False
        )

    def state(self, env: str) -> tuple[Any, str]:
        """Version rows and whole snapshot of ``env``."""
        url = self.urls[env]
        return version_rows(url), take_snapshot(url, source="state").to_json()


@pytest.fixture
def harness(request, tmp_path: Path, db_factory, admin_url: str, monkeypatch) -> Harness:
    """A project whose pending ``r002`` is the test's (indirect) parameter."""
    r002: Rev = request.param
    ini = write_project(tmp_path / "project", [R001, r002])
    (tmp_path / "abparts_ops.yaml").write_text(CONFIG, encoding="utf-8")
    project = load_project(ini_path=ini)
    urls = {}
    for env in ("staging", "prod"):
        urls[env] = db_factory(env)
        engine = make_engine(urls[env])
        try:
            with connect(engine) as conn:
                upgrade(conn, project, "r001")
        finally:
            engine.dispose()
    monkeypatch.setenv("ABPT_UPG_STAGING_URL", urls["staging"])
    monkeypatch.setenv("ABPT_UPG_PROD_URL", urls["prod"])
    monkeypatch.setenv("ABPT_UPG_SCRATCH_URL", admin_url)
    monkeypatch.setenv("ABPARTS_OPS_CACHE", str(tmp_path / "cache"))
    settings = load_settings(tmp_path / "abparts_ops.yaml")
    upgrades = build_upgrade_defs(settings)
    defs = dg.Definitions(
        assets=upgrades.assets,
        jobs=build_upgrade_jobs(settings),
        resources=build_resources(settings),
    )
    with dg.DagsterInstance.ephemeral(tempdir=str(tmp_path / "dagster")) as instance:
        yield Harness(defs, instance, urls, ini)


@pytest.mark.parametrize("harness", [ADD], indirect=True)
def test_dry_run_observes_then_real_run_materializes_with_the_audit_record(harness) -> None:
    before = harness.state("staging")
    dry = harness.run("staging")
    assert dry.success
    assert not dry.get_asset_materialization_events()
    observed = [
        e.asset_observation_data.asset_observation for e in dry.get_asset_observation_events()
    ]
    assert [o.asset_key for o in observed] == [upgrade_key("staging")]
    meta = _values(observed[0].metadata)
    assert "`r002`" in meta["pending"] and meta["pending_count"] == 1
    assert meta["rehearsal_passed"] is True and "equals the head's expected" in meta["rehearsal"]
    assert meta["findings"].startswith("| level |") or "found nothing" in meta["findings"]
    assert meta["action"] == "dry_run"
    assert harness.state("staging") == before

    real = harness.run("staging", dry_run=False)
    assert real.success
    [event] = real.get_asset_materialization_events()
    meta = _values(event.materialization.metadata)
    assert meta["revision_before"] == "r001" and meta["revision_after"] == "r002"
    assert "`r002`" in meta["applied"] and set(meta["applied_seconds"]) == {"r002"}
    assert meta["before_fingerprint"] != meta["after_fingerprint"]
    assert meta["after_fingerprint"] == meta["expected_fingerprint"]
    assert meta["run_id"] == real.run_id and meta["launched_by"] == getpass.getuser()
    assert version_rows(harness.urls["staging"]) == ("r002",)


@pytest.mark.parametrize("harness", [DROP], indirect=True)
def test_prod_needs_confirm_and_blocks_on_an_unacknowledged_error_finding(harness) -> None:
    before = harness.state("prod")
    refused = harness.run("prod", dry_run=False)
    assert not refused.success
    assert "confirm: prod" in _failure(refused)[0]
    blocked = harness.run("prod", dry_run=False, confirm="prod")
    assert not blocked.success
    description, meta = _failure(blocked)
    assert "ban-drop-column" in description and meta["blocking_rules"] == "ban-drop-column"
    assert "ban-drop-column" in meta["findings"]
    assert harness.state("prod") == before

    staging = harness.run("staging", dry_run=False)  # not protected: findings do not block
    assert staging.success

    done = harness.run("prod", dry_run=False, confirm="prod", acknowledge=["ban-drop-column"])
    assert done.success
    [event] = done.get_asset_materialization_events()
    assert _values(event.materialization.metadata)["acknowledged"] == "ban-drop-column"
    assert version_rows(harness.urls["prod"]) == ("r002",)


@pytest.mark.parametrize("harness", [ADD], indirect=True)
def test_upgrades_share_the_stamps_pool_and_tag(harness) -> None:
    for env in ("staging", "prod"):
        job = harness.defs.resolve_job_def(f"upgrade_{env}")
        assert job.tags.get("abparts_ops/stamp") == STAMP_TAG["abparts_ops/stamp"]
        node = job.graph.node_dict[upgrade_op(env)]
        assert node.definition.pool == STAMP_POOL
        assert node.definition.tags.get("abparts_ops/stamp") == "true"


def _failure(result: dg.ExecuteInProcessResult) -> tuple[str, dict[str, Any]]:
    failures = [event for event in result.all_events if event.is_step_failure]
    data = failures[0].step_failure_data.user_failure_data
    assert data is not None, failures[0].step_failure_data.error
    return str(data.description), _values(data.metadata)


def test_policy_comes_from_the_configuration(tmp_path: Path, monkeypatch) -> None:
    write_project(tmp_path / "project", [R001])
    config = tmp_path / "abparts_ops.yaml"
    config.write_text(
        CONFIG.replace("prod:    {url_env: ABPT_UPG_PROD_URL, protected: true}",
                       "prod:    {url_env: ABPT_UPG_PROD_URL, protected: true}\n"
                       "  qa:      {url_env: ABPT_UPG_QA_URL, block_on_lint_errors: true}")
        + "upgrade:\n  lock_timeout_s: 2\n  statement_timeout_s: 60\n  squawk:\n"
        "    exclude:\n      - {rule: prefer-robust-stmts, reason: one transaction}\n",
        encoding="utf-8",
    )
    settings = load_settings(config, check_env=False)
    policies = {name: upgrade_policy(settings, env) for name, env in settings.environments.items()}
    assert policies["prod"].lock_timeout_s == 2 and policies["prod"].statement_timeout_s == 60
    assert [(e.rule, e.reason) for e in policies["prod"].exclude] == [
        ("prefer-robust-stmts", "one transaction")
    ]
    assert policies["prod"].block_on_lint_errors is True  # protected
    assert policies["staging"].block_on_lint_errors is False
    assert policies["qa"].block_on_lint_errors is True  # set explicitly


def test_no_sensor_or_schedule_ever_launches_an_upgrade(tmp_path: Path, monkeypatch) -> None:
    write_project(tmp_path / "project", [R001])
    (tmp_path / "abparts_ops.yaml").write_text(CONFIG, encoding="utf-8")
    for variable in ("ABPT_UPG_STAGING_URL", "ABPT_UPG_PROD_URL", "ABPT_UPG_SCRATCH_URL"):
        monkeypatch.setenv(variable, "postgresql://u:p@127.0.0.1:1/x")
    settings = load_settings(tmp_path / "abparts_ops.yaml")
    repo = build_definitions(settings, demo=True).get_repository_def()
    assert {j.name for j in repo.get_all_jobs()} >= {"upgrade_staging", "upgrade_prod"}
    upgrade_keys = {upgrade_key(env) for env in ("staging", "prod")}
    executed_by_upgrades = {
        key
        for env in ("staging", "prod")
        for key in repo.get_job(f"upgrade_{env}").asset_layer.executable_asset_keys
    }
    assert executed_by_upgrades == upgrade_keys  # the way of reading a job's assets works
    for sensor in repo.sensor_defs:
        for target in sensor.targets:
            assert not target.job_name.startswith("upgrade_"), sensor.name
            job = repo.get_job(target.job_name)  # what the sensor's runs would execute
            assert not upgrade_keys & set(job.asset_layer.executable_asset_keys), sensor.name
    for schedule in repo.schedule_defs:
        assert not schedule.job_name.startswith("upgrade_"), schedule.name


@pytest.mark.parametrize("harness", [ADD], indirect=True)
def test_refusal_carries_the_diff_as_metadata(harness) -> None:
    run_sql(harness.urls["staging"], "CREATE INDEX ix_by_hand ON parts (notes)")
    before = harness.state("staging")
    refused = harness.run("staging", dry_run=False)
    assert not refused.success
    description, meta = _failure(refused)
    assert description.startswith("staging: schema drift: at revision r001")
    assert meta["action"] == "refused" and meta["differences"] == 1
    assert "ix_by_hand" in meta["diff"]
    assert harness.state("staging") == before


# -- the one write guard, in real runs (issue 16) ------------------------------------------


@pytest.mark.parametrize("harness", [DROP], indirect=True)
def test_a_borrowed_database_is_refused_and_prod_keeps_its_column(harness, monkeypatch) -> None:
    """staging's variable points at prod's database: ``upgrade_staging {dry_run: false}``
    refuses (no confirm, no lint block needed to stop it); prod, read back, is as it was."""
    monkeypatch.setenv("ABPT_UPG_STAGING_URL", harness.urls["prod"])
    before = harness.state("prod")
    for dry_run in (True, False):
        refused = harness.run("staging", dry_run=dry_run)
        assert not refused.success
        description, meta = _failure(refused)
        assert "is also the database of prod" in description and meta["action"] == "refused"
        assert harness.state("prod") == before


@pytest.mark.parametrize("harness", [ADD], indirect=True)
def test_a_recreated_protected_database_needs_its_identity_acknowledged(
    harness, admin_url: str
) -> None:
    """prod upgraded once (its identity recorded), then dropped and recreated under its
    name: ``upgrade_prod {confirm: prod}`` refuses naming the key to acknowledge;
    acknowledged, it upgrades and records the new identity."""
    from abparts_ops.core.db import create_database, drop_database

    first = harness.run("prod", dry_run=False, confirm="prod")
    assert first.success
    [event] = first.get_asset_materialization_events()
    old_key = _values(event.materialization.metadata)["identity_key"]
    assert old_key and "advisory lock taken" in _values(event.materialization.metadata)["guard"]

    url = harness.urls["prod"]
    name = url.rsplit("/", 1)[-1].split("?")[0]
    drop_database(admin_url, name)
    create_database(admin_url, name)
    project = load_project(ini_path=harness.ini)
    engine = make_engine(url)
    try:
        with connect(engine) as conn:
            upgrade(conn, project, "r001")
    finally:
        engine.dispose()
    before = harness.state("prod")
    refused = harness.run("prod", dry_run=False, confirm="prod")
    assert not refused.success
    description, _ = _failure(refused)
    assert f"identity {old_key} then" in description
    new_key = description.split("acknowledge_identity: ")[1].split("`")[0]
    assert new_key != old_key
    assert harness.state("prod") == before

    done = harness.run("prod", dry_run=False, confirm="prod", acknowledge_identity=new_key)
    assert done.success
    [event] = done.get_asset_materialization_events()
    assert _values(event.materialization.metadata)["identity_key"] == new_key
    assert version_rows(url) == ("r002",)


@pytest.mark.parametrize("harness", [ADD], indirect=True)
def test_confirm_naming_another_environment_and_unknown_rules_are_refused(harness) -> None:
    """``confirm: prod`` on staging's job and ``acknowledge: [no-such-rule]`` are input
    mistakes: refused when given, staging read back unchanged."""
    before = harness.state("staging")
    wrong_confirm = harness.run("staging", dry_run=False, confirm="prod")
    assert not wrong_confirm.success
    assert "`confirm` names another environment (prod)" in _failure(wrong_confirm)[0]
    unknown_rule = harness.run("staging", dry_run=False, acknowledge=["no-such-rule"])
    assert not unknown_rule.success
    assert "unknown lint rule `no-such-rule`" in _failure(unknown_rule)[0]
    assert harness.state("staging") == before
