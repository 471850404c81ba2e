"""The demo story after the reset: a new revision reaches staging, then prod, guarded.

On the package's demo (baseline materialized and proven): fresh dev, staging and prod
are stamped, a revision is written the normal way into the project copy (removed again
at the end, so the package's other tests keep their single head) and applied to dev
(``upgrade_dev``), then ``upgrade_staging`` runs as a dry run and for real, and
``upgrade_prod`` with its confirmation; then ``verify_environments`` is green for all
three and the drift sensor's next tick says every environment is in sync. The rehearsal
runs on each environment's own ``pg_dump`` of the 62-table ABParts schema.
"""

from __future__ import annotations

from typing import Any

import dagster as dg
import pytest

from abparts_ops.defs.upgrade_assets import UpgradeConfig, upgrade_op
from abparts_ops_tests.defs.environments.conftest import (
    Pipeline,
    check_results,
    failure_description,
    read_revisions,
)

NEW = "d0e1f2a3b4c5"
REVISION = '''"""parts: a nullable colour

Revision ID: {rev}
Revises: {down}
"""
from alembic import op
import sqlalchemy as sa

revision = {rev!r}
down_revision = {down!r}
branch_labels = None
depends_on = None


def upgrade():
    op.add_column("parts", sa.Column("colour", sa.Text(), nullable=True))


def downgrade():
    op.drop_column("parts", "colour")
'''


def _values(metadata: Any) -> dict[str, Any]:
    return {k: getattr(v, "value", v) for k, v in metadata.items()}


def test_new_revision_reaches_staging_then_prod(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch, tmp_path
) -> None:
    monkeypatch.setenv("ABPARTS_OPS_CACHE", str(tmp_path / "cache"))
    urls = pipeline.fresh_environments(monkeypatch, names=("dev", "staging", "prod"))
    for env, extra in (("dev", {}), ("staging", {}), ("prod", {"confirm": "prod"})):
        assert pipeline.stamp(env, dry_run=False, **extra).success
    baseline = pipeline.baseline_revision
    defs = pipeline.defs  # build_definitions wires every environment's upgrade

    def run(env: str, **config: Any) -> dg.ExecuteInProcessResult:
        return defs.resolve_job_def(f"upgrade_{env}").execute_in_process(
            instance=pipeline.instance,
            run_config=dg.RunConfig(ops={upgrade_op(env): UpgradeConfig(**config)}),
            raise_on_error=False,
        )

    path = pipeline.layout.versions_dir / f"{NEW}_parts_colour.py"
    path.write_text(REVISION.format(rev=NEW, down=baseline), encoding="utf-8")
    try:
        assert run("dev", dry_run=False).success
        assert read_revisions(urls["dev"]) == (NEW,)
        dry = run("staging")
        assert dry.success
        [observation] = [
            e.asset_observation_data.asset_observation for e in dry.get_asset_observation_events()
        ]
        meta = _values(observation.metadata)
        assert f"`{NEW}`" in meta["pending"] and meta["rehearsal_passed"] is True
        assert read_revisions(urls["staging"]) == (baseline,)

        real = run("staging", dry_run=False)
        assert real.success
        [event] = real.get_asset_materialization_events()
        meta = _values(event.materialization.metadata)
        assert meta["revision_before"] == baseline and meta["revision_after"] == NEW
        assert set(meta["applied_seconds"]) == {NEW}
        assert read_revisions(urls["staging"]) == (NEW,)

        refused = run("prod", dry_run=False)
        assert not refused.success and "confirm: prod" in failure_description(refused)
        assert read_revisions(urls["prod"]) == (baseline,)
        assert run("prod", dry_run=False, confirm="prod").success
        assert read_revisions(urls["prod"]) == (NEW,)

        # The history's new expected schema (what revision_files_sensor requests), then
        # verify_environments: staging and prod are green against the reference.
        assert pipeline.run("refresh_history").success
        checks = check_results(pipeline.verify())
        for env in ("dev", "staging", "prod"):
            for name in ("revision_is_head", "schema_matches_reference"):
                assert checks[(env, name)].passed, checks[(env, name)].description

        # The drift sensor's next tick: every environment in sync at the new head.
        sensor = defs.resolve_sensor_def("schema_drift_sensor")
        resources = {key: defs.resources[key] for key in sensor.required_resource_keys}
        with dg.build_sensor_context(
            instance=pipeline.instance,
            definitions=defs,
            sensor_name=sensor.name,
            resources=resources,
        ) as context:
            tick = sensor.evaluate_tick(context)
        states = {
            e.asset_key.path[0]: e.metadata["state"].value
            for e in tick.asset_events
            if e.asset_key.path[-1] == "live_revision"
        }
        assert states == {"dev": "in_sync", "staging": "in_sync", "prod": "in_sync"}, (
            tick.skip_message
        )
        assert not tick.run_requests
    finally:
        path.unlink(missing_ok=True)
