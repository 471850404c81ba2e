"""Real ticks of ``schema_drift_sensor`` on a real instance, against real databases.

Every test starts from the package's in-sync environments and leaves them in sync.
"""

from __future__ import annotations

import shutil
import uuid
from typing import Any

import dagster as dg
import pytest
from sqlalchemy.engine import make_url

from abparts_ops.core.db import create_database
from abparts_ops.core.settings import load_settings
from abparts_ops.core.watch.drift import DriftCursor, run_key
from abparts_ops.core.watch.states import EnvironmentState
from abparts_ops.defs.names import (
    DRIFT_TAG,
    ENVIRONMENT_TAG,
    FOUND_TAG,
    VERDICT_TAG,
    check_keys,
    live_revision_key,
    live_schema_key,
)
from abparts_ops.embedded.demo import (
    DEMO_DRIFT_REVISION,
    DEMO_OLD_HEAD,
    DRIFT_INDEX,
    introduce_drift,
    remove_drift,
)
from abparts_ops.embedded.server import EmbeddedPostgres
from abparts_ops_tests.conftest import REPO
from abparts_ops_tests.defs.drift.conftest import (
    NAMES,
    Watch,
    config_yaml,
    make_definitions,
    variable,
)


def live_checks(data: Any) -> dict[tuple[str, str], dg.AssetCheckEvaluation]:
    """The tick's check evaluations of the live assets: (env, live_*) -> evaluation."""
    return {
        tuple(event.asset_key.path): event
        for event in data.asset_events
        if isinstance(event, dg.AssetCheckEvaluation)
    }


def observations(data: Any) -> dict[tuple[str, str], dict[str, Any]]:
    """The tick's observations: (env, live_*) -> metadata values."""
    return {
        tuple(event.asset_key.path): {k: v.value for k, v in event.metadata.items()}
        for event in data.asset_events
        if isinstance(event, dg.AssetObservation)
    }


def verify(watch: Watch, request: dg.RunRequest) -> dg.ExecuteInProcessResult:
    """Run what the request asks for, as the daemon would: the job, only those checks."""
    job = watch.defs.resolve_job_def(request.job_name or "")
    subset = job.get_subset(
        asset_selection=set(request.asset_selection or ()),
        asset_check_selection=set(request.asset_check_keys or ()),
    )
    return subset.execute_in_process(
        instance=watch.instance,
        tags={**request.tags, "dagster/run_key": request.run_key or ""},
        raise_on_error=False,
    )


def assert_all_in_sync(data: Any) -> None:
    assert not data.run_requests
    assert data.skip_message.startswith("all in sync:")
    lines = data.skip_message.splitlines()[1:]
    assert [line.split(":")[0] for line in lines] == list(NAMES)
    # one line per environment, its state first (issue 20: the tick says it)
    assert all(": in_sync: at the head " + DEMO_OLD_HEAD in line for line in lines)


def test_all_in_sync_skips_with_one_line_per_environment(watch: Watch) -> None:
    data = watch.tick(fresh=True)
    assert_all_in_sync(data)
    seen = observations(data)
    assert set(seen) == {(env, kind) for env in NAMES for kind in ("live_revision", "live_schema")}
    for env in NAMES:
        revision, schema = seen[(env, "live_revision")], seen[(env, "live_schema")]
        assert revision["revision"] == f"revision {DEMO_OLD_HEAD}"
        assert revision["head"] == DEMO_OLD_HEAD
        assert revision["revision_in_sync"] == 1 and revision["reachable"] == 1
        assert revision["state"] == schema["state"] == "in_sync"
        assert revision["pending"] == "" and revision["pending_count"] == 0
        assert revision["expected_revision"] == DEMO_OLD_HEAD
        assert schema["schema_in_sync"] == 1 and schema["differing_objects"] == 0
        assert schema["fingerprint"] == schema["reference"] and len(schema["fingerprint"]) == 64
        assert schema["tables"] > 20 and schema["elapsed_ms"] > 0
    cursor = DriftCursor.decode(data.cursor)
    assert cursor.head == DEMO_OLD_HEAD
    assert {env: m.status for env, m in cursor.environments.items()} == dict.fromkeys(
        NAMES, EnvironmentState.IN_SYNC
    )
    # the observations are on the instance: the live assets' history
    records = watch.instance.fetch_observations(
        dg.AssetRecordsFilter(asset_key=live_schema_key("staging")), limit=1
    ).records
    assert records and records[0].asset_observation is not None
    assert records[0].asset_observation.metadata["schema_in_sync"].value == 1


def test_index_on_staging_is_verified_once_then_back_in_sync(watch: Watch) -> None:
    introduce_drift(watch.urls["staging"], "index")
    try:
        data = watch.tick(fresh=True)
        assert len(data.run_requests) == 1
        request = data.run_requests[0]
        assert request.job_name == "verify_environments"
        assert set(request.asset_check_keys) == set(check_keys("staging"))
        assert not request.asset_selection
        assert request.tags[DRIFT_TAG] == EnvironmentState.SCHEMA_DRIFT
        assert request.tags[ENVIRONMENT_TAG] == "staging"
        # what it found, in the run's tags (the Runs list and the tick's runs show them)
        assert request.tags[FOUND_TAG] == "staging: schema_drift"
        # the live assets' checks colour the asset graph: staging's schema red, the rest green
        checks = live_checks(data)
        schema_check = checks[("staging", "live_schema")]
        assert (schema_check.check_name, schema_check.passed) == ("schema_in_sync", False)
        assert schema_check.severity == dg.AssetCheckSeverity.ERROR
        assert (schema_check.description or "").startswith("staging: schema_drift: ")
        assert checks[("staging", "live_revision")].passed
        assert all(
            checks[(env, kind)].passed
            for env in ("dev", "prod")
            for kind in ("live_revision", "live_schema")
        )
        seen = observations(data)
        fingerprint = seen[("staging", "live_schema")]["fingerprint"]
        assert request.run_key == run_key("staging", (DEMO_OLD_HEAD,), fingerprint)
        assert seen[("staging", "live_schema")]["schema_in_sync"] == 0
        assert "differing_objects" not in seen[("staging", "live_schema")]
        assert seen[("staging", "live_revision")]["revision_in_sync"] == 1
        assert seen[("prod", "live_schema")]["schema_in_sync"] == 1

        # the requested verification fails, with the index in its diff
        result = verify(watch, request)
        # the run stays a success (it verified) and says what it found in its tags
        assert result.success
        run = watch.instance.get_run_by_id(result.run_id)
        assert run is not None and run.tags[VERDICT_TAG] == "staging: schema_drift"
        evaluations = {
            (e.asset_key.path[0], e.check_name): e for e in result.get_asset_check_evaluations()
        }
        assert set(evaluations) == {
            ("staging", "revision_is_head"),
            ("staging", "schema_matches_reference"),
        }
        assert evaluations[("staging", "revision_is_head")].passed
        schema_check = evaluations[("staging", "schema_matches_reference")]
        assert not schema_check.passed
        assert DRIFT_INDEX in schema_check.metadata["diff"].value
        assert schema_check.metadata["differences"].value == 1

        # the same drift on the next tick: no second run
        again = watch.tick()
        assert not again.run_requests
        assert again.skip_message.startswith("no new drift:")
        assert f"(verification already requested: {request.run_key})" in again.skip_message
        # one line per environment, its state first, with the count once known
        lines = again.skip_message.splitlines()[1:]
        assert lines[NAMES.index("staging")].startswith("staging: schema_drift (1 object): ")
        again_check = live_checks(again)[("staging", "live_schema")]
        assert (again_check.description or "").startswith("staging: schema_drift (1 object)")
        # ... and now that a verification diffed this schema, the count is known
        assert observations(again)[("staging", "live_schema")]["differing_objects"] == 1
    finally:
        remove_drift(watch.urls["staging"])
    back = watch.tick()
    assert_all_in_sync(back)
    memory = DriftCursor.decode(back.cursor).environments["staging"]
    assert memory.status == EnvironmentState.IN_SYNC
    assert memory.episode == 1 and memory.requested is None


def test_unchanged_catalogs_reuse_the_fingerprint_and_a_change_is_still_caught(
    watch: Watch,
) -> None:
    """The cursor keeps each environment's catalog token: quiet ticks skip the full query.

    The first tick computes every fingerprint; the next reuses them all; an index added
    on staging between two ticks moves staging's token only, and the tick that follows
    recomputes staging's fingerprint and requests its verification.
    """
    first = watch.tick(fresh=True)
    assert {observations(first)[(env, "live_schema")]["catalogs_unchanged"] for env in NAMES} == {
        0
    }
    quiet = watch.tick()
    assert_all_in_sync(quiet)
    assert {observations(quiet)[(env, "live_schema")]["catalogs_unchanged"] for env in NAMES} == {
        1
    }
    memory = DriftCursor.decode(quiet.cursor).environments["staging"]
    assert memory.token and memory.table_count and memory.known() is not None
    introduce_drift(watch.urls["staging"], "index")
    try:
        data = watch.tick()
        [request] = data.run_requests
        assert request.tags[ENVIRONMENT_TAG] == "staging"
        seen = observations(data)
        assert seen[("staging", "live_schema")]["catalogs_unchanged"] == 0
        assert seen[("staging", "live_schema")]["schema_in_sync"] == 0
        assert {seen[(env, "live_schema")]["catalogs_unchanged"] for env in NAMES} == {0, 1}
    finally:
        remove_drift(watch.urls["staging"])
    assert_all_in_sync(watch.tick())


def test_version_row_moved_back_is_schema_drift_against_that_revision(watch: Watch) -> None:
    """Behaviour changed by issue 10: prod's row names the head's parent, with the head's
    schema. Against its own revision that is schema drift (not "revision drift"), with
    the head listed as pending."""
    introduce_drift(watch.urls["prod"], "revision")
    try:
        data = watch.tick(fresh=True)
        [request] = data.run_requests
        assert request.tags[DRIFT_TAG] == EnvironmentState.SCHEMA_DRIFT
        assert request.tags[ENVIRONMENT_TAG] == "prod"
        assert set(request.asset_check_keys) == set(check_keys("prod"))
        seen = observations(data)
        assert seen[("prod", "live_revision")]["revision_in_sync"] == 0
        assert seen[("prod", "live_revision")]["revision"] == f"revision {DEMO_DRIFT_REVISION}"
        assert seen[("prod", "live_revision")]["expected_revision"] == DEMO_DRIFT_REVISION
        assert DEMO_OLD_HEAD in seen[("prod", "live_revision")]["pending"]
        assert seen[("prod", "live_schema")]["schema_in_sync"] == 0
        state = DriftCursor.decode(data.cursor).environments["prod"]
        assert state.status == EnvironmentState.SCHEMA_DRIFT
        assert state.revisions == (DEMO_DRIFT_REVISION,)
        result = verify(watch, request)
        evaluations = {e.check_name: e for e in result.get_asset_check_evaluations()}
        assert not evaluations["revision_is_head"].passed
        schema_check = evaluations["schema_matches_reference"]
        assert not schema_check.passed
        assert schema_check.metadata["state"].value == "schema_drift"
        assert f"expected schema at {DEMO_DRIFT_REVISION}" in schema_check.description
    finally:
        watch.set_version("prod", DEMO_OLD_HEAD)
    assert_all_in_sync(watch.tick())


def test_the_source_is_watched_like_any_environment(watch: Watch) -> None:
    """Behaviour changed by issue 10: dev is no longer the reference; its drift is verified."""
    introduce_drift(watch.urls["dev"], "default")
    try:
        data = watch.tick(fresh=True)
        [request] = data.run_requests
        assert request.tags[ENVIRONMENT_TAG] == "dev"
        assert set(request.asset_check_keys) == set(check_keys("dev"))
        reason = observations(data)[("dev", "live_schema")]["reason"]
        assert reason.startswith("dev: schema drift: at revision " + DEMO_OLD_HEAD)
        assert "source_schema" not in reason
    finally:
        remove_drift(watch.urls["dev"])
    assert_all_in_sync(watch.tick(fresh=True))


def test_without_a_reference_the_sensor_asks_for_expected_schemas(
    watch: Watch, monkeypatch: pytest.MonkeyPatch, tmp_path
) -> None:
    """The reference is the one cache (issue 19); with neither it nor a materialization,
    the sensor asks for expected_schemas. With the cache alone it judges from the cache."""
    empty = dg.DagsterInstance.ephemeral()  # no expected_schemas materialization there
    sensor = watch.defs.resolve_sensor_def("schema_drift_sensor")
    resources = {key: watch.defs.resources[key] for key in sensor.required_resource_keys}

    def tick() -> Any:
        with dg.build_sensor_context(
            instance=empty, definitions=watch.defs, resources=resources
        ) as context:
            return sensor.evaluate_tick(context)

    assert_all_in_sync(tick())  # the package's cache describes the files
    monkeypatch.setenv("ABPARTS_OPS_CACHE", str(tmp_path / "no_cache"))
    data = tick()
    assert not data.run_requests and not data.asset_events
    assert data.skip_message.startswith("materialize expected_schemas first")


def test_a_stopped_server_is_unreachable_and_the_others_still_probed(
    watch: Watch, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A fourth environment, qa, lives on a server of its own, which then stops."""
    home = REPO / ".abparts_ops" / f"drift_qa_{uuid.uuid4().hex[:8]}"
    server = EmbeddedPostgres(home)
    try:
        info = server.start()
        qa_url = create_database(info.url("postgres"), "qa")
        monkeypatch.setenv(variable("qa"), qa_url)
        config = watch.config_path.with_name("abparts_ops_drifttest_qa.yaml")
        config.write_text(config_yaml({"qa": variable("qa")}), encoding="utf-8")
        defs = make_definitions(load_settings(config))

        first = watch.tick(defs=defs, fresh=True)
        [request] = first.run_requests  # an empty database: no version table, other schema
        assert request.tags[ENVIRONMENT_TAG] == "qa"
        assert observations(first)[("qa", "live_revision")]["revision"] == "no version table"

        server.stop()
        second = watch.tick(defs=defs, cursor=first.cursor)
        assert not second.run_requests
        lines = second.skip_message.splitlines()[1:]
        assert [line.split(":")[0] for line in lines] == [*NAMES, "qa"]
        assert all(": in_sync: " in line for line in lines[:3])
        assert lines[3].startswith("qa: unreachable: ")
        assert "server is running" in lines[3]
        password = make_url(qa_url).password
        assert password and password not in second.skip_message
        seen = observations(second)
        assert seen[("qa", "live_revision")]["reachable"] == 0
        assert seen[("qa", "live_revision")]["status"] == EnvironmentState.UNREACHABLE
        assert seen[("qa", "live_revision")]["state"] == "unreachable"
        assert "revision_in_sync" not in seen[("qa", "live_revision")]
        assert all(password not in str(v) for meta in seen.values() for v in meta.values())
        assert seen[("staging", "live_schema")]["schema_in_sync"] == 1
        memory = DriftCursor.decode(second.cursor).environments["qa"]
        assert memory.status == EnvironmentState.UNREACHABLE and memory.revisions is None
        assert memory.requested == request.run_key
    finally:
        server.stop(mode="immediate")
        shutil.rmtree(home, ignore_errors=True)
def test_the_live_assets_are_reported_and_their_checks_run_on_demand(watch: Watch) -> None:
    """Issue 20: the live assets are drawn with their state, never as "Never materialized"
    pending work: the first tick reports a materialization of each (a change of the live
    database), later ticks only when it changes; executing their checks probes now."""
    graph = watch.defs.resolve_asset_graph()
    for env in NAMES:
        for key in (live_revision_key(env), live_schema_key(env)):
            assert not graph.get(key).is_executable  # external: only the sensor reports them
    first = watch.tick(fresh=True)
    reported = {
        tuple(e.asset_key.path)
        for e in first.asset_events
        if isinstance(e, dg.AssetMaterialization)
    }
    assert reported == {(env, kind) for env in NAMES for kind in ("live_revision", "live_schema")}
    quiet = watch.tick()
    assert not [e for e in quiet.asset_events if isinstance(e, dg.AssetMaterialization)]
    assert len(live_checks(quiet)) == 2 * len(NAMES)  # the checks are evaluated every tick

    job = watch.defs.resolve_implicit_global_asset_job_def().get_subset(
        asset_check_selection={
            dg.AssetCheckKey(live_revision_key("prod"), "revision_in_sync"),
            dg.AssetCheckKey(live_schema_key("prod"), "schema_in_sync"),
        },
    )
    introduce_drift(watch.urls["prod"], "index")
    try:
        result = job.execute_in_process(instance=watch.instance, raise_on_error=False)
    finally:
        remove_drift(watch.urls["prod"])
    assert result.success
    evaluations = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert evaluations["revision_in_sync"].passed
    schema = evaluations["schema_in_sync"]
    assert not schema.passed and schema.severity == dg.AssetCheckSeverity.ERROR
    assert (schema.description or "").startswith("prod: schema_drift: ")
    assert_all_in_sync(watch.tick())
