"""Fixtures of the end-to-end tests: an isolated demo, Dagster processes, a browser.

Everything runs against an isolated ``ABPARTS_OPS_HOME`` (its own embedded PostgreSQL on
its own port, its own copy of the demo Alembic project) and an isolated ``DAGSTER_HOME``,
so the developer's demo and Dagster instance are never touched. Every process the tests
start runs in its own process group and is stopped in ``finally`` blocks, also on failure;
the isolated PostgreSQL is stopped at the end.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from dagster import DagsterRunStatus

from abparts_ops.embedded.server import EmbeddedPostgres
from abparts_ops_tests.e2e.graphql import DagsterUIClient, RepositoryContents

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
ARTIFACTS = REPO / "test-artifacts"
CHROMIUM = os.environ.get("ABPARTS_OPS_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

# The runs the tests launch execute their steps in the run's own process: with the default
# multiprocess executor every step first starts a Python process that imports the whole
# code location (8-12 s each on 2 busy cores, for steps of about a second), which alone
# would exceed the time budget. Runs requested by sensors keep the job's own executor.
# ABPARTS_OPS_E2E_EXECUTOR=default launches every run with the job's own executor.
IN_PROCESS = os.environ.get("ABPARTS_OPS_E2E_EXECUTOR", "in_process") == "in_process"
_IN_PROCESS_CONFIG = {"execution": {"config": {"in_process": {}}}}
DEMO_SENSORS = ("schema_drift_sensor", "revision_files_sensor")

# Variables of the developer's shell that would point the processes elsewhere.
_INHERITED_PREFIXES = ("ABPARTS_", "DAGSTER_")
_KEPT = {"ABPARTS_PG_BIN"}


def free_port() -> int:
    """A TCP port free on the loopback interface right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def isolated_env(home: Path, dagster_home: Path | None = None, **extra: str) -> dict[str, str]:
    """This process's environment without ABPARTS_*/DAGSTER_* settings, plus the homes."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key in _KEPT or not key.startswith(_INHERITED_PREFIXES)
    }
    env["ABPARTS_OPS_HOME"] = str(home)
    if dagster_home is not None:
        env["DAGSTER_HOME"] = str(dagster_home)
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def run_python(code: str, env: Mapping[str, str], timeout: float = 180) -> str:
    """Run ``code`` in a fresh interpreter of the virtualenv; return its stdout.

    Demo helpers export the environments' URL variables into ``os.environ``; running them
    in a child keeps those variables out of the test session.
    """
    proc = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if proc.returncode != 0:
        raise AssertionError(
            f"python helper failed ({proc.returncode}):\n{code}\n--- stderr ---\n"
            f"{proc.stderr[-4000:]}"
        )
    return proc.stdout


def _children_of(pids: set[int]) -> set[int]:
    """Every live descendant of ``pids`` (read from /proc), excluding the pids."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, ValueError, IndexError):
            stat = (entry / "stat").read_text()
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found: set[int] = set()
    frontier = set(pids)
    while frontier:
        frontier = {pid for pid, ppid in parents.items() if ppid in frontier} - found
        found |= frontier
    return found


@dataclass
class ManagedProcess:
    """A process started in its own process group, with its output in a log file."""

    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path

    def alive(self) -> bool:
        return self.popen.poll() is None

    def log_tail(self, chars: int = 6000) -> str:
        with contextlib.suppress(OSError):
            return self.log_path.read_text(errors="replace")[-chars:]
        return ""

    def stop(self, grace: float = 20.0) -> None:
        """Interrupt the whole group (like Ctrl-C), then kill what is left after ``grace``.

        Descendants are collected first, so a child that left the group is still ended
        (by its pid); the embedded PostgreSQL is not a descendant (pg_ctl detaches it) and
        is stopped by its own fixture.
        """
        pgid = self.popen.pid
        descendants = _children_of({pgid})
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGINT)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and self.popen.poll() is None:
            time.sleep(0.2)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)
        for pid in descendants | _children_of({pgid}):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(timeout=10)


@contextlib.contextmanager
def managed_process(
    name: str, args: Sequence[str], env: Mapping[str, str], log_dir: Path, cwd: Path = REPO
) -> Iterator[ManagedProcess]:
    """Start ``args`` in a new session; always stop its whole process group on exit."""
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{name}.log"
    with open(log_path, "wb") as log:
        popen = subprocess.Popen(
            list(args),
            cwd=cwd,
            env=dict(env),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    process = ManagedProcess(name=name, popen=popen, log_path=log_path)
    try:
        yield process
    finally:
        process.stop()


def _reachable_tmpdir(prefix: str) -> Path:
    """A fresh folder that the unprivileged ``postgres`` user can enter (o+x)."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    os.chmod(path, 0o755)
    return path


@dataclass
class IsolatedDemo:
    """The demo built under its own ``ABPARTS_OPS_HOME``, on its own embedded server."""

    home: Path
    dagster_home: Path
    logs: Path

    def env(self, **extra: str) -> dict[str, str]:
        return isolated_env(self.home, self.dagster_home, **extra)

    def server(self) -> EmbeddedPostgres:
        return EmbeddedPostgres(self.home)


@pytest.fixture
def isolated_demo(request: pytest.FixtureRequest) -> Iterator[IsolatedDemo]:
    """A built demo in a temporary home, with an empty DAGSTER_HOME holding dagster.yaml.

    The demo is built once, in a child process, before any Dagster process starts, so
    the webserver, the daemon and the run workers all find it ready. On teardown the
    isolated PostgreSQL is stopped and the folders removed (process logs are copied to
    ``test-artifacts/`` first).
    """
    root = _reachable_tmpdir("abparts-e2e-")
    demo = IsolatedDemo(home=root / "home", dagster_home=root / "dagster_home", logs=root / "logs")
    demo.home.mkdir()
    demo.dagster_home.mkdir()
    demo.logs.mkdir()
    os.chmod(demo.home, 0o755)
    shutil.copy(REPO / "dagster.yaml", demo.dagster_home / "dagster.yaml")
    try:
        run_python("from abparts_ops.embedded.demo import ensure_demo; ensure_demo()", demo.env())
        yield demo
    finally:
        try:
            demo.server().stop()
        finally:
            ARTIFACTS.mkdir(exist_ok=True)
            for log in demo.logs.glob("*.log"):
                shutil.copy(log, ARTIFACTS / f"{request.node.name}-{log.name}")
            shutil.rmtree(root, ignore_errors=True)


@contextlib.contextmanager
def dagster_dev(demo: IsolatedDemo, **extra_env: str) -> Iterator[tuple[ManagedProcess, int]]:
    """`dagster dev` (webserver + daemon) on a free loopback port against ``demo``.

    Yields the process and its port; the whole process group is stopped on exit.
    """
    port = free_port()
    args = [
        str(VENV_BIN / "dagster"),
        "dev",
        "-w",
        "workspace.yaml",
        "-h",
        "127.0.0.1",
        "-p",
        str(port),
    ]
    with managed_process("dagster-dev", args, demo.env(**extra_env), demo.logs) as process:
        try:
            yield process, port
        except BaseException:
            print(f"--- dagster dev log (tail) ---\n{process.log_tail()}")
            raise


def run_config_for(
    ui: DagsterUIClient,
    contents: RepositoryContents,
    job_name: str,
    run_config: Mapping[str, Any] | None = None,
    asset_selection: list[str] | None = None,
) -> dict[str, Any]:
    """``run_config``, plus in-process execution when the job accepts it (see IN_PROCESS)."""
    config = dict(run_config or {})
    if IN_PROCESS:
        candidate = {**config, **_IN_PROCESS_CONFIG}
        if ui.config_is_valid(contents, job_name, candidate, asset_selection):
            return candidate
    return config


def assert_success(ui: DagsterUIClient, run_id: str, what: str, timeout: float) -> None:
    """Wait for the run; fail naming the pipeline's own errors when it did not succeed."""
    status = ui.wait_for_run(run_id, timeout)
    assert status == DagsterRunStatus.SUCCESS, (
        f"{what}: run {run_id} ended {status.value}. This is the pipeline failing, not the "
        f"test; its errors:\n{ui.run_errors(run_id)}"
    )


def launch_and_wait(
    ui: DagsterUIClient,
    contents: RepositoryContents,
    what: str,
    timeout: float,
    job_name: str,
    run_config: Mapping[str, Any] | None = None,
    asset_selection: list[str] | None = None,
) -> str:
    """Launch a run as the UI does, wait for it, fail naming the pipeline's own errors."""
    config = run_config_for(ui, contents, job_name, run_config, asset_selection)
    run_id = ui.launch(contents, job_name, run_config=config, asset_selection=asset_selection)
    assert_success(ui, run_id, what, timeout)
    return run_id


def stop_sensors(ui: DagsterUIClient, contents: RepositoryContents) -> None:
    """Stop the sensors the demo starts RUNNING.

    While the tests reset and stamp, the drift sensor would request verifications of
    environments not stamped yet and the files sensor a history refresh after the reset:
    runs that compete for the two cores and are not what the tests look at.
    """
    for sensor in DEMO_SENSORS:
        if sensor in contents.sensors:
            status = ui.stop_sensor(contents, sensor)
            assert status == "STOPPED", f"{sensor} did not stop: {status}"


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    """``<repo>/test-artifacts`` (git-ignored): screenshots and process logs."""
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS
