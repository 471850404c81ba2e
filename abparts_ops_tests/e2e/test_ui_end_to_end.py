"""The whole operator path, as a person meets it: `dagster dev`, the GraphQL API, a browser.

Against the embedded demo in an isolated home: the code location loads with every asset,
check, job, sensor and schedule; `reset_baseline` succeeds; staging is stamped (dry run,
then real) and prod (with confirm); the drift sensor, once started, catches an index added
by hand on staging and requests a verification whose `schema_matches_reference` check
fails with that index in its diff. A headless Chromium then opens the asset graph and the
stamp asset's checks, and the test asserts on the text on screen. Screenshots and the
processes' logs go to ``test-artifacts/``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from dagster import DagsterRunStatus

from abparts_ops.embedded.demo import DRIFT_INDEX
from abparts_ops_tests.e2e.conftest import (
    CHROMIUM,
    CHROMIUM_ARGS,
    IsolatedDemo,
    ManagedProcess,
    dagster_dev,
    launch_and_wait,
    run_python,
    stop_sensors,
)
from abparts_ops_tests.e2e.graphql import (
    CheckExecution,
    DagsterUIClient,
    RepositoryContents,
    wait_for,
)

pytestmark = pytest.mark.e2e

LOCATION = "abparts_ops"
ENVIRONMENTS = ("dev", "staging", "prod")
BASELINE_ASSETS = {
    "source_schema",
    "reference_dump",
    "migration_history",
    "baseline_revision",
    "expected_schemas",
}
EXPECTED_CHECKS = {
    "baseline_revision": {
        "round_trip",
        "dump_parity",
        "downgrade_clean",
        "single_head",
        "models_match",
    },
    # every environment, the source included, has its stamp and checks (issue 10)
    **{
        f"{env}/alembic_stamp": {"revision_is_head", "schema_matches_reference"}
        for env in ENVIRONMENTS
    },
}
EXPECTED_JOBS = {"reset_baseline", "verify_environments"}
EXPECTED_SENSORS = {"schema_drift_sensor", "revision_files_sensor"}
EXPECTED_SCHEDULES = {"nightly_verification"}
ASSET_JOB = "__ASSET_JOB"
DRIFT_SENSOR = "schema_drift_sensor"

# Bounds (seconds). The whole test is meant to finish in under four minutes on 2 cores.
SERVER_UP = 180
LOCATION_LOADED = 120
RESET_RUN = 180
STAMP_RUN = 120
DRIFT_CAUGHT = 150
VERIFY_RUN = 120
PAGE = 45_000  # milliseconds, for the browser


# Runs in a child so the demo's URL variables never enter the test session.
_DRIFT_HELPER = """
import json, os
from abparts_ops.embedded.demo import ensure_demo, introduce_drift
ensure_demo()
print(json.dumps(introduce_drift(os.environ["ABPARTS_STAGING_URL"], "index")))
"""


def _log(message: str, started: float) -> None:
    print(f"[e2e {time.monotonic() - started:6.1f}s] {message}", flush=True)


def _assert_contents(contents: RepositoryContents) -> None:
    expected_assets = (
        BASELINE_ASSETS
        | {f"{env}/alembic_stamp" for env in ENVIRONMENTS}
        | {f"{env}/{kind}" for env in ENVIRONMENTS for kind in ("live_revision", "live_schema")}
    )
    missing = expected_assets - contents.assets
    assert not missing, (
        f"assets missing from the code location: {sorted(missing)}; "
        f"listed: {sorted(contents.assets)}"
    )
    for asset, checks in EXPECTED_CHECKS.items():
        absent = checks - contents.checks.get(asset, set())
        assert not absent, (
            f"checks missing on {asset}: {sorted(absent)}; "
            f"listed: {sorted(contents.checks.get(asset, set()))}"
        )
    assert EXPECTED_JOBS <= contents.jobs, f"jobs: {sorted(contents.jobs)}"
    assert EXPECTED_SENSORS <= set(contents.sensors), f"sensors: {sorted(contents.sensors)}"
    assert EXPECTED_SCHEDULES <= set(contents.schedules), f"schedules: {sorted(contents.schedules)}"
    assert ASSET_JOB in contents.jobs, f"no implicit asset job in {sorted(contents.jobs)}"


def _stamp(
    ui: DagsterUIClient, contents: RepositoryContents, env: str, config: dict[str, Any], what: str
) -> str:
    """Materialize ``<env>/alembic_stamp`` alone, as the asset page's Materialize does."""
    asset = f"{env}/alembic_stamp"
    op_name = contents.asset_ops.get(asset, asset.replace("/", "__"))
    return launch_and_wait(
        ui,
        contents,
        what,
        STAMP_RUN,
        job_name=ASSET_JOB,
        asset_selection=[asset],
        run_config={"ops": {op_name: {"config": config}}},
    )


def _check_in_run(
    ui: DagsterUIClient, asset: str, check: str, run_id: str
) -> CheckExecution | None:
    for execution in ui.check_executions(asset, check, limit=20):
        if execution.run_id == run_id:
            return execution
    return None


def _assert_stamped(ui: DagsterUIClient, env: str, run_id: str) -> None:
    """The stamp materialized its asset, and its checks, run with it, passed."""
    asset = f"{env}/alembic_stamp"
    assert asset in ui.materialized(run_id), (
        f"the stamp run {run_id} did not materialize {asset}: {ui.materialized(run_id)}"
    )
    for check in ("revision_is_head", "schema_matches_reference"):
        execution = _check_in_run(ui, asset, check, run_id)
        assert execution is not None, f"{asset} {check} did not run with the stamp {run_id}"
        assert execution.success, (
            f"{asset} {check} failed right after the stamp: {execution.text()}"
        )


def _wait_for_drift_verification(
    ui: DagsterUIClient, contents: RepositoryContents, since: float
) -> tuple[str, CheckExecution]:
    """Poll the sensor's ticks for a verify run in which staging's schema check failed."""
    candidates: dict[str, str] = {}  # run id -> last known status
    seen_ticks: list[str] = []

    def probe():
        sensor = ui.sensor(contents, DRIFT_SENSOR)
        seen_ticks[:] = [
            f"{t['status']} runs={len(t['runIds'])} "
            f"{(t.get('skipReason') or (t.get('error') or {}).get('message') or '')[:300]}"
            for t in sensor["sensorState"]["ticks"][:5]
        ]
        for tick in sensor["sensorState"]["ticks"]:
            if tick["timestamp"] >= since - 2:
                for run_id in tick["runIds"]:
                    candidates.setdefault(run_id, "NEW")
        for run_id in list(candidates):
            status = ui.run_status(run_id)
            candidates[run_id] = status.value
            if status not in {DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE}:
                continue
            execution = _check_in_run(
                ui, "staging/alembic_stamp", "schema_matches_reference", run_id
            )
            if execution is not None:
                return run_id, execution
        return None

    return wait_for(
        "the drift sensor to request a verification that checks staging",
        probe,
        DRIFT_CAUGHT + VERIFY_RUN,
        interval=3.0,
        describe=lambda: (
            f"runs requested since the drift: {candidates or 'none'}; latest ticks: {seen_ticks}"
        ),
    )


# The graph's viewport: the element two levels above the asset graph's <svg>.
_GRAPH_VIEWPORT_BOX = """() => {
  const svg = document.querySelector('svg[class*=svgContainer]');
  const r = svg.parentElement.parentElement.getBoundingClientRect();
  return [r.x, r.y, r.width, r.height];
}"""


def _show_diff(page: Any, index: str) -> str:
    """Open the check's Markdown metadata (the diff) as a person would; return its text."""
    links = page.get_by_text("[Show Markdown]")
    links.first.wait_for(state="visible")
    seen = []
    for position in range(links.count()):
        links.nth(position).click()
        dialog = page.get_by_role("dialog")
        dialog.wait_for(state="visible")
        text = dialog.inner_text()
        if index in text:
            return text
        seen.append(text[:300])
        page.keyboard.press("Escape")
        dialog.wait_for(state="hidden")
    raise AssertionError(f"no Markdown metadata of the failed check names {index}: {seen}")


def _require_browser() -> None:
    """Fail at once, not after three minutes, when the browser cannot be driven."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise AssertionError(
            "playwright is not installed: `.venv/bin/pip install -e .[dev]`"
        ) from exc
    assert Path(CHROMIUM).exists(), (
        f"{CHROMIUM} not found: install Debian's chromium (apt-get install chromium) or set "
        "ABPARTS_OPS_CHROMIUM to a Chromium executable"
    )


def _browser_checks(base_url: str, artifacts: Path, index: str) -> None:
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
    from playwright.sync_api import sync_playwright

    names = (
        "source_schema",
        "reference_dump",
        "migration_history",
        "baseline_revision",
        "alembic_stamp",
        "live_schema",
    )
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1600, "height": 1500})
            page.set_default_timeout(PAGE)

            # The global asset lineage: every asset of the pipeline, as a graph. Groups
            # start collapsed when there are several; "Expand all groups" is Alt+E.
            page.goto(f"{base_url}/asset-groups", wait_until="domcontentloaded")
            page.get_by_text("Global asset lineage").first.wait_for(state="visible")
            page.get_by_text("baseline", exact=True).first.wait_for(state="visible")
            first = page.get_by_text(names[0], exact=True).first
            try:
                first.wait_for(state="visible", timeout=3000)
            except PlaywrightTimeout:  # collapsed groups: expand them all
                page.keyboard.press("Alt+e")
            for name in names:
                page.get_by_text(name, exact=True).first.wait_for(state="attached")
            # Expanding keeps the old zoom; a double click on the background fits the
            # whole graph in view (the graph's own "autocenter"). The bottom edge, left of
            # the zoom buttons, is background: the toolbar overlays the top edge.
            x, y, width, height = page.evaluate(_GRAPH_VIEWPORT_BOX)
            page.mouse.dblclick(x + width - 120, y + height - 16)
            for name in names:
                page.get_by_text(name, exact=True).first.wait_for(state="visible")
            page.wait_for_timeout(1500)  # let the zoom animation end before the picture
            page.screenshot(path=str(artifacts / "asset-graph.png"))

            # staging/alembic_stamp, Checks tab, the failing schema check and its diff.
            page.set_viewport_size({"width": 1600, "height": 1000})
            page.goto(
                f"{base_url}/assets/staging/alembic_stamp?view=checks"
                "&checkDetail=schema_matches_reference",
                wait_until="domcontentloaded",
            )
            page.get_by_text("Latest execution").first.wait_for(state="visible")
            for text in ("revision_is_head", "schema_matches_reference", "Failed"):
                page.get_by_text(text).first.wait_for(state="visible")
            body = page.inner_text("body")
            for expected in (
                "staging",
                "alembic_stamp",
                "revision_is_head",
                "schema_matches_reference",
                "Failed",
            ):
                assert expected in body, f"{expected!r} not visible on the asset's checks page"
            diff = _show_diff(page, index)
            page.wait_for_timeout(600)  # let the dialog's fade-in finish before the picture
            page.screenshot(path=str(artifacts / "asset-page.png"))
            assert index in diff
        finally:
            browser.close()


def test_operator_path_through_ui(isolated_demo: IsolatedDemo, artifacts_dir: Path) -> None:
    _require_browser()
    started = time.monotonic()
    with dagster_dev(isolated_demo) as (dev, port):
        ui = DagsterUIClient("127.0.0.1", port)
        _operator_path(ui, dev, isolated_demo, artifacts_dir, started)
    _log("done; processes stopped", started)


def _operator_path(
    ui: DagsterUIClient, dev: ManagedProcess, demo: IsolatedDemo, artifacts: Path, started: float
) -> None:
    ui.wait_until_up(SERVER_UP, dev.alive)
    _log("webserver answers /server_info", started)
    repository = ui.wait_for_location(LOCATION, LOCATION_LOADED)
    contents = ui.repository(LOCATION, repository)
    _assert_contents(contents)
    _log(
        f"code location loaded: {len(contents.assets)} assets, "
        f"{sum(map(len, contents.checks.values()))} checks",
        started,
    )
    # The demo starts its sensors RUNNING. Stop them while the reset and the stamps run
    # (the drift sensor would only request verifications of environments not stamped
    # yet, competing for the two cores); the drift sensor is started again below.
    stop_sensors(ui, contents)

    launch_and_wait(ui, contents, "reset_baseline", RESET_RUN, job_name="reset_baseline")
    _log("reset_baseline succeeded", started)

    dry = _stamp(ui, contents, "staging", {"dry_run": True}, "staging stamp (dry run)")
    assert not ui.materialized(dry), (
        f"the dry run {dry} materialized {ui.materialized(dry)}: a dry run stamps nothing"
    )
    _log("staging dry run succeeded, nothing materialized", started)
    real = _stamp(ui, contents, "staging", {"dry_run": False}, "staging stamp")
    _assert_stamped(ui, "staging", real)
    _log("staging stamped; revision_is_head and schema_matches_reference pass", started)
    prod = _stamp(ui, contents, "prod", {"dry_run": False, "confirm": "prod"}, "prod stamp")
    _assert_stamped(ui, "prod", prod)
    _log("prod stamped (confirm: prod); its checks pass", started)

    # Someone adds an index on staging by hand; then the drift watch is switched on.
    # (In this order the sensor's first tick sees the drift: started first, a tick that
    # races ahead of the drift would cost a whole minimum interval of 60 s.)
    since = time.time()
    said = json.loads(run_python(_DRIFT_HELPER, demo.env()).strip().splitlines()[-1])
    index = DRIFT_INDEX
    assert index in said, f"introduce_drift did not add {index}: {said}"
    status = ui.start_sensor(contents, DRIFT_SENSOR)
    assert status == "RUNNING", f"{DRIFT_SENSOR} did not start: {status}"
    _log(f"drift introduced on staging (index {index}); {DRIFT_SENSOR} started", started)

    run_id, execution = _wait_for_drift_verification(ui, contents, since)
    run = ui.run(run_id)
    assert run["jobName"] == "verify_environments", (
        f"the sensor requested {run['jobName']}, expected verify_environments"
    )
    assert execution.success is False and execution.status == "FAILED", (
        f"schema_matches_reference on staging did not fail after the drift "
        f"(status {execution.status}): {execution.text()}"
    )
    assert index in execution.text(), (
        f"the failed check does not name the index {index!r}: {execution.text()}"
    )
    _log(f"drift caught by the sensor: run {run_id}", started)

    ui.set_nux_seen()
    _browser_checks(ui.base_url, artifacts, index)
    _log("browser: asset graph and asset page checked", started)
