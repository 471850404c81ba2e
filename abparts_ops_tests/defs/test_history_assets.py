"""expected_schemas: a real materialization on the demo project, then a reuse."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import dagster as dg
import pytest

from abparts_ops.core.history.expected import ExpectedIndex, ExpectedSchemas
from abparts_ops.core.history.expected_cache import cached_expected
from abparts_ops.core.history.revisions import read_history
from abparts_ops.core.schema.introspect import take_snapshot
from abparts_ops.core.settings import load_settings
from abparts_ops.core.watch.probe import probe
from abparts_ops.defs.history_assets import expected_schemas
from abparts_ops.defs.resources import build_resources
from abparts_ops.embedded.demo import DEMO_OLD_HEAD, build_template, prepare_demo_project
from abparts_ops_tests.demo_config import demo_config_yaml

SCRATCH_VARIABLE = "ABPT_HISTTEST_SCRATCH_URL"

CONFIG_YAML = demo_config_yaml("HISTTEST", names=("dev",))


def _materialize(instance: dg.DagsterInstance, resources: dict) -> dg.ExecuteInProcessResult:
    result = dg.materialize([expected_schemas], instance=instance, resources=resources)
    assert result.success
    return result


def test_expected_schemas_materializes_then_reuses(
    tmp_path: Path,
    admin_url: str,
    db_factory: Callable[..., str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    layout = prepare_demo_project(tmp_path)
    config = layout.root / "abparts_ops_histtest.yaml"
    config.write_text(CONFIG_YAML, encoding="utf-8")
    monkeypatch.setenv(SCRATCH_VARIABLE, admin_url)
    monkeypatch.setenv("ABPT_HISTTEST_DEV_URL", admin_url)
    monkeypatch.setenv("ABPARTS_OPS_CACHE", str(tmp_path / "cache"))
    settings = load_settings(config)
    all_resources = build_resources(settings)
    resources = {key: all_resources[key] for key in ("alembic", "policy", "scratch")}
    history = read_history(all_resources["alembic"].project())

    (tmp_path / "dagster_home").mkdir()
    with dg.instance_for_test(temp_dir=str(tmp_path / "dagster_home")) as instance:
        first = _materialize(instance, resources)
        project = all_resources["alembic"].project()
        expected = cached_expected(project, exclude=settings.exclude)  # the one cache
        assert isinstance(expected, ExpectedSchemas)
        assert expected.heads == (DEMO_OLD_HEAD,)
        assert expected.order == tuple(info.revision for info in history.revisions)
        head = expected.snapshot(DEMO_OLD_HEAD)
        assert head is not None and "knowledge_documents" in head.excluded
        # the demo environments are clones of a database upgraded with `alembic upgrade`
        clone = db_factory(template=build_template(admin_url, layout))
        assert take_snapshot(clone, exclude=settings.exclude) == head
        assert probe(clone, environment="clone", exclude=settings.exclude).fingerprint == (
            head.probe_fingerprint
        )

        [event] = first.get_asset_materialization_events()
        meta = event.materialization.metadata
        assert meta["reused"].value == 0
        assert meta["built"].value == len(history.revisions)
        assert meta["revisions"].value == len(history.revisions)
        assert meta["head"].value == DEMO_OLD_HEAD
        assert meta["history_fingerprint"].value == history.fingerprint
        index = ExpectedIndex.from_dict(meta["index"].value)
        assert index == expected.index()
        assert index.probe_fingerprint(DEMO_OLD_HEAD) == expected.probe_fingerprint(DEMO_OLD_HEAD)
        table = meta["schemas"].value
        assert f"`{DEMO_OLD_HEAD}` (head)" in table
        assert f"`{expected.probe_fingerprint(DEMO_OLD_HEAD)[:12]}`" in table
        assert "password" not in str({k: v.value for k, v in meta.items()})
        assert event.materialization.tags["dagster/data_version"] == history.fingerprint

        second = _materialize(instance, resources)
        [again] = second.get_asset_materialization_events()
        assert again.materialization.metadata["reused"].value == 1
        assert again.materialization.metadata["built"].value == 0
        assert cached_expected(project, exclude=settings.exclude) == expected
        assert again.materialization.tags["dagster/data_version"] == history.fingerprint
