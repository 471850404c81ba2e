"""The instance of the repository's ``dagster.yaml``: run monitoring that sees dead workers.

A real instance is built from the file itself (in a temporary ``DAGSTER_HOME``); the
health check is asked about runs whose start was recorded by a live process, by a
process that was killed, and by none yet. The whole story (a run killed in the middle of
an upgrade, the daemon failing it, the queue moving on) is
``abparts_ops_tests/e2e/test_dead_run.py``.
"""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from dagster import DagsterEvent, DagsterEventType, DagsterInstance, DagsterRun, DagsterRunStatus
from dagster._core.events.log import EventLogEntry
from dagster._core.launcher import WorkerStatus

from abparts_ops.defs.names import STAMP_TAG_KEY
from abparts_ops.defs.run_launcher import LocalRunLauncher, process_gone
from abparts_ops_tests.readme import code_blocks, readme_section

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def dagster_home(tmp_path: Path) -> Path:
    """A DAGSTER_HOME holding a copy of the repository's dagster.yaml."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(REPO / "dagster.yaml", home / "dagster.yaml")
    return home


@pytest.fixture
def instance(dagster_home: Path):
    """A real instance configured by the repository's dagster.yaml."""
    with DagsterInstance.from_config(str(dagster_home)) as inst:
        yield inst


def _sleeper() -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])


def _started_run(instance: DagsterInstance, pid: int | None) -> DagsterRun:
    """A STARTED run whose RUN_START event was recorded by process ``pid`` (None: no event)."""
    run = instance.add_run(
        DagsterRun(job_name="upgrade_staging", run_id=str(uuid.uuid4()),
                   status=DagsterRunStatus.STARTED)
    )
    if pid is not None:
        event = DagsterEvent(
            event_type_value=DagsterEventType.RUN_START.value, job_name=run.job_name, pid=pid
        )
        instance.store_event(
            EventLogEntry(
                error_info=None, level="DEBUG", user_message="", run_id=run.run_id,
                timestamp=time.time(), dagster_event=event,
            )
        )
    return run


def test_the_default_instance_monitors_runs_and_queues_stamps_one_at_a_time(instance) -> None:
    assert isinstance(instance.run_launcher, LocalRunLauncher)
    assert instance.run_launcher.supports_check_run_worker_health
    assert instance.run_monitoring_enabled
    assert instance.run_monitoring_poll_interval_seconds <= 10
    assert instance.run_monitoring_max_resume_run_attempts == 0
    assert not instance.run_launcher.supports_resume_run
    limits = instance.get_concurrency_config().run_queue_config.tag_concurrency_limits
    assert {"key": STAMP_TAG_KEY, "value": "true", "limit": 1} in limits


def test_a_run_whose_worker_was_killed_is_failed_and_a_live_one_is_not(instance) -> None:
    launcher: LocalRunLauncher = instance.run_launcher
    live, killed = _sleeper(), _sleeper()
    try:
        alive_run = _started_run(instance, live.pid)
        dead_run = _started_run(instance, killed.pid)
        os.kill(killed.pid, signal.SIGKILL)
        killed.wait(timeout=10)

        assert launcher.check_run_worker_health(alive_run).status == WorkerStatus.RUNNING
        dead = launcher.check_run_worker_health(dead_run)
        assert dead.status == WorkerStatus.FAILED
        assert f"pid {killed.pid}" in str(dead.msg) and "gone" in str(dead.msg)
        not_yet = launcher.check_run_worker_health(_started_run(instance, None))
        assert not_yet.status == WorkerStatus.RUNNING
    finally:
        for proc in (live, killed):
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)


def test_process_gone_tells_a_zombie_and_a_reused_pid_from_a_live_process() -> None:
    now = time.time()
    assert process_gone(os.getpid(), now) is None
    proc = _sleeper()
    try:
        os.kill(proc.pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while "state Z" not in (process_gone(proc.pid, now) or "") and time.monotonic() < deadline:
            time.sleep(0.1)
        assert "has exited (state Z)" in str(process_gone(proc.pid, now))  # not reaped yet
    finally:
        proc.wait(timeout=10)
    assert "no process" in str(process_gone(proc.pid, now))
    # A process that started after the moment its pid was recorded alive is another one.
    assert "another process" in str(process_gone(os.getpid(), now - 3600))


def test_the_readme_command_clears_a_stuck_run_and_keeps_its_log(
    instance: DagsterInstance, dagster_home: Path
) -> None:
    """README's "If a run is stuck": the dagster-graphql line, run as written."""
    [block] = code_blocks(readme_section("If a run is stuck"), "bash")
    [line] = [line for line in block.splitlines() if "dagster-graphql" in line]
    stuck = _started_run(instance, 2**22 + 1)  # above the default pid_max: no such process
    args = shlex.split(line.replace("RUN_ID", stuck.run_id))
    args[0] = str(REPO / args[0])
    env = {k: v for k, v in os.environ.items() if not k.startswith("DAGSTER_")}
    env["DAGSTER_HOME"] = str(dagster_home)
    out = subprocess.run(
        args, cwd=REPO, env=env, capture_output=True, text=True, timeout=120, check=True
    ).stdout
    assert '"TerminateRunSuccess"' in out, out
    run = instance.get_run_by_id(stuck.run_id)
    assert run is not None and run.status == DagsterRunStatus.CANCELED
    assert instance.all_logs(stuck.run_id, of_type=DagsterEventType.RUN_START)
