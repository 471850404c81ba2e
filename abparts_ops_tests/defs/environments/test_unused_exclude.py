"""An ``exclude`` pattern that matches no table is reported on ``source_schema``."""

from __future__ import annotations

import dagster as dg
import pytest

from abparts_ops.core.schema.exclusions import unused_patterns
from abparts_ops.defs.resources import SchemaPolicyResource
from abparts_ops.defs.schema_assets import source_schema
from abparts_ops_tests.defs.environments.conftest import Pipeline


def test_unused_patterns() -> None:
    """Globs and exact names; order kept; a pattern matching anything is used."""
    names = ["knowledge_documents", "document_chunks", "audit_2024"]
    patterns = ["knowledge_document", "document_*", "audit_20??", "tmp_*"]
    assert unused_patterns(patterns, names) == ["knowledge_document", "tmp_*"]
    assert unused_patterns([], names) == [] and unused_patterns(["x"], []) == ["x"]


def test_source_schema_reports_a_pattern_matching_nothing(
    pipeline: Pipeline, caplog: pytest.LogCaptureFixture
) -> None:
    """A typo in `exclude`: metadata names it and a warning says to fix it."""
    resources = dict(pipeline.defs.resources)
    policy = resources["policy"]
    assert isinstance(policy, SchemaPolicyResource)
    resources["policy"] = SchemaPolicyResource(
        settings=policy.settings.model_copy(
            update={"exclude": ("knowledge_document", "document_chunks")}
        ),
    )
    with dg.instance_for_test() as instance:
        result = dg.materialize(
            [source_schema],
            resources={k: resources[k] for k in ("policy", "source_db", "alembic")},
            instance=instance,
        )
        (event,) = result.asset_materializations_for_node("source_schema")
        assert event.metadata["unused_exclude_patterns"].value == "knowledge_document"
        warnings = [
            e.message for e in instance.all_logs(result.run_id)
            if e.level >= 30 and "matched no table" in e.message
        ]
        assert warnings and "'knowledge_document'" in warnings[0]
    with dg.instance_for_test() as instance:
        result = dg.materialize(
            [source_schema],
            resources={"policy": policy, **{k: resources[k] for k in ("source_db", "alembic")}},
            instance=instance,
        )
        (event,) = result.asset_materializations_for_node("source_schema")
        assert event.metadata["unused_exclude_patterns"].value == ""
