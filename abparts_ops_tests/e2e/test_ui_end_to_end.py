"""The whole operator path, as a person meets it: `dagster dev`, the GraphQL API, a browser.

Against the embedded demo in an isolated home: the code location loads with every asset,
check, job, sensor and schedule; `reset_baseline` succeeds; staging is stamped (dry run,
then real) and prod (with confirm); the drift sensor, once started, catches an index added
by hand on staging and requests a verification whose `schema_matches_reference` check
fails with that index in its diff. A headless Chromium then opens the asset graph and the
stamp asset's checks, and the test asserts on the text on screen. Screenshots and the
processes' logs go to ``test-artifacts/``.

Issue 20 (the state where people look first): the live assets carry each environment's
state (staging red by its failed ``schema_in_sync``, none "Never materialized"), the
verification run the sensor launched is tagged with what it found, a later tick's text
says per environment what it found, and no onboarding dialog covers the first page.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
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
# What the live assets' checks say after the drift: dev is never stamped in this test
# (awaiting its stamp: a warning on its revision), staging's schema drifted (an error).
LIVE_EXPECTED = {
    "dev/live_revision": ("awaiting_stamp", "FAILED", "WARN"),
    "dev/live_schema": ("awaiting_stamp", "SUCCEEDED", None),
    "staging/live_revision": ("schema_drift", "SUCCEEDED", None),
    "staging/live_schema": ("schema_drift", "FAILED", "ERROR"),
    "prod/live_revision": ("in_sync", "SUCCEEDED", None),
    "prod/live_schema": ("in_sync", "SUCCEEDED", None),
}
NEXT_TICK = 150  # the sensor's minimum interval is 60 s; a tick waits for the daemon too
TICK_HEADLINE = (
    "no new drift: dev: awaiting_stamp; staging: schema_drift (1 object); in sync: prod."
)
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
        interval=1.0,
        describe=lambda: (
            f"runs requested since the drift: {candidates or 'none'}; latest ticks: {seen_ticks}"
        ),
    )


def _assert_run_says_what_it_found(ui: DagsterUIClient, run_id: str) -> None:
    """The sensor's verification run: a success (it verified) tagged with its finding."""
    run = ui.run(run_id)
    tags = {tag["key"]: tag["value"] for tag in run["tags"]}
    assert run["status"] == "SUCCESS", f"the verification run ended {run['status']}"
    assert tags.get("abparts_ops/found") == "staging: schema_drift", tags
    assert tags.get("abparts_ops/verdict") == "staging: schema_drift", tags


def _assert_live_state(ui: DagsterUIClient) -> None:
    """What the asset graph draws: every live asset reported, staging's schema failing."""
    keys = [f"{env}/{kind}" for env in ENVIRONMENTS for kind in ("live_revision", "live_schema")]
    nodes = ui.asset_nodes(keys)
    assert set(nodes) == set(keys), f"asset nodes: {sorted(nodes)}"
    for key, node in nodes.items():
        # reported by the sensor: drawn with a status, never "Never materialized"
        assert node["assetMaterializations"], f"{key} has no reported materialization"
        [check] = node["assetChecksOrError"]["checks"]
        execution = check["executionForLatestMaterialization"]
        assert execution is not None, f"{key} {check['name']} never evaluated"
        evaluation = execution["evaluation"] or {}
        state, status, severity = LIVE_EXPECTED[key]
        assert evaluation["description"].startswith(f"{key.split('/')[0]}: {state}"), (
            key,
            evaluation,
        )
        assert execution["status"] == status, (key, execution)
        if status == "FAILED":
            assert evaluation["severity"] == severity, (key, evaluation)


def _wait_for_tick_text(ui: DagsterUIClient, contents: RepositoryContents, after: float) -> str:
    """A tick after the verification: its text says, per environment, what it found."""
    seen: list[str] = []

    def probe() -> str | None:
        ticks = ui.sensor(contents, DRIFT_SENSOR)["sensorState"]["ticks"]
        seen[:] = [f"{t['status']} {(t.get('skipReason') or '')[:200]}" for t in ticks[:3]]
        for tick in ticks:
            text = tick.get("skipReason") or ""
            if tick["timestamp"] > after and tick["status"] == "SKIPPED" and text:
                return text
        return None

    return wait_for(
        "a skipped tick of the drift sensor after the verification",
        probe,
        NEXT_TICK,
        interval=1.0,
        describe=lambda: f"latest ticks: {seen}",
    )


# The graph's viewport: the element two levels above the asset graph's <svg>.
_GRAPH_VIEWPORT_BOX = """() => {
  const svg = document.querySelector('svg[class*=svgContainer]');
  const r = svg.parentElement.parentElement.getBoundingClientRect();
  return [r.x, r.y, r.width, r.height];
}"""


# What a metadata dialog shows before its body: the entry's label and the two buttons.
_DIALOG_CHROME = {"Copy", "Close"}


def _rendered_text(dialog: Any, timeout_s: float = 20.0) -> str:
    """The dialog's text once its body has rendered.

    Dagster loads its Markdown renderer lazily: the dialog is visible (its title, Copy and
    Close) before the body is drawn, longer on a busy machine. Wait until it has a line
    besides those, up to ``timeout_s``; return what it shows then.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        text = dialog.inner_text()
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        if any(line not in _DIALOG_CHROME for line in lines[1:]):
            return text
        if time.monotonic() > deadline:
            return text
        time.sleep(0.25)


def _show_diff(page: Any, index: str) -> str:
    """Open the check's Markdown metadata (the diff) as a person would; return its text."""
    links = page.get_by_text("[Show Markdown]")
    links.first.wait_for(state="visible")
    seen = []
    for position in range(links.count()):
        links.nth(position).click()
        dialog = page.get_by_role("dialog")
        dialog.wait_for(state="visible")
        text = _rendered_text(dialog)
        if index in text:
            return text
        seen.append(text[:300])
        page.keyboard.press("Escape")
        dialog.wait_for(state="hidden")
    raise AssertionError(f"no Markdown metadata of the failed check names {index}: {seen}")


def _assert_live_rows(page: Any, path: Path) -> None:
    """The asset list: every live asset's row has a status, none "Never materialized"."""
    rows = page.locator("[class*=VirtualizedAssetRow_rowGrid]")
    for env in ENVIRONMENTS:
        for kind in ("live_revision", "live_schema"):
            row = rows.filter(has_text=f"{env} / {kind}").first
            row.get_by_text("Materialized", exact=True).wait_for(state="visible")
            text = row.inner_text()
            assert "Never materialized" not in text, f"{env}/{kind} in the asset list: {text}"
    page.wait_for_timeout(800)
    page.screenshot(path=str(path))


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


@contextlib.contextmanager
def _browser_page(base_url: str) -> Iterator[Any]:
    """A page of a headless Chromium on the webserver; the browser is closed on exit."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1600, "height": 1500})
            page.set_default_timeout(PAGE)
            yield page
        finally:
            browser.close()


_GRAPH_NAMES = (
    "source_schema",
    "reference_dump",
    "migration_history",
    "baseline_revision",
    "alembic_stamp",
    "live_schema",
)


def _browser_checks_before_the_tick(
    page: Any, base_url: str, artifacts: Path, run_id: str
) -> None:
    """The asset graph, the asset list and the Runs list (none needs the next tick)."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    names = _GRAPH_NAMES
    # The global asset lineage: every asset of the pipeline, as a graph. Groups
    # start collapsed when there are several; "Expand all groups" is Alt+E.
    page.goto(f"{base_url}/asset-groups", wait_until="domcontentloaded")
    page.get_by_text("Global asset lineage").first.wait_for(state="visible")
    # dagster.yaml's `nux: enabled: false`: no onboarding dialog over the page
    page.wait_for_timeout(1500)
    assert "Join the Dagster community" not in page.inner_text("body")
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

    # The asset list: every live asset with a status (none "Never materialized"),
    # staging's live schema failed.
    page.set_viewport_size({"width": 1600, "height": 1200})
    page.goto(f"{base_url}/assets", wait_until="domcontentloaded")
    page.get_by_text("staging / live_schema").first.wait_for(state="visible")
    _assert_live_rows(page, artifacts / "asset-list.png")

    # The Runs list: the verification the sensor launched says what it found.
    page.goto(f"{base_url}/runs", wait_until="domcontentloaded")
    page.get_by_text(run_id[:8]).first.wait_for(state="visible")
    page.get_by_text("abparts_ops/verdict: staging: schema_drift").first.wait_for(
        state="visible"
    )
    page.wait_for_timeout(800)
    page.screenshot(path=str(artifacts / "runs-drift.png"))


def _browser_checks_after_the_tick(page: Any, base_url: str, artifacts: Path, index: str) -> None:
    """The sensor's tick history (the later tick's text) and the stamp's failed check."""
    # The sensor's tick history: the skipped tick's text, one line per environment.
    page.set_viewport_size({"width": 1600, "height": 1200})
    page.goto(
        f"{base_url}/locations/{LOCATION}/sensors/{DRIFT_SENSOR}",
        wait_until="domcontentloaded",
    )
    page.get_by_text("Timestamp").first.wait_for(state="visible")
    # the newest skipped tick's Result opens the tick's dialog with its text
    page.get_by_role("button", name="0 runs requested").first.click()
    dialog = page.get_by_role("dialog")
    dialog.wait_for(state="visible")
    dialog.get_by_text("staging: schema_drift (1 object)").first.wait_for(state="visible")
    text = dialog.inner_text()
    assert f"Skip reason: {TICK_HEADLINE}" in text, text
    page.wait_for_timeout(600)
    page.screenshot(path=str(artifacts / "sensor-tick.png"))
    page.keyboard.press("Escape")

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

    _assert_run_says_what_it_found(ui, run_id)
    _assert_live_state(ui)
    _log("the run's tags and the live assets' checks say schema_drift on staging", started)
    finished = float(ui.run(run_id)["endTime"] or time.time())
    # The next tick comes a minimum interval (60 s) after the first: the browser checks
    # that do not need it run meanwhile, in the same browser the later ones use.
    with _browser_page(ui.base_url) as page:
        _browser_checks_before_the_tick(page, ui.base_url, artifacts, run_id)
        _log("browser: asset graph, asset list and runs checked", started)
        text = _wait_for_tick_text(ui, contents, finished)
        lines = text.splitlines()
        assert lines[0] == TICK_HEADLINE, text
        by_env = {line.split(":")[0]: line for line in lines[1:]}
        assert by_env["staging"].startswith("staging: schema_drift (1 object): "), text
        assert "(verification already requested: " in by_env["staging"], text
        assert by_env["prod"].startswith("prod: in_sync: "), text
        _log("a later tick says per environment what it found", started)
        _browser_checks_after_the_tick(page, ui.base_url, artifacts, index)
    _log("browser: sensor ticks and asset page checked", started)
