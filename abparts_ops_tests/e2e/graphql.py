"""A small client for the Dagster webserver's GraphQL API, for the end-to-end tests.

``dagster_graphql.DagsterGraphQLClient`` launches runs and reads their status; everything
it does not cover (workspace and repository contents, sensors and their ticks, asset check
executions, a failed run's errors) goes through plain POSTs to ``/graphql``. Every wait is
bounded and its timeout error says what was seen last.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import requests
from dagster import DagsterRunStatus
from dagster_graphql import DagsterGraphQLClient

T = TypeVar("T")

FINISHED = {DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED}


class GraphQLError(AssertionError):
    """The server answered with errors, or with an ``...Error`` union member."""


def wait_for(
    what: str,
    probe: Callable[[], T | None],
    timeout: float,
    interval: float = 1.0,
    describe: Callable[[], str] | None = None,
) -> T:
    """Call ``probe`` until it returns something other than None, at most ``timeout`` s."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while True:
        try:
            value = probe()
            if value is not None:
                return value
        except (requests.RequestException, GraphQLError) as exc:
            last_error = exc
        if time.monotonic() >= deadline:
            detail = describe() if describe else ""
            if last_error is not None:
                detail += f" (last error: {last_error})"
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}. {detail}")
        time.sleep(interval)


@dataclass
class RepositoryContents:
    """Names of everything a code location's repository defines."""

    repository_name: str
    location_name: str
    assets: set[str] = field(default_factory=set)
    checks: dict[str, set[str]] = field(default_factory=dict)  # asset key -> check names
    asset_ops: dict[str, str] = field(default_factory=dict)  # asset key -> op name
    jobs: set[str] = field(default_factory=set)
    sensors: dict[str, str] = field(default_factory=dict)  # name -> status
    schedules: dict[str, str] = field(default_factory=dict)  # name -> status


@dataclass(frozen=True)
class CheckExecution:
    """One asset check execution as the UI shows it."""

    run_id: str
    status: str
    success: bool | None
    description: str
    metadata: dict[str, str]

    def text(self) -> str:
        """Description and every metadata value, for assertions on what a person reads."""
        return "\n".join([self.description, *(f"{k}: {v}" for k, v in self.metadata.items())])


_WORKSPACE = """
query Workspace {
  workspaceOrError {
    __typename
    ... on Workspace {
      locationEntries {
        name
        loadStatus
        locationOrLoadError {
          __typename
          ... on PythonError { message stack }
          ... on RepositoryLocation { name repositories { name } }
        }
      }
    }
    ... on PythonError { message }
  }
}
"""

_REPOSITORY = """
query Repository($selector: RepositorySelector!) {
  repositoryOrError(repositorySelector: $selector) {
    __typename
    ... on PythonError { message }
    ... on RepositoryNotFoundError { message }
    ... on Repository {
      name
      jobs { name isAssetJob }
      sensors { name sensorState { status } }
      schedules { name scheduleState { status } }
      assetNodes {
        assetKey { path }
        opName
        assetChecksOrError {
          __typename
          ... on AssetChecks { checks { name } }
        }
      }
    }
  }
}
"""

_SENSOR = """
query Sensor($selector: SensorSelector!) {
  sensorOrError(sensorSelector: $selector) {
    __typename
    ... on PythonError { message }
    ... on SensorNotFoundError { message }
    ... on Sensor {
      id
      name
      minIntervalSeconds
      sensorState {
        id
        selectorId
        status
        ticks(limit: 20) {
          tickId status timestamp runIds runKeys skipReason
          error { message }
        }
      }
    }
  }
}
"""

_START_SENSOR = """
mutation StartSensor($selector: SensorSelector!) {
  startSensor(sensorSelector: $selector) {
    __typename
    ... on PythonError { message }
    ... on UnauthorizedError { message }
    ... on SensorNotFoundError { message }
    ... on Sensor { name sensorState { status } }
  }
}
"""

_STOP_SENSOR = """
mutation StopSensor($id: String!) {
  stopSensor(id: $id) {
    __typename
    ... on PythonError { message }
    ... on UnauthorizedError { message }
    ... on StopSensorMutationResult { instigationState { status } }
  }
}
"""

_CHECK_EXECUTIONS = """
query CheckExecutions($assetKey: AssetKeyInput!, $checkName: String!, $limit: Int!) {
  assetCheckExecutions(assetKey: $assetKey, checkName: $checkName, limit: $limit) {
    runId
    status
    evaluation {
      success
      description
      metadataEntries {
        __typename
        label
        description
        ... on MarkdownMetadataEntry { mdStr }
        ... on TextMetadataEntry { text }
        ... on IntMetadataEntry { intRepr }
        ... on FloatMetadataEntry { floatValue }
        ... on BoolMetadataEntry { boolValue }
        ... on JsonMetadataEntry { jsonString }
      }
    }
  }
}
"""

_RUN = """
query Run($runId: ID!) {
  runOrError(runId: $runId) {
    __typename
    ... on PythonError { message }
    ... on RunNotFoundError { message }
    ... on Run {
      runId
      jobName
      status
      startTime
      endTime
      stepStats { stepKey status startTime endTime }
      tags { key value }
      assetMaterializations { assetKey { path } }
      eventConnection(limit: 2000) {
        events {
          __typename
          ... on MessageEvent { message stepKey level }
          ... on ErrorEvent { error { message } }
        }
      }
    }
  }
}
"""

_ASSET_NODES = """
query AssetNodes($keys: [AssetKeyInput!]) {
  assetNodes(assetKeys: $keys) {
    assetKey { path }
    isObservable
    isMaterializable
    isExecutable
    assetMaterializations(limit: 1) { timestamp }
    assetChecksOrError {
      __typename
      ... on AssetChecks {
        checks {
          name
          executionForLatestMaterialization {
            status
            evaluation { success severity description }
          }
        }
      }
    }
  }
}
"""

_CONFIG_VALID = """
query ConfigValid($selector: PipelineSelector!, $config: RunConfigData) {
  isPipelineConfigValid(pipeline: $selector, mode: "default", runConfigData: $config) {
    __typename
    ... on RunConfigValidationInvalid { errors { message } }
    ... on PythonError { message }
  }
}
"""

_RUNS = """
query Runs($filter: RunsFilter, $limit: Int) {
  runsOrError(filter: $filter, limit: $limit) {
    __typename
    ... on PythonError { message }
    ... on Runs { results { runId jobName status creationTime tags { key value } } }
  }
}
"""


class DagsterUIClient:
    """GraphQL access to one running webserver (``http://127.0.0.1:<port>``)."""

    def __init__(self, host: str, port: int, request_timeout: float = 30.0) -> None:
        self.base_url = f"http://{host}:{port}"
        self.request_timeout = request_timeout
        self._session = requests.Session()
        self.client = DagsterGraphQLClient(host, port_number=port, timeout=int(request_timeout))

    # -- plumbing ------------------------------------------------------------------------
    def query(self, text: str, variables: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """POST one query; raise GraphQLError on transport-level GraphQL errors."""
        response = self._session.post(
            f"{self.base_url}/graphql",
            json={"query": text, "variables": dict(variables or {})},
            timeout=self.request_timeout,
        )
        response.raise_for_status()
        body = response.json()
        if body.get("errors"):
            raise GraphQLError(f"GraphQL errors: {body['errors']}")
        return body["data"]

    @staticmethod
    def _unwrap(result: dict[str, Any], expected: str) -> dict[str, Any]:
        if result.get("__typename") != expected:
            raise GraphQLError(
                f"expected {expected}, got {result.get('__typename')}: "
                f"{result.get('message', result)}"
            )
        return result

    def server_info(self) -> dict[str, Any]:
        """The webserver's ``/server_info`` (answers as soon as the server is up)."""
        response = self._session.get(f"{self.base_url}/server_info", timeout=5)
        response.raise_for_status()
        return response.json()

    def wait_until_up(self, timeout: float, alive: Callable[[], bool]) -> dict[str, Any]:
        """Poll ``/server_info`` until it answers; fail early when the process died."""

        def probe() -> dict[str, Any] | None:
            if not alive():
                raise RuntimeError("the Dagster process exited before the server answered")
            try:
                return self.server_info()
            except requests.RequestException:
                return None

        return wait_for("the webserver's /server_info", probe, timeout, interval=0.5)

    # -- workspace -----------------------------------------------------------------------
    def wait_for_location(self, name: str, timeout: float) -> str:
        """Wait until the code location has loaded; return its repository name.

        A location that loaded with an error fails at once with the Python error message.
        """
        seen: list[str] = []

        def probe() -> str | None:
            data = self._unwrap(self.query(_WORKSPACE)["workspaceOrError"], "Workspace")
            for entry in data["locationEntries"]:
                if entry["name"] != name:
                    continue
                seen[:] = [entry["loadStatus"]]
                if entry["loadStatus"] != "LOADED":
                    return None
                location = entry["locationOrLoadError"]
                if location is None:
                    return None
                if location["__typename"] == "PythonError":
                    raise AssertionError(
                        f"code location {name!r} failed to load: {location['message']}\n"
                        + "".join(location["stack"][-15:])
                    )
                return location["repositories"][0]["name"]
            return None

        return wait_for(
            f"code location {name!r} to load",
            probe,
            timeout,
            interval=0.5,
            describe=lambda: f"last load status: {seen or 'not listed'}",
        )

    def repository(self, location: str, repository: str) -> RepositoryContents:
        """Every asset (with its checks and op name), job, sensor and schedule."""
        data = self.query(
            _REPOSITORY,
            {"selector": {"repositoryName": repository, "repositoryLocationName": location}},
        )
        repo = self._unwrap(data["repositoryOrError"], "Repository")
        contents = RepositoryContents(repository_name=repository, location_name=location)
        for node in repo["assetNodes"]:
            key = "/".join(node["assetKey"]["path"])
            contents.assets.add(key)
            if node.get("opName"):
                contents.asset_ops[key] = node["opName"]
            checks = node["assetChecksOrError"]
            if checks["__typename"] == "AssetChecks":
                contents.checks[key] = {c["name"] for c in checks["checks"]}
        contents.jobs = {job["name"] for job in repo["jobs"]}
        contents.sensors = {s["name"]: s["sensorState"]["status"] for s in repo["sensors"]}
        contents.schedules = {s["name"]: s["scheduleState"]["status"] for s in repo["schedules"]}
        return contents

    # -- runs ----------------------------------------------------------------------------
    def launch(
        self,
        contents: RepositoryContents,
        job_name: str,
        run_config: Mapping[str, Any] | None = None,
        asset_selection: Sequence[str] | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> str:
        """Launch (enqueue) a run of ``job_name``, optionally for a subset of its assets."""
        return self.client.submit_job_execution(
            job_name,
            repository_location_name=contents.location_name,
            repository_name=contents.repository_name,
            run_config=dict(run_config or {}),
            tags=dict(tags or {}),
            asset_selection=[key.split("/") for key in asset_selection]
            if asset_selection
            else None,
        )

    def config_is_valid(
        self,
        contents: RepositoryContents,
        job_name: str,
        run_config: Mapping[str, Any],
        asset_selection: Sequence[str] | None = None,
    ) -> bool:
        """Whether ``run_config`` is valid for the job (and asset subset)."""
        selector: dict[str, Any] = {
            "pipelineName": job_name,
            "repositoryName": contents.repository_name,
            "repositoryLocationName": contents.location_name,
        }
        if asset_selection:
            selector["assetSelection"] = [{"path": key.split("/")} for key in asset_selection]
        data = self.query(_CONFIG_VALID, {"selector": selector, "config": dict(run_config)})
        return data["isPipelineConfigValid"]["__typename"] == "PipelineConfigValidationValid"

    def run_status(self, run_id: str) -> DagsterRunStatus:
        """The run's status as the client library reports it."""
        return self.client.get_run_status(run_id)

    def wait_for_run(self, run_id: str, timeout: float) -> DagsterRunStatus:
        """Wait until the run has finished (success, failure or canceled)."""
        last: list[DagsterRunStatus] = []

        def probe() -> DagsterRunStatus | None:
            status = self.run_status(run_id)
            last[:] = [status]
            return status if status in FINISHED else None

        return wait_for(
            f"run {run_id}",
            probe,
            timeout,
            interval=0.25,
            describe=lambda: (
                f"last status: {last[0].value if last else '?'}; {self.run_errors(run_id)}"
            ),
        )

    def run(self, run_id: str) -> dict[str, Any]:
        """The run with its tags and its event log."""
        return self._unwrap(self.query(_RUN, {"runId": run_id})["runOrError"], "Run")

    def materialized(self, run_id: str) -> set[str]:
        """Keys of the assets the run materialized (``a/b`` form)."""
        return {"/".join(m["assetKey"]["path"]) for m in self.run(run_id)["assetMaterializations"]}

    def run_errors(self, run_id: str) -> str:
        """The step and run failures of a run, as one readable block (for assertions)."""
        try:
            run = self.run(run_id)
        except (requests.RequestException, GraphQLError) as exc:
            return f"(could not read run {run_id}: {exc})"
        lines = []
        for event in run["eventConnection"]["events"]:
            error = event.get("error")
            if error or event["__typename"] in {"ExecutionStepFailureEvent", "RunFailureEvent"}:
                step = event.get("stepKey") or "run"
                lines.append(f"[{step}] {event.get('message', '')}")
                if error:
                    lines.append(f"    {error['message'].strip()}")
        return "\n".join(lines) if lines else "(no error events)"

    def runs(self, job_name: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
        """Most recent runs first, optionally of one job."""
        run_filter = {"pipelineName": job_name} if job_name else {}
        data = self.query(_RUNS, {"filter": run_filter, "limit": limit})["runsOrError"]
        return self._unwrap(data, "Runs")["results"]

    # -- sensors -------------------------------------------------------------------------
    def _sensor_selector(self, contents: RepositoryContents, name: str) -> dict[str, str]:
        return {
            "repositoryName": contents.repository_name,
            "repositoryLocationName": contents.location_name,
            "sensorName": name,
        }

    def sensor(self, contents: RepositoryContents, name: str) -> dict[str, Any]:
        """The sensor, its state and its 20 latest ticks (newest first)."""
        data = self.query(_SENSOR, {"selector": self._sensor_selector(contents, name)})
        return self._unwrap(data["sensorOrError"], "Sensor")

    def start_sensor(self, contents: RepositoryContents, name: str) -> str:
        """Start the sensor (mutation ``startSensor``); return its new status."""
        data = self.query(_START_SENSOR, {"selector": self._sensor_selector(contents, name)})
        return self._unwrap(data["startSensor"], "Sensor")["sensorState"]["status"]

    def stop_sensor(self, contents: RepositoryContents, name: str) -> str:
        """Stop the sensor (mutation ``stopSensor``); return its new status."""
        sensor_id = self.sensor(contents, name)["id"]
        data = self._unwrap(
            self.query(_STOP_SENSOR, {"id": sensor_id})["stopSensor"], "StopSensorMutationResult"
        )
        return data["instigationState"]["status"]

    # -- UI state ------------------------------------------------------------------------
    def set_nux_seen(self) -> None:
        """Record that the first-visit "Join the Dagster community" dialog was dismissed.

        A fresh instance shows that dialog over the first page a person opens; this is
        what its Skip button does.
        """
        self.query("mutation { setNuxSeen }")

    # -- assets --------------------------------------------------------------------------
    def asset_nodes(self, keys: Sequence[str]) -> dict[str, dict[str, Any]]:
        """The asset nodes the graph draws, by ``a/b`` key: kind and latest check results."""
        data = self.query(_ASSET_NODES, {"keys": [{"path": key.split("/")} for key in keys]})
        return {"/".join(node["assetKey"]["path"]): node for node in data["assetNodes"]}

    # -- asset checks --------------------------------------------------------------------
    def check_executions(
        self, asset_key: str, check_name: str, limit: int = 10
    ) -> list[CheckExecution]:
        """Latest executions of one asset check, newest first."""
        data = self.query(
            _CHECK_EXECUTIONS,
            {"assetKey": {"path": asset_key.split("/")}, "checkName": check_name, "limit": limit},
        )
        executions = []
        for item in data["assetCheckExecutions"]:
            evaluation = item.get("evaluation") or {}
            metadata = {}
            for entry in evaluation.get("metadataEntries", []):
                value = next(
                    (
                        entry[k]
                        for k in (
                            "mdStr",
                            "text",
                            "intRepr",
                            "floatValue",
                            "boolValue",
                            "jsonString",
                        )
                        if entry.get(k) is not None
                    ),
                    entry.get("description") or "",
                )
                metadata[entry["label"]] = str(value)
            executions.append(
                CheckExecution(
                    run_id=item["runId"],
                    status=item["status"],
                    success=evaluation.get("success"),
                    description=evaluation.get("description") or "",
                    metadata=metadata,
                )
            )
        return executions
