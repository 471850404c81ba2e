"""The proofs gate alone, on an in-memory instance: what stops a stamp, and what does not.

No database: materializations and check evaluations are reported to the instance the
way runs record them.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import dagster as dg
import pytest

from abparts_ops.defs.metadata import launched_by
from abparts_ops.defs.names import BASELINE_REVISION as BASELINE_KEY
from abparts_ops.defs.names import REQUIRED_PROOFS
from abparts_ops.defs.proof_gate import proven_baseline, unproven_baseline

ALL_CHECKS = {dg.AssetCheckKey(BASELINE_KEY, n) for n in (*REQUIRED_PROOFS, "models_match")}
NO_MODELS = {dg.AssetCheckKey(BASELINE_KEY, n) for n in REQUIRED_PROOFS}


@pytest.fixture
def instance() -> Iterator[dg.DagsterInstance]:
    """An empty in-memory instance."""
    with dg.DagsterInstance.ephemeral() as instance:
        yield instance


def materialize(instance: dg.DagsterInstance, **metadata: str) -> None:
    """Record a materialization of ``baseline_revision``."""
    instance.report_runless_asset_event(
        dg.AssetMaterialization(asset_key=BASELINE_KEY, metadata=metadata)
    )


def evaluate(instance: dg.DagsterInstance, *names: str, passed: bool = True) -> None:
    """Record evaluations of the named proofs."""
    for name in names:
        instance.report_runless_asset_event(
            dg.AssetCheckEvaluation(asset_key=BASELINE_KEY, check_name=name, passed=passed)
        )


def test_never_materialized(instance: dg.DagsterInstance) -> None:
    """No baseline yet: the stamp says to run reset_baseline first."""
    assert unproven_baseline(instance, ALL_CHECKS) == (
        "baseline_revision was never materialized; run the reset_baseline job (and let its "
        "proofs pass) before stamping."
    )


def test_dry_run_baseline_is_not_a_baseline(instance: dg.DagsterInstance) -> None:
    """A dry-run baseline wrote no file: nothing to stamp with, whatever the proofs say."""
    materialize(instance, action="dry_run")
    evaluate(instance, *REQUIRED_PROOFS, "models_match")
    assert "was a dry run" in (unproven_baseline(instance, ALL_CHECKS) or "")


def test_all_proofs_passed(instance: dg.DagsterInstance) -> None:
    """Every proof passed after the latest baseline: the stamp may proceed."""
    materialize(instance, action="written", source_fingerprint="abc")
    time.sleep(0.01)
    evaluate(instance, *REQUIRED_PROOFS, "models_match")
    assert unproven_baseline(instance, ALL_CHECKS, "abc") is None


def test_models_match_required_only_when_defined(instance: dg.DagsterInstance) -> None:
    """Without configured models there is no models_match check to wait for."""
    materialize(instance, action="written")
    time.sleep(0.01)
    evaluate(instance, *REQUIRED_PROOFS)
    assert unproven_baseline(instance, NO_MODELS) is None
    assert unproven_baseline(instance, ALL_CHECKS) == (
        "the baseline is not proven: models_match never ran (rerun the reset_baseline job and "
        "fix what its proofs report; nothing was written)."
    )


def test_failed_missing_and_stale_proofs(instance: dg.DagsterInstance) -> None:
    """Failed, never run, or run on an older baseline: each named, all in one line."""
    evaluate(instance, "single_head")  # before the baseline below: stale
    time.sleep(0.01)
    materialize(instance, action="written", source_fingerprint="abc")
    time.sleep(0.01)
    evaluate(instance, "round_trip", passed=False)
    evaluate(instance, "models_match")
    assert unproven_baseline(instance, ALL_CHECKS, "def") == (
        "the baseline is not proven: source_schema changed since the baseline was written "
        "(baseline from abc, reference now def); single_head has not run on the latest "
        "baseline_revision; round_trip failed; dump_parity never ran; downgrade_clean never "
        "ran (rerun the reset_baseline job and fix what its proofs report; nothing was "
        "written)."
    )


def test_launched_by() -> None:
    """The UI's user tag wins, then a ``user`` tag, then the OS user."""
    assert launched_by({"dagster/user": "ana@example.com", "user": "x"}) == "ana@example.com"
    assert launched_by({"user": "ops"}) == "ops"
    assert launched_by({})


def test_proven_baseline_is_only_a_written_one(instance: dg.DagsterInstance) -> None:
    """A dry run or a refused reset names a revision no versions folder holds: not proven."""
    assert proven_baseline(instance) is None
    for action, expected in (("written", "r1"), ("dry_run", None), ("unchanged", "r1")):
        materialize(instance, action=action, revision="r1")
        assert proven_baseline(instance) == expected, action
    materialize(instance, action="refused", revision="r1")
    assert proven_baseline(instance) is None
