"""Catch-up across the reset on the demo (issue 18.3), in real runs.

staging is left one archived revision behind the old head (the demo's
``add_stock_transfers_and_notifications`` never ran there) when the reset happens. The
checks say ``behind_archive``; a plain stamp refuses (its schema is not the baseline's);
``stamp_staging {dry_run: false, catch_up: true}`` runs the archived revision, rehearsed
and guarded, and stamps the baseline in the same run; then everything is green.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from abparts_ops.core.db import connect, make_engine
from abparts_ops.core.history.archive import archived_revisions
from abparts_ops.core.history.migrate import upgrade
from abparts_ops.core.history.project import load_project
from abparts_ops.core.rollout.catch_up import archived_project
from abparts_ops_tests.defs.environments.conftest import (
    VARIABLES,
    Pipeline,
    check_results,
    failure_description,
    read_revisions,
)


def test_an_environment_behind_the_reset_is_caught_up_then_stamped(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, db_factory
) -> None:
    monkeypatch.setenv("ABPARTS_OPS_CACHE", str(tmp_path / "cache"))
    urls = pipeline.fresh_environments(monkeypatch, names=("dev", "prod"))
    project = load_project(ini_path=pipeline.layout.alembic_ini)
    archive = next(iter(set(archived_revisions(project).values())))
    old = archived_project(project, archive)
    script = old.script()
    [old_head] = script.get_heads()
    before_head = script.get_revision(old_head).down_revision
    assert isinstance(before_head, str)
    staging = db_factory("staging_behind")
    engine = make_engine(staging)
    try:
        with connect(engine) as conn:
            upgrade(conn, old, before_head)
    finally:
        engine.dispose()
    monkeypatch.setenv(VARIABLES["staging"], staging)
    urls["staging"] = staging

    checks = check_results(pipeline.verify())
    schema_check = checks[("staging", "schema_matches_reference")]
    assert not schema_check.passed
    assert schema_check.metadata["state"].value == "behind_archive"
    assert "1 archived revision(s) before the baseline" in schema_check.description

    refused = pipeline.stamp("staging", dry_run=False)
    assert not refused.success
    assert "refusing to stamp" in failure_description(refused)
    assert read_revisions(staging) == (before_head,)

    dry = pipeline.stamp("staging", catch_up=True)
    assert dry.success
    assert read_revisions(staging) == (before_head,)

    done = pipeline.stamp("staging", dry_run=False, catch_up=True)
    assert done.success, failure_description(done)
    [event] = done.get_asset_materialization_events()
    meta = {k: getattr(v, "value", v) for k, v in event.materialization.metadata.items()}
    assert meta["catch_up"] is True and meta["action"] == "caught_up"
    assert f"`{old_head}`" in meta["applied"]
    baseline = pipeline.baseline_revision
    assert read_revisions(staging) == (baseline,)

    checks = check_results(pipeline.verify())
    for name in ("revision_is_head", "schema_matches_reference"):
        assert checks[("staging", name)].passed, checks[("staging", name)].description
