"""The run launcher of the one-machine ``dagster.yaml``: Dagster's default, plus a health check.

Dagster's ``DefaultRunLauncher`` (1.13) starts each run worker as a subprocess of a code
server, but cannot tell run monitoring whether a worker is still alive
(``supports_check_run_worker_health`` is False): the daemon then only applies start,
cancel and maximum-runtime timeouts. The code server that started a worker notices its
death on its own (it polls its children every half second), but nothing notices a worker
whose code server died too (a killed ``dagster dev``, a reboot), nor a run executed by
``dagster job execute``, which no code server watches. Such a run stays STARTED for ever,
and because stamps and upgrades run one at a time (run tag ``abparts_ops/stamp``), every
later stamp and upgrade waits in the queue behind it.

:class:`LocalRunLauncher` launches exactly as the default does and answers the health
check: the run worker is the process that recorded the run's start (its RUN_START event
carries the pid); when no process with that pid exists any more, or the pid now belongs
to a process started after the run, the worker is dead and run monitoring marks the run
failed on its next poll (``run_monitoring.poll_interval_seconds``).

It judges only what it can see: every Dagster process of the instance must run on this
machine, in one process namespace (as the SQLite storage of ``dagster.yaml`` requires
anyway). A worker it cannot find is reported dead, so do not use it when run workers run
elsewhere (containers, other hosts): deploy/README.md names the launchers for that, and
their own health checks.
"""

from __future__ import annotations

import os
from pathlib import Path

from dagster import DagsterEventType, DagsterRun, DefaultRunLauncher
from dagster._core.launcher import CheckRunHealthResult, WorkerStatus

# The start time read from /proc is rounded to the boot time's second; a process that
# recorded the run's start began before it, allowing for that rounding.
_START_SLACK_S = 2.0


def _boot_time() -> float | None:
    try:
        for line in Path("/proc/stat").read_text().splitlines():
            if line.startswith("btime "):
                return float(line.split()[1])
    except OSError:
        return None
    return None


def process_gone(pid: int, alive_at: float) -> str | None:
    """Why process ``pid``, known to be alive at ``alive_at`` (epoch s), is gone; None if not.

    With ``/proc`` (Linux): gone when ``/proc/<pid>`` is missing, when the process is a
    zombie (it exited, its parent has not collected it yet), or when the pid now belongs
    to a process that started after ``alive_at`` (the pid was reused). Elsewhere only
    "no such process" counts. When in doubt the process counts as alive.
    """
    stat_path = Path(f"/proc/{pid}/stat")
    if not Path("/proc/self/stat").exists():
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return f"no process {pid} exists"
        except OSError:
            return None
        return None
    try:
        stat = stat_path.read_text()
    except FileNotFoundError:
        return f"no process {pid} exists"
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[-1].split()
    if len(fields) < 20:
        return None
    if fields[0] in {"Z", "X", "x"}:
        return f"process {pid} has exited (state {fields[0]})"
    boot = _boot_time()
    try:
        started = boot + int(fields[19]) / os.sysconf("SC_CLK_TCK") if boot else None
    except (ValueError, OSError):
        started = None
    if started is not None and started > alive_at + _START_SLACK_S:
        return f"pid {pid} now belongs to another process (started after the run)"
    return None


class LocalRunLauncher(DefaultRunLauncher):
    """``DefaultRunLauncher`` with a run worker health check, for one machine (module doc).

    Configure it in ``dagster.yaml`` with run monitoring on and no resume attempts::

        run_launcher:
          module: abparts_ops.defs.run_launcher
          class: LocalRunLauncher
        run_monitoring:
          enabled: true
          poll_interval_seconds: 5
          max_resume_run_attempts: 0
    """

    @property
    def supports_check_run_worker_health(self) -> bool:
        """Run monitoring may ask :meth:`check_run_worker_health` about started runs."""
        return True

    def check_run_worker_health(self, run: DagsterRun) -> CheckRunHealthResult:
        """FAILED when the process that started ``run`` is gone, else RUNNING.

        The worker is the process whose pid the run's RUN_START event recorded. A run with
        no such event yet, or whose process cannot be judged, counts as RUNNING: run
        monitoring marks failed whatever is not RUNNING, so only a proven death says so.
        """
        records = self._instance.get_records_for_run(
            run.run_id, of_type=DagsterEventType.RUN_START, limit=1
        ).records
        event = records[0].event_log_entry if records else None
        pid = event.dagster_event.pid if event and event.dagster_event else None
        if event is None or not pid:
            return CheckRunHealthResult(WorkerStatus.RUNNING, "no run worker recorded yet")
        gone = process_gone(int(pid), event.timestamp)
        if gone:
            return CheckRunHealthResult(
                WorkerStatus.FAILED,
                f"the run worker (pid {pid}, which started the run) is gone: {gone}",
                run_worker_id=str(pid),
            )
        return CheckRunHealthResult(
            WorkerStatus.RUNNING, f"run worker pid {pid} is alive", run_worker_id=str(pid)
        )
