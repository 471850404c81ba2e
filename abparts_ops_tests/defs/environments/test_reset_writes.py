"""reset_baseline through Dagster: proven before written, and the stamp gate follows it.

The package's reset (the ``pipeline`` fixture) was good: baseline, archive and reference
dump are on disk and the gate lets stamps through. Here a reset that cannot be proven (no
pg_dump of the server's version, so ``dump_parity`` cannot pass) and a dry run must leave
the Alembic project and the reference dump byte for byte as they were, show the proofs as
checks, and make the gate refuse; a good rerun then restores the gate.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import dagster as dg
import pytest

from abparts_ops.core.schema.dump import PG_DUMP_DIRS_ENV
from abparts_ops.defs.names import BASELINE_REVISION as BASELINE_KEY
from abparts_ops.defs.proof_gate import unproven_baseline
from abparts_ops_tests.defs.environments.conftest import Pipeline


def tree(*roots: Path) -> dict[str, str]:
    """sha256 of every file under ``roots`` (the Alembic project, the reference dump)."""
    out = {}
    for root in roots:
        paths = [root] if root.is_file() else sorted(root.rglob("*"))
        for path in paths:
            if path.is_file() and "__pycache__" not in path.parts:
                out[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def _state(pipeline: Pipeline) -> dict[str, str]:
    return tree(pipeline.layout.app_dir, pipeline.settings.resolved_reference_path())


def _gate(pipeline: Pipeline) -> str | None:
    checks = pipeline.defs.resolve_asset_graph().asset_check_keys
    return unproven_baseline(pipeline.instance, checks)


def _reset(pipeline: Pipeline, **config) -> dg.ExecuteInProcessResult:
    run_config = dg.RunConfig(ops={"baseline_revision": config}) if config else None
    return pipeline.run("reset_baseline", run_config=run_config)


def test_good_reset_wrote_baseline_archive_and_reference(pipeline: Pipeline) -> None:
    versions = pipeline.layout.versions_dir
    files = [p.name for p in versions.iterdir() if p.suffix == ".py"]
    assert files == [f for f in files if "_baseline_schema_" in f] and len(files) == 1
    archives = list(versions.parent.glob("versions_archive_*/MANIFEST.json"))
    assert len(archives) == 1
    assert "CREATE TABLE public.parts" in pipeline.settings.resolved_reference_path().read_text()
    assert _gate(pipeline) is None
    before = _state(pipeline)
    again = _reset(pipeline)
    assert again.success
    event = pipeline.instance.get_latest_materialization_event(BASELINE_KEY)
    assert event.asset_materialization.metadata["action"].value == "unchanged"
    assert _state(pipeline) == before and _gate(pipeline) is None


def test_unproven_reset_writes_nothing_and_the_gate_refuses(
    pipeline: Pipeline, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = _state(pipeline)
    monkeypatch.setenv(PG_DUMP_DIRS_ENV, str(tmp_path))  # a folder without pg_dump
    try:
        result = _reset(pipeline)
        assert not result.success
        proofs = {e.check_name: e for e in result.get_asset_check_evaluations()}
        assert proofs["round_trip"].passed
        assert not proofs["dump_parity"].passed
        assert proofs["dump_parity"].description.startswith("no pg_dump of PostgreSQL ")
        assert _state(pipeline) == before
        event = pipeline.instance.get_latest_materialization_event(BASELINE_KEY)
        metadata = event.asset_materialization.metadata
        assert metadata["action"].value == "refused"
        assert metadata["failed_proofs"].value == "dump_parity"
        assert "dump_parity failed" in (_gate(pipeline) or "")
    finally:
        monkeypatch.delenv(PG_DUMP_DIRS_ENV)
        restored = _reset(pipeline)
    assert restored.success and _gate(pipeline) is None
    assert _state(pipeline) == before


def test_dry_run_writes_nothing_and_is_not_a_baseline(pipeline: Pipeline) -> None:
    """Not even a missing reference dump is written back by a dry run (issue 12.7)."""
    reference = pipeline.settings.resolved_reference_path()
    original = reference.read_bytes()
    reference.unlink()
    before = _state(pipeline)
    try:
        result = _reset(pipeline, config={"dry_run": True})
        assert result.success
        assert all(e.passed for e in result.get_asset_check_evaluations())
        assert _state(pipeline) == before and not reference.exists()
        assert "was a dry run" in (_gate(pipeline) or "")
    finally:
        restored = _reset(pipeline)
    assert restored.success and _gate(pipeline) is None
    assert reference.read_bytes() == original
    event = pipeline.instance.get_latest_materialization_event(BASELINE_KEY)
    assert event.asset_materialization.metadata["reference_written"].value is True
