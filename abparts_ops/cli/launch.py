"""Launch one of the pipeline's jobs as a Dagster run on the configured instance.

The commands ``reset``, ``stamp``, ``upgrade`` and ``verify`` do nothing themselves: they
run the very jobs the UI launches (``reset_baseline``, ``stamp_<env>``, ``upgrade_<env>``,
``verify_environments``), loaded from the code location ``abparts_ops.definitions``, with
the run config a person would type in the UI's launchpad, on the instance of
``$DAGSTER_HOME``. The run is recorded there like any other (Runs, the assets' event
logs), with the tags ``user`` (who launched it: ``$ABPARTS_OPS_USER`` or the OS user; the
UI shows it as "Launched by" and the stamps and upgrades record it as ``launched_by``),
``abparts_ops/launched_from: cli`` and ``abparts_ops/command`` (the command line).

The run executes in this process, synchronously, as ``dagster job execute`` does (the
instance's run queue is not used: a daemon need not be running, which a CI job does not
have; the stamps' and upgrades' own PostgreSQL advisory lock still serialises writes, and
run monitoring still fails the run if this process dies). Dagster's event stream (its
DEBUG lines) goes to a log file, not the terminal; ``--verbose`` shows it instead.
"""

from __future__ import annotations

import contextlib
import getpass
import json
import os
import shlex
import socket
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from abparts_ops.cli.common import BadInput, demo_mode

CODE_LOCATION_MODULE = "abparts_ops.definitions"
CODE_LOCATION_ATTRIBUTE = "defs"
USER_ENV = "ABPARTS_OPS_USER"
LOG_ENV = "ABPARTS_OPS_LOG"
LAUNCHED_FROM_TAG = "abparts_ops/launched_from"
COMMAND_TAG = "abparts_ops/command"
HOST_TAG = "abparts_ops/host"
USER_TAG = "user"
_REPO_DAGSTER_YAML = Path(__file__).resolve().parents[2] / "dagster.yaml"


def launched_by() -> str:
    """Who launches: ``$ABPARTS_OPS_USER`` (a CI job names itself there), else the OS user."""
    name = os.environ.get(USER_ENV, "").strip()
    if name:
        return name
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def dagster_home() -> Path:
    """The instance's folder: ``$DAGSTER_HOME``; for the demo, ``.abparts_ops/dagster_home``.

    With a configuration of your own, ``DAGSTER_HOME`` must be set (the runs must land in
    the instance your UI shows): BadInput otherwise. The demo's folder is the one
    ``scripts/demo`` uses; it is created with the repository's ``dagster.yaml``.
    """
    raw = os.environ.get("DAGSTER_HOME", "").strip()
    if raw:
        home = Path(raw).expanduser().resolve()
        if not home.is_dir():
            raise BadInput(f"DAGSTER_HOME={home} is not a folder (create it, with dagster.yaml).")
        return home
    if not demo_mode():
        raise BadInput(
            "DAGSTER_HOME is not set: point it at the Dagster instance your UI uses, so the "
            "run is recorded there."
        )
    from abparts_ops.embedded.server import project_home

    home = project_home() / "dagster_home"
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    if not config.exists() and _REPO_DAGSTER_YAML.is_file():
        config.write_text(_REPO_DAGSTER_YAML.read_text(encoding="utf-8"), encoding="utf-8")
    os.environ["DAGSTER_HOME"] = str(home)
    return home


def default_log_path(home: Path) -> Path:
    """Where Dagster's events of CLI runs go: ``$ABPARTS_OPS_LOG`` or ``<home>/logs/cli.log``."""
    raw = os.environ.get(LOG_ENV, "").strip()
    return Path(raw).expanduser() if raw else home / "logs" / "cli.log"


@contextlib.contextmanager
def events_to(log_path: Path | None, header: str) -> Iterator[None]:
    """Send everything written to stdout and stderr (Dagster's event stream, the output
    of pg_dump and squawk) to ``log_path``, appended; ``None`` leaves the terminal alone."""
    if log_path is None:
        yield
        return
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "a", encoding="utf-8") as log:
        log.write(f"\n===== {datetime.now(UTC).isoformat(timespec='seconds')} {header}\n")
        log.flush()
        sys.stdout.flush()
        sys.stderr.flush()
        saved = (os.dup(1), os.dup(2))
        try:
            os.dup2(log.fileno(), 1)
            os.dup2(log.fileno(), 2)
            with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
                yield
        finally:
            with contextlib.suppress(Exception):
                log.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


def _plain(value: Any) -> Any:
    """A metadata value as plain JSON (Markdown as its text, paths as strings...)."""
    raw = getattr(value, "value", value)
    if hasattr(raw, "path") and not isinstance(raw, (str, bytes)):
        raw = raw.path
    try:
        json.dumps(raw)
    except Exception:  # noqa: BLE001 - any value that is not plain JSON (tables, schemas...)
        return str(raw)
    return raw


def plain_metadata(metadata: Mapping[str, Any]) -> dict[str, Any]:
    """Dagster metadata as a plain dict."""
    return {str(key): _plain(value) for key, value in (metadata or {}).items()}


@dataclass
class CheckResult:
    """One asset check evaluated in the run."""

    asset: str
    check: str
    passed: bool
    severity: str
    description: str
    metadata: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        """JSON form (without the metadata, which the commands summarise)."""
        return {
            "asset": self.asset,
            "check": self.check,
            "passed": self.passed,
            "severity": self.severity,
            "description": self.description,
        }


@dataclass
class AssetEvent:
    """A materialization or an observation recorded by the run."""

    asset: str
    kind: str
    description: str
    metadata: dict[str, Any]


@dataclass
class RunOutcome:
    """What one launched run did, read back from the instance's event log."""

    run_id: str
    job: str
    status: str
    tags: dict[str, str]
    log_path: Path | None
    materializations: list[AssetEvent] = field(default_factory=list)
    observations: list[AssetEvent] = field(default_factory=list)
    checks: list[CheckResult] = field(default_factory=list)
    failures: list[dict[str, Any]] = field(default_factory=list)

    @property
    def success(self) -> bool:
        """True when the run ended in SUCCESS."""
        return self.status == "SUCCESS"

    def event_of(self, asset: str) -> AssetEvent | None:
        """The materialization of ``asset``, else its observation, else None."""
        for event in [*self.materializations, *self.observations]:
            if event.asset == asset:
                return event
        return None

    def to_dict(self) -> dict[str, Any]:
        """The run's part of every launching command's JSON document."""
        return {
            "run_id": self.run_id,
            "job": self.job,
            "status": self.status,
            "launched_by": self.tags.get(USER_TAG, ""),
            "tags": dict(self.tags),
            "log": str(self.log_path) if self.log_path else None,
            "checks": [c.to_dict() for c in self.checks],
            "failures": [
                {k: v for k, v in f.items() if k != "metadata"} for f in self.failures
            ],
        }


def _read_outcome(instance: Any, run_id: str, log_path: Path | None) -> RunOutcome:
    from dagster import DagsterEventType

    run = instance.get_run_by_id(run_id)
    outcome = RunOutcome(
        run_id=run_id,
        job=run.job_name,
        status=run.status.value,
        tags=dict(run.tags),
        log_path=log_path,
    )
    for record in instance.all_logs(run_id):
        event = record.dagster_event
        if event is None:
            continue
        kind = event.event_type
        if kind == DagsterEventType.ASSET_MATERIALIZATION:
            mat = event.step_materialization_data.materialization
            outcome.materializations.append(
                AssetEvent(mat.asset_key.to_user_string(), "materialization",
                           mat.description or "", plain_metadata(mat.metadata))
            )
        elif kind == DagsterEventType.ASSET_OBSERVATION:
            obs = event.asset_observation_data.asset_observation
            outcome.observations.append(
                AssetEvent(obs.asset_key.to_user_string(), "observation",
                           obs.description or "", plain_metadata(obs.metadata))
            )
        elif kind == DagsterEventType.ASSET_CHECK_EVALUATION:
            data = event.event_specific_data
            outcome.checks.append(
                CheckResult(
                    asset=data.asset_key.to_user_string(),
                    check=data.check_name,
                    passed=bool(data.passed),
                    severity=data.severity.value,
                    description=data.description or "",
                    metadata=plain_metadata(data.metadata),
                )
            )
        elif kind == DagsterEventType.STEP_FAILURE:
            data = event.step_failure_data
            user = data.user_failure_data
            error = data.error
            description = (
                user.description if user is not None and user.description
                else (error.message.strip().splitlines()[0] if error and error.message else "")
            )
            outcome.failures.append(
                {
                    "step": event.step_key,
                    "description": description or "the step failed",
                    "metadata": plain_metadata(user.metadata) if user is not None else {},
                }
            )
        elif kind == DagsterEventType.RUN_FAILURE and not outcome.failures:
            message = record.user_message or event.message or "the run failed"
            outcome.failures.append(
                {"step": None, "description": message.strip().splitlines()[0], "metadata": {}}
            )
    return outcome


def launch(
    job_name: str,
    *,
    command: Sequence[str],
    run_config: Mapping[str, Any] | None = None,
    asset_check_keys: Sequence[Any] | None = None,
    extra_tags: Mapping[str, str] | None = None,
    verbose: bool = False,
) -> RunOutcome:
    """Run ``job_name`` of the code location on the configured instance; read it back.

    ``asset_check_keys`` restricts the run to those checks (no asset), as the drift
    sensor's verification requests do. The run config is passed as it is (the jobs'
    own config classes check it, as in the UI). Raises BadInput for a job the code
    location does not have.
    """
    from dagster import DagsterInstance
    from dagster._core.definitions.reconstruct import ReconstructableRepository
    from dagster._core.execution.api import create_execution_plan, execute_run
    from dagster._core.snap import snapshot_from_execution_plan

    home = dagster_home()
    log_path = None if verbose else default_log_path(home)
    tags = {
        USER_TAG: launched_by(),
        LAUNCHED_FROM_TAG: "cli",
        COMMAND_TAG: shlex.join(["abparts-ops", *command])[:500],
        HOST_TAG: socket.gethostname(),
        **(extra_tags or {}),
    }
    header = f"abparts-ops {' '.join(command)} (job {job_name})"
    with DagsterInstance.get() as instance, events_to(log_path, header):
        repository = ReconstructableRepository.for_module(
            CODE_LOCATION_MODULE, CODE_LOCATION_ATTRIBUTE, working_directory=os.getcwd()
        )
        repository_def = repository.get_definition()
        if not repository_def.has_job(job_name):
            raise BadInput(f"the code location has no job {job_name!r}.")
        load_data = repository_def.repository_load_data
        recon = repository.with_repository_load_data(load_data).get_reconstructable_job(
            job_name
        )
        job_def = repository_def.get_job(job_name)
        checks = frozenset(asset_check_keys) if asset_check_keys is not None else None
        if checks is not None:
            job_def = job_def.get_subset(asset_selection=frozenset(), asset_check_selection=checks)
        config = dict(run_config or {})
        all_tags = {**job_def.run_tags, **tags}
        plan = create_execution_plan(
            job_def, run_config=config, instance_ref=instance.get_ref(), tags=all_tags,
            repository_load_data=load_data,
        )
        run = instance.create_run(
            job_name=job_name,
            run_id=None,
            run_config=config,
            status=None,
            tags=all_tags,
            root_run_id=None,
            parent_run_id=None,
            step_keys_to_execute=plan.step_keys_to_execute,
            execution_plan_snapshot=snapshot_from_execution_plan(
                plan, job_def.get_job_snapshot_id()
            ),
            job_snapshot=job_def.get_job_snapshot(),
            parent_job_snapshot=job_def.get_parent_job_snapshot(),
            asset_selection=frozenset() if checks is not None else None,
            asset_check_selection=checks,
            resolved_op_selection=None,
            op_selection=None,
            remote_job_origin=None,
            job_code_origin=recon.get_python_origin(),
            asset_graph=job_def.asset_layer.asset_graph,
        )
        execute_run(recon, run, instance, raise_on_error=False)
        return _read_outcome(instance, run.run_id, log_path)


VERDICT_TAG = "abparts_ops/verdict"


def tag_run(outcome: RunOutcome, tags: Mapping[str, str]) -> None:
    """Add ``tags`` to the finished run (the Runs list shows them beside its status)."""
    from dagster import DagsterInstance

    with DagsterInstance.get() as instance:
        instance.add_run_tags(outcome.run_id, dict(tags))
    outcome.tags.update(tags)


def run_lines(outcome: RunOutcome) -> list[str]:
    """The closing lines every launching command prints: the run, its status, the log."""
    lines = [
        f"run {outcome.run_id} ({outcome.job}): {outcome.status}, launched by "
        f"{outcome.tags.get(USER_TAG, '?')}; in the UI: Runs -> {outcome.run_id[:8]}"
    ]
    if outcome.log_path is not None:
        lines.append(f"Dagster's events of this run: {outcome.log_path}")
    return lines
