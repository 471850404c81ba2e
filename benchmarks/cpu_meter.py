"""CPU time of the benchmark server's backends and of the client, for the benchmarks.

Wall-clock figures on a shared machine depend on everybody else's load; CPU time much
less. Backends exit when their connection closes and are reaped by the postmaster, so
their CPU time (user + system) is added to the postmaster's ``cutime + cstime``
(``/proc/<pid>/stat``): the difference around a call is the CPU its backends used, once
they have exited. The client is this process (``RUSAGE_SELF``) or the child processes
it waited for (``RUSAGE_CHILDREN``, e.g. ``pg_dump``). Used by ``bench_snapshot.py`` and
``bench_sensor_tick.py``.
"""

from __future__ import annotations

import os
import resource
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

# Time for the backends of a finished call to exit and be reaped (their CPU to land).
REAP_S = 0.3


class CpuMeter:
    """CPU seconds used by this process (all threads) and by the server's backends.

    Backends exit after each call that opened them (no pool) and are reaped by the
    postmaster, so their CPU time shows up in the postmaster's ``cutime + cstime``.
    Anything else the postmaster reaps meanwhile (an autovacuum worker) counts too: on a
    benchmark server of its own that is rare and small.
    """

    def __init__(self, server: Any) -> None:
        pid_file = Path(server.data_dir) / "postmaster.pid"
        self.pid = int(pid_file.read_text().split()[0])
        self.tick = os.sysconf("SC_CLK_TCK")

    def proc_s(self, pid: int, children: bool = False) -> float:
        """CPU seconds of process ``pid`` (or of its exited children); 0 once it is gone."""
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return 0.0
        first = 13 if children else 11  # cutime+cstime, or utime+stime
        return (int(fields[first]) + int(fields[first + 1])) / self.tick

    def server_s(self) -> float:
        """CPU seconds of the server's exited children (backends) so far."""
        return self.proc_s(self.pid, children=True)

    @staticmethod
    def client_s(children: bool = False) -> float:
        """CPU seconds of this process so far, or of its waited-for children."""
        usage = resource.getrusage(resource.RUSAGE_CHILDREN if children else resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime

    def call(
        self, fn: Callable[[], Any], children: bool = False
    ) -> tuple[float, float, float, Any]:
        """Run ``fn`` once: wall s, client CPU s, server CPU s, and its result.

        Waits :data:`REAP_S` before (so earlier backends are not counted) and after (so
        this call's are); the waits are not part of the wall time.
        """
        time.sleep(REAP_S)
        client0, server0 = self.client_s(children), self.server_s()
        started = time.perf_counter()
        result = fn()
        wall = time.perf_counter() - started
        client = self.client_s(children) - client0
        time.sleep(REAP_S)
        return wall, client, self.server_s() - server0, result
