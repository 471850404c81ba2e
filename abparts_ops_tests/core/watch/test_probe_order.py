"""Probe starvation: hanging hosts listed first never keep the healthy ones unprobed.

150 environments, the first 100 on a local TCP listener that accepts connections and
never answers (libpq waits for the server's first message until its connect timeout);
the last 50 on the real test server. With a tick budget that covers only part of the
hanging hosts, every healthy environment is probed within two ticks when the second
tick's order comes from the first tick's outcomes, and (the control) never when the
config order is kept (the control).
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest

from abparts_ops.core.watch.drift import (
    NOT_PROBED,
    PROBED,
    TIMED_OUT,
    ProbeOutcome,
    ProbeTarget,
    decode_probe_statuses,
    encode_probe_statuses,
    order_targets,
    probe_all,
    probe_status,
)

HANGING, HEALTHY = 100, 50
WORKERS = 34
BUDGET_S = 4.5  # two rounds of hanging probes of 2 s each
CONNECT_TIMEOUT_S = 2


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port on 127.0.0.1 that accepts connections and never sends a byte (for 60 s)."""
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen(256)
    server.settimeout(0.2)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        deadline = threading.Timer(60, stop.set)
        deadline.daemon = True
        deadline.start()
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except (TimeoutError, OSError):
                continue
            held.append(conn)

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield server.getsockname()[1]
    finally:
        stop.set()
        thread.join(timeout=2)
        for conn in held:
            conn.close()
        server.close()


def _targets(fresh_db: str, port: int) -> list[ProbeTarget]:
    hanging = [
        ProbeTarget(f"hang_{i:03d}", f"postgresql://nobody:pw@127.0.0.1:{port}/x")
        for i in range(HANGING)
    ]
    healthy = [ProbeTarget(f"ok_{i:03d}", fresh_db) for i in range(HEALTHY)]
    return hanging + healthy


def _tick(targets: list[ProbeTarget], last: dict[str, str] | None) -> list[ProbeOutcome]:
    return probe_all(
        targets,
        max_workers=WORKERS,
        timeout_s=10,
        budget_s=BUDGET_S,
        last=last,
        connect_timeout_s=CONNECT_TIMEOUT_S,
    )


def _healthy_probed(outcomes: list[ProbeOutcome]) -> set[str]:
    return {o.environment for o in outcomes if o.environment.startswith("ok_") and o.ok}


def test_every_healthy_environment_is_probed_within_two_ticks(
    fresh_db: str, silent_port: int
) -> None:
    """Tick 2 starts with what tick 1 did not reach; the hosts that timed out go last."""
    targets = _targets(fresh_db, silent_port)
    first = _tick(targets, None)
    statuses = decode_probe_statuses(encode_probe_statuses(first))
    counts = {s: sum(1 for v in statuses.values() if v == s) for s in (PROBED, TIMED_OUT,
                                                                       NOT_PROBED)}
    print(f"tick 1: {counts}")
    assert counts[NOT_PROBED] > HEALTHY // 2, "the budget must leave environments unprobed"
    assert all(statuses[f"hang_{i:03d}"] == TIMED_OUT for i in range(WORKERS))
    second = _tick(targets, statuses)
    probed = _healthy_probed(first) | _healthy_probed(second)
    print(f"tick 2: healthy probed {len(probed)} of {HEALTHY}")
    assert probed == {f"ok_{i:03d}" for i in range(HEALTHY)}
    assert [o.environment for o in second] == [t.environment for t in targets]  # config order
    # The control: without the statuses, tick 2 repeats tick 1 and starves the same ones.
    control = _healthy_probed(first) | _healthy_probed(_tick(targets, None))
    assert len(control) < HEALTHY


def test_order_and_statuses() -> None:
    """Not probed (or new) first, answered next, timed out last; config order within."""
    targets = [ProbeTarget(name, "postgresql://x@h/d") for name in ("a", "b", "c", "d", "e")]
    last = {"a": TIMED_OUT, "b": PROBED, "c": NOT_PROBED, "e": TIMED_OUT}
    assert [t.environment for t in order_targets(targets, last)] == ["c", "d", "b", "a", "e"]
    assert [t.environment for t in order_targets(targets, None)] == ["a", "b", "c", "d", "e"]
    assert probe_status(ProbeOutcome("x", error="x: cannot use ...: timeout expired (...)")) == (
        TIMED_OUT
    )
    assert probe_status(ProbeOutcome("x", error="x: connection refused")) == PROBED
    assert decode_probe_statuses("not json") == {}
