"""The per-environment assets in real Dagster runs on the demo: stamp, refuse, verify.

The package fixture materialized and proved the baseline once (``reset_baseline``);
each test gets fresh ``staging`` and ``prod`` databases cloned from the demo template.
"""

from __future__ import annotations

import getpass
from typing import Any

import dagster as dg
import pytest

from abparts_ops.core.rollout.identity import database_identity
from abparts_ops.core.schema.introspect import take_snapshot
from abparts_ops.defs.environment_assets import StampConfig
from abparts_ops.defs.names import stamp_key
from abparts_ops.defs.proof_gate import unproven_baseline
from abparts_ops.embedded.demo import (
    DEMO_OLD_HEAD,
    DEMO_UNKNOWN_REVISION,
    DRIFT_INDEX,
    introduce_drift,
    remove_drift,
)
from abparts_ops_tests.defs.environments.conftest import (
    VARIABLES,
    Pipeline,
    check_results,
    failure_description,
    failure_metadata,
    read_revisions,
    stamp_op,
)

EXCLUDE = ("knowledge_documents", "document_chunks")


def _values(metadata: Any) -> dict[str, Any]:
    return {k: getattr(v, "value", v) for k, v in metadata.items()}


def materializations(result: dg.ExecuteInProcessResult, env: str) -> list[dict[str, Any]]:
    """Metadata of the run's materializations of ``<env>/alembic_stamp``."""
    return [
        _values(event.materialization.metadata)
        for event in result.get_asset_materialization_events()
        if event.materialization.asset_key == stamp_key(env)
    ]


def observations(result: dg.ExecuteInProcessResult, env: str) -> list[dg.AssetObservation]:
    """The run's observations of ``<env>/alembic_stamp``."""
    return [
        event.asset_observation_data.asset_observation
        for event in result.get_asset_observation_events()
        if event.asset_observation_data.asset_observation.asset_key == stamp_key(env)
    ]


def test_dry_run_then_stamp_then_verify_then_drift(
    pipeline: Pipeline, envs: dict[str, str]
) -> None:
    """The operator's path: dry run, stamp staging, prod needs confirm, verify, drift."""
    head = pipeline.baseline_revision
    staging_fp = take_snapshot(envs["staging"], exclude=EXCLUDE).fingerprint

    # Dry run (the default): no materialization, an observation saying what would happen.
    dry = pipeline.stamp("staging")
    assert dry.success
    assert materializations(dry, "staging") == []
    [observation] = observations(dry, "staging")
    meta = _values(observation.metadata)
    assert meta["action"] == "dry_run"
    assert meta["revision_before"] == DEMO_OLD_HEAD
    assert meta["target"] == head
    assert f"would replace {DEMO_OLD_HEAD} with {head}" in meta["message"]
    assert check_results(dry) == {}
    assert read_revisions(envs["staging"]) == (DEMO_OLD_HEAD,)
    assert take_snapshot(envs["staging"], exclude=EXCLUDE).fingerprint == staging_fp

    # A real stamp of staging: materialized, audited, and its checks pass in the same run.
    real = pipeline.stamp("staging", tags={"dagster/user": "ops@example.com"}, dry_run=False)
    assert real.success
    [meta] = materializations(real, "staging")
    source = pipeline.instance.get_latest_materialization_event(dg.AssetKey("source_schema"))
    assert source is not None and source.asset_materialization is not None
    assert meta["purged_archived"] == DEMO_OLD_HEAD and meta["purged_unknown"] == ""
    assert meta["state_before"] == "awaiting_stamp" and meta["identity_key"]
    assert meta == {
        **meta,
        "environment": "staging",
        "action": "stamped",
        "revision_before": DEMO_OLD_HEAD,
        "revision_after": head,
        "target": head,
        "purged": DEMO_OLD_HEAD,
        "creates_version_table": False,
        "reference_fingerprint": source.asset_materialization.metadata["fingerprint"].value,
        "actual_fingerprint": staging_fp,
        "run_id": real.run_id,
        "launched_by": "ops@example.com",
    }
    assert isinstance(meta["lock_wait_ms"], float)
    checks = check_results(real)
    assert checks[("staging", "revision_is_head")].passed
    assert checks[("staging", "schema_matches_reference")].passed
    assert read_revisions(envs["staging"]) == (head,)

    # Prod is protected: without the confirmation the run fails and nothing is written.
    refused = pipeline.stamp("prod", dry_run=False)
    assert not refused.success
    assert failure_description(refused) == (
        "prod is protected: set run config `confirm: prod` to stamp it (nothing was written)."
    )
    assert read_revisions(envs["prod"]) == (DEMO_UNKNOWN_REVISION,)
    assert materializations(refused, "prod") == []

    # With it, through the implicit asset job the UI uses.
    confirmed = pipeline.run(
        "__ASSET_JOB",
        asset_selection=[stamp_key("prod")],
        run_config=dg.RunConfig(ops={stamp_op("prod"): StampConfig(dry_run=False, confirm="prod")}),
    )
    assert confirmed.success
    [meta] = materializations(confirmed, "prod")
    assert (meta["action"], meta["purged"], meta["revision_after"]) == (
        "stamped",
        DEMO_UNKNOWN_REVISION,
        head,
    )
    assert meta["purged_unknown"] == DEMO_UNKNOWN_REVISION  # in no history, said apart
    assert "found in no history" in meta["message"]
    assert meta["launched_by"] == getpass.getuser()
    assert read_revisions(envs["prod"]) == (head,)

    # A second stamp is a no-op that still materializes (the environment is at the baseline).
    again = pipeline.stamp("prod", dry_run=False, confirm="prod")
    assert again.success
    [meta] = materializations(again, "prod")
    assert meta["action"] == "noop" and "already at" in meta["message"]

    # verify_environments: every check of both environments passes; nothing materialized.
    verify = pipeline.verify()
    assert verify.success
    assert verify.get_asset_materialization_events() == []
    results = check_results(verify)
    assert set(results) == {
        (env, name)
        for env in ("dev", "staging", "prod")
        for name in ("revision_is_head", "schema_matches_reference")
    }
    assert all(results[(env, name)].passed for env, name in results if env != "dev")
    assert _values(results[("prod", "schema_matches_reference")].metadata)["differences"] == 0

    # Drift: an index added by hand on staging fails its schema check, with the diff.
    introduce_drift(envs["staging"], "index")
    drifted = check_results(pipeline.verify())
    schema = drifted[("staging", "schema_matches_reference")]
    assert not schema.passed
    meta = _values(schema.metadata)
    assert (meta["differences"], meta["extra"], meta["missing"]) == (1, 1, 0)
    assert DRIFT_INDEX in meta["diff"]
    assert drifted[("staging", "revision_is_head")].passed
    assert drifted[("prod", "schema_matches_reference")].passed

    # ... and a stamp of the drifted staging is refused with the diff attached.
    before = read_revisions(envs["staging"])
    refused = pipeline.stamp("staging", dry_run=False)
    assert not refused.success
    assert failure_description(refused).startswith(
        "staging: schema differs from the reference in 1 object(s) (the expected schema at "
        f"{head}); refusing to stamp"
    )
    meta = failure_metadata(refused)
    assert DRIFT_INDEX in meta["diff"]
    assert meta["differences"] == 1
    assert read_revisions(envs["staging"]) == before


def test_checks_read_live_state_without_a_stamp(pipeline: Pipeline) -> None:
    """Never stamped: the revision check fails with the state, the schema check passes.

    Staging holds an id of the archived history (awaiting its stamp), prod an id found
    in no history (unknown revision); both have the baseline's schema.
    """
    head = pipeline.baseline_revision
    results = check_results(pipeline.verify())
    staging = results[("staging", "revision_is_head")]
    assert not staging.passed
    meta = _values(staging.metadata)
    assert {k: meta[k] for k in ("environment", "current", "head", "state")} == {
        "environment": "staging",
        "current": DEMO_OLD_HEAD,
        "head": head,
        "state": "awaiting_stamp",
    }
    assert staging.description.startswith(f"staging is at revision {DEMO_OLD_HEAD}; the head")
    assert "awaiting its stamp" in staging.description and "stamp_staging" in staging.description
    prod = results[("prod", "revision_is_head")]
    assert _values(prod.metadata)["state"] == "unknown_revision"
    assert f"{DEMO_UNKNOWN_REVISION} is in no history" in prod.description
    assert not results[("prod", "revision_is_head")].passed
    assert results[("prod", "schema_matches_reference")].passed
    assert results[("staging", "schema_matches_reference")].passed


def test_unreachable_environment_fails_its_checks_clearly(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A wrong database name: both checks of that environment fail with one safe line."""
    monkeypatch.setenv("ABPT_ENVTEST_STAGING_URL", pipeline.urls["staging"] + "_missing")
    results = check_results(pipeline.verify())
    for name in ("revision_is_head", "schema_matches_reference"):
        evaluation = results[("staging", name)]
        assert not evaluation.passed
        assert evaluation.description.startswith("staging: cannot use postgresql")
        assert "does not exist" in evaluation.description
    assert results[("prod", "schema_matches_reference")].passed


def _report_proof(pipeline: Pipeline, name: str, passed: bool) -> None:
    pipeline.instance.report_runless_asset_event(
        dg.AssetCheckEvaluation(
            asset_key=dg.AssetKey("baseline_revision"), check_name=name, passed=passed
        )
    )


def test_failing_proof_stops_every_stamp(pipeline: Pipeline, staging_env: str) -> None:
    """The latest round_trip failed: every stamp (dry runs too) is refused, nothing written."""
    assert (
        unproven_baseline(pipeline.instance, pipeline.defs.resolve_asset_graph().asset_check_keys)
        is None
    )
    _report_proof(pipeline, "round_trip", passed=False)
    try:
        for env, config in (
            ("staging", {}),
            ("staging", {"dry_run": False}),
            ("prod", {"dry_run": False, "confirm": "prod"}),
        ):
            result = pipeline.stamp(env, **config)
            assert not result.success
            assert failure_description(result) == (
                f"{env}: refusing to stamp: no proven baseline yet: run reset_baseline first "
                "(the baseline is not proven: round_trip failed; nothing was written)"
            )
        assert read_revisions(staging_env) == (DEMO_OLD_HEAD,)
        assert read_revisions(pipeline.urls["prod"]) == (DEMO_UNKNOWN_REVISION,)
    finally:
        _report_proof(pipeline, "round_trip", passed=True)
    assert pipeline.stamp("staging", dry_run=False).success


def test_real_failing_round_trip_stops_the_stamp(pipeline: Pipeline, staging_env: str) -> None:
    """The source gains an index the baseline lacks: round_trip fails, stamps stop.

    In the run that proves the baseline the stamp is skipped (blocking check); in a later
    run the stamp reads the failed proof from the instance and refuses.
    """
    proofs_then_stamp = dg.define_asset_job(
        "proofs_then_stamp",
        selection=dg.AssetSelection.assets("source_schema")
        | dg.AssetSelection.checks_for_assets("baseline_revision")
        | dg.AssetSelection.assets(stamp_key("staging")),
    )
    defs = dg.Definitions.merge(pipeline.defs, dg.Definitions(jobs=[proofs_then_stamp]))
    job = defs.resolve_job_def("proofs_then_stamp")
    config = dg.RunConfig(ops={stamp_op("staging"): StampConfig(dry_run=False)})
    dev = pipeline.urls["dev"]
    introduce_drift(dev, "index")
    try:
        result = job.execute_in_process(
            instance=pipeline.instance, run_config=config, raise_on_error=False
        )
        assert not result.success
        proofs = {e.check_name: e for e in result.get_asset_check_evaluations()}
        assert not proofs["round_trip"].passed
        started = {e.step_key for e in result.all_events if e.is_step_start}
        assert stamp_op("staging") not in started  # the blocking proof stopped it
        assert materializations(result, "staging") == []
        assert read_revisions(staging_env) == (DEMO_OLD_HEAD,)
        later = pipeline.stamp("staging", dry_run=False)
        assert not later.success
        description = failure_description(later)
        assert "round_trip failed" in description
        assert read_revisions(staging_env) == (DEMO_OLD_HEAD,)
    finally:
        remove_drift(dev)
        restored = job.execute_in_process(
            instance=pipeline.instance, run_config=config, raise_on_error=False
        )
    assert restored.success
    assert all(e.passed for e in restored.get_asset_check_evaluations())
    assert read_revisions(staging_env) == (pipeline.baseline_revision,)


def test_a_stamp_refuses_when_two_environments_are_one_database(
    pipeline: Pipeline, envs: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 12.4: staging's variable points at prod's database: no stamp, no confirmation
    bypass; nothing written."""
    monkeypatch.setenv(VARIABLES["staging"], envs["prod"])
    for config in ({}, {"dry_run": False}):
        result = pipeline.stamp("staging", **config)
        assert not result.success
        description = failure_description(result)
        assert description.startswith("staging: refusing to stamp: database ")
        assert "is also the database of prod" in description
    assert read_revisions(envs["prod"]) == (DEMO_UNKNOWN_REVISION,)


def test_a_protected_database_that_changed_needs_its_new_identity_acknowledged(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 12.4: prod's identity is recorded at its stamp; another database under the
    name prod is refused until run config acknowledges its identity."""
    first = pipeline.fresh_environments(monkeypatch, names=("prod",))["prod"]
    key = database_identity(first).key
    stamped = pipeline.stamp("prod", dry_run=False, confirm="prod", acknowledge_identity=key)
    assert stamped.success
    assert materializations(stamped, "prod")[0]["identity_key"] == key
    second = pipeline.fresh_environments(monkeypatch, names=("prod",))["prod"]
    new_key = database_identity(second).key
    refused = pipeline.stamp("prod", dry_run=False, confirm="prod", acknowledge_identity="")
    assert not refused.success
    description = failure_description(refused)
    assert f"identity {key} then, {new_key} now" in description
    assert f"acknowledge_identity: {new_key}" in description
    assert read_revisions(second) == (DEMO_UNKNOWN_REVISION,)
    ok = pipeline.stamp("prod", dry_run=False, confirm="prod", acknowledge_identity=new_key)
    assert ok.success and read_revisions(second) == (pipeline.baseline_revision,)
