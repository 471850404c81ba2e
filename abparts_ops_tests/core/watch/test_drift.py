"""Drift watch core: concurrent probes with their own deadlines, classification, memory.

Real databases on the test server; unreachable environments are real closed ports, a
wrong password, a missing variable, and a socket that accepts but never answers.
"""

from __future__ import annotations

import base64
import hashlib
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy.engine import make_url

from abparts_ops.core.db import connect_dbapi
from abparts_ops.core.errors import ConfigError, DatabaseError
from abparts_ops.core.history.expected import ExpectedIndex
from abparts_ops.core.history.project import load_project
from abparts_ops.core.history.revisions import versions_fingerprint
from abparts_ops.core.settings import resolve_url_env
from abparts_ops.core.watch.drift import (
    DriftCursor,
    DriftState,
    EnvironmentMemory,
    ProbeOutcome,
    ProbeTarget,
    classify,
    plan_tick,
    probe_all,
    run_key,
    script_heads,
    versions_signature,
)
from abparts_ops.core.watch.probe import KnownSchema, ProbeResult, probe
from abparts_ops.core.watch.reference import Assessment
from abparts_ops.core.watch.states import EnvironmentState
from abparts_ops_tests.core.history.projects import Rev, write_project, write_rev
from abparts_ops_tests.sql import run_sql

SCHEMA = """
CREATE TABLE orgs (id serial PRIMARY KEY, name text NOT NULL);
CREATE TABLE alembic_version (version_num varchar(32) PRIMARY KEY);
INSERT INTO alembic_version VALUES ('head0001');
"""


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A TCP port that accepts connections and never says a word (a hung server)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.1)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
                accepted.append(conn)
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield int(server.getsockname()[1])
    stop.set()
    thread.join()
    for conn in accepted:
        conn.close()
    server.close()


@pytest.fixture
def two_dbs(db_factory: Callable[..., str]) -> tuple[str, str]:
    first, second = db_factory("drift"), db_factory("drift")
    run_sql(first, SCHEMA)
    run_sql(second, SCHEMA)
    return first, second


# -- probe_all ---------------------------------------------------------------------------


def test_probe_all_reports_every_failure_and_still_probes_the_others(
    two_dbs: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    good, other = two_dbs
    parsed = make_url(good)
    password = parsed.password
    assert password
    dead = parsed.set(port=closed_port()).render_as_string(hide_password=False)
    wrong = parsed.set(password="not-the-password").render_as_string(hide_password=False)
    monkeypatch.delenv("DRIFT_TEST_UNSET_URL", raising=False)
    targets = [
        ProbeTarget("dev", good),
        ProbeTarget("down", dead),
        ProbeTarget("wrongpw", wrong),
        ProbeTarget("nourl", lambda: resolve_url_env("DRIFT_TEST_UNSET_URL", "env 'nourl'")),
        ProbeTarget("staging", other),
    ]
    outcomes = probe_all(targets, timeout_s=5)
    assert [o.environment for o in outcomes] == ["dev", "down", "wrongpw", "nourl", "staging"]
    assert outcomes[0].ok and outcomes[4].ok
    assert outcomes[0].fingerprint == outcomes[4].fingerprint
    assert outcomes[0].revisions == ("head0001",)
    for outcome in outcomes[1:4]:
        assert not outcome.ok and outcome.error
        assert "\n" not in outcome.error
        assert password not in outcome.error and "not-the-password" not in outcome.error
        assert outcome.environment in outcome.error
    assert "server is running" in outcomes[1].error
    assert "password" in outcomes[2].error
    assert "DRIFT_TEST_UNSET_URL" in outcomes[3].error


def test_a_hung_server_costs_its_own_timeout_only(
    two_dbs: tuple[str, str], silent_server: int
) -> None:
    good, _ = two_dbs
    hung = make_url(good).set(port=silent_server).render_as_string(hide_password=False)
    started = time.perf_counter()
    outcomes = probe_all([ProbeTarget("hung", hung), ProbeTarget("dev", good)], timeout_s=1)
    elapsed = time.perf_counter() - started
    assert outcomes[1].ok
    assert not outcomes[0].ok and "hung" in (outcomes[0].error or "")
    assert elapsed < 3.5


def _sleepy(seconds: float, active: list[int], peak: list[int]) -> Callable[..., ProbeResult]:
    lock = threading.Lock()

    def fake_probe(url: str, *, environment: str, **_: object) -> ProbeResult:
        with lock:
            active[0] += 1
            peak[0] = max(peak[0], active[0])
        try:
            time.sleep(float(url) if url else seconds)
        finally:
            with lock:
                active[0] -= 1
        return ProbeResult(environment, "f" * 64, ("r1",), 1, seconds * 1000)

    return fake_probe


def test_probe_all_runs_concurrently_within_max_workers() -> None:
    active, peak = [0], [0]
    targets = [ProbeTarget(f"env{i}", "0.2") for i in range(8)]
    started = time.perf_counter()
    outcomes = probe_all(targets, max_workers=4, probe_fn=_sleepy(0.2, active, peak))
    elapsed = time.perf_counter() - started
    assert all(o.ok for o in outcomes)
    assert peak[0] == 4
    assert 0.35 < elapsed < 1.2


def test_probe_all_abandons_a_probe_past_its_deadline_and_moves_on() -> None:
    active, peak = [0], [0]
    targets = [ProbeTarget("stuck", "30"), ProbeTarget("a", "0.05"), ProbeTarget("b", "0.05")]
    started = time.perf_counter()
    outcomes = probe_all(targets, max_workers=1, timeout_s=0.2, probe_fn=_sleepy(0, active, peak))
    elapsed = time.perf_counter() - started
    assert not outcomes[0].ok and "no answer within 0.2 s" in (outcomes[0].error or "")
    assert outcomes[1].ok and outcomes[2].ok
    assert elapsed < 2.5


def test_probe_all_of_nothing() -> None:
    assert probe_all([]) == []


def test_probe_all_stops_at_its_budget_and_says_so() -> None:
    active, peak = [0], [0]
    targets = [ProbeTarget(f"slow{i}", "5") for i in range(3)]
    started = time.perf_counter()
    outcomes = probe_all(
        targets, max_workers=1, timeout_s=10, budget_s=0.2, probe_fn=_sleepy(0, active, peak)
    )
    assert time.perf_counter() - started < 1.5
    assert [o.ok for o in outcomes] == [False, False, False]
    assert all("time budget of 0.2 s" in (o.error or "") for o in outcomes)


# -- classify ----------------------------------------------------------------------------


def outcome(
    revisions: tuple[str, ...] | None = ("h1",), fingerprint: str = "a" * 64, env: str = "staging"
) -> ProbeOutcome:
    return ProbeOutcome(env, ProbeResult(env, fingerprint, revisions, 3, 12.5), None, 12.5)


HISTORY = ExpectedIndex(
    history_fingerprint="h" * 64,
    schema="public",
    exclude=(),
    version_table="alembic_version",
    heads=("h1",),
    order=("base", "h1"),
    parents={"base": (), "h1": ("base",)},
    probe_fingerprints={"base": "c" * 64, "h1": "a" * 64},
    table_counts={"base": 2, "h1": 3},
)
IN_SYNC = EnvironmentState.IN_SYNC
BEHIND = EnvironmentState.BEHIND
SCHEMA_DRIFT = EnvironmentState.SCHEMA_DRIFT
UNKNOWN_REVISION = EnvironmentState.UNKNOWN_REVISION
UNREACHABLE = EnvironmentState.UNREACHABLE


def test_classify_in_sync() -> None:
    state = classify(outcome(), HISTORY)
    assert state.status is IN_SYNC and not state.drifting
    assert state.revision_in_sync is True and state.schema_in_sync is True
    assert state.reason == "staging: in sync: at the head h1, schema matches it"
    assert state.table_count == 3 and state.reference == "a" * 64


def test_classify_behind_is_reported_not_drift() -> None:
    state = classify(outcome(("base",), "c" * 64), HISTORY)
    assert state.status is BEHIND and not state.drifting
    assert state.pending == ("h1",) and state.expected_revision == "base"
    assert state.revision_in_sync is False and state.schema_in_sync is True
    assert "1 pending revision(s): h1" in state.reason and "upgrade_staging" in state.reason


@pytest.mark.parametrize(
    ("revisions", "status"),
    [
        (("old1",), UNKNOWN_REVISION),
        (("archived1",), EnvironmentState.AWAITING_STAMP),
        (None, EnvironmentState.AWAITING_STAMP),
        (("h1", "x2"), UNKNOWN_REVISION),
    ],
)
def test_classify_rows_outside_the_history(
    revisions: tuple[str, ...] | None, status: EnvironmentState
) -> None:
    state = classify(outcome(revisions, "c" * 64), HISTORY, archived={"archived1"})
    assert state.status is status
    assert state.drifting is (status is UNKNOWN_REVISION)
    assert state.expected_revision == "base"  # what a stamp would write


def test_classify_schema_drift_against_its_own_revision() -> None:
    schema = classify(outcome(fingerprint="b" * 64), HISTORY)
    assert schema.status is SCHEMA_DRIFT and schema.drifting
    assert schema.reason.startswith(
        "staging: schema drift: at revision h1, the schema differs from what the history "
        "builds up to h1: fingerprints differ (probe bbbbbbbbbbbb, expected aaaaaaaaaaaa)"
    )
    behind_and_drifting = classify(outcome(("base",), "a" * 64), HISTORY)
    assert behind_and_drifting.status is SCHEMA_DRIFT
    assert behind_and_drifting.pending == ("h1",)


def test_classify_unreachable() -> None:
    failed = ProbeOutcome("prod", None, "prod: cannot use x: refused (check the server).", 3.0)
    state = classify(failed, HISTORY)
    assert state.status is UNREACHABLE and not state.drifting
    assert state.reason == "prod: unreachable: cannot use x: refused (check the server)."
    assert state.revision_in_sync is None and state.fingerprint is None


# -- run keys, cursor, plan --------------------------------------------------------------


def test_run_key_is_deterministic_and_specific() -> None:
    key = run_key("staging", ("r1",), "f" * 64)
    assert key == run_key("staging", ["r1"], "f" * 64)
    assert key.startswith("drift-staging-")
    assert run_key("staging", ("a", "b"), "f") == run_key("staging", ("b", "a"), "f")
    others = {
        run_key("prod", ("r1",), "f" * 64),
        run_key("staging", ("r2",), "f" * 64),
        run_key("staging", None, "f" * 64),
        run_key("staging", ("r1",), "e" * 64),
        run_key("staging", ("r1",), "f" * 64, episode=1),
    }
    assert key not in others and len(others) == 5


def test_cursor_round_trips_and_tolerates_garbage() -> None:
    cursor = DriftCursor(
        environments={
            "staging": EnvironmentMemory("schema_drift", ("r1",), "f" * 64, 1.5, 2, "drift-x"),
            "prod": EnvironmentMemory("unreachable"),
        },
        head="r1",
        reference="a" * 64,
    )
    assert DriftCursor.decode(cursor.to_json()) == cursor
    assert DriftCursor.decode(cursor.encode()) == cursor
    garbage = (
        "not json",
        "[]",
        '{"version": 99}',
        '{"version": 1, "environments": 3}',
        "z1:not base64!",
        "z1:" + base64.b64encode(b"not zlib").decode(),
    )
    for text in (None, "", *garbage):
        assert DriftCursor.decode(text) == DriftCursor()


def test_the_stored_cursor_stays_small_with_many_environments() -> None:
    """500 environments with tokens: the text Dagster keeps with every tick is compact."""
    memory = {
        f"env{i:03d}": EnvironmentMemory(
            "in_sync",
            ("f2a4c6e8b0d1",),
            "f" * 64,
            since=1_700_000_000 + i * 0.37,
            seen_since=1_700_000_000 + i * 0.37,
            token=f"abcdef123456:{hashlib.md5(str(i).encode()).hexdigest()}",
            table_count=60,
        )
        for i in range(500)
    }
    cursor = DriftCursor(environments=memory, head="f2a4c6e8b0d1", reference="f" * 64)
    encoded = cursor.encode()
    assert DriftCursor.decode(encoded) == cursor
    assert len(encoded) < len(cursor.to_json()) / 4
    assert DriftCursor.decode(encoded).known("env007") == KnownSchema(
        memory["env007"].token or "", "f" * 64, 60
    )


def state(
    status: str,
    env: str = "staging",
    revisions: tuple[str, ...] | None = ("h1",),
    fingerprint: str | None = "a" * 64,
) -> DriftState:
    assessment = Assessment(env, EnvironmentState(status), f"{env}: {status}", revisions)
    return DriftState(assessment, fingerprint)


def test_plan_requests_a_drift_once_and_again_only_when_it_comes_back() -> None:
    cursor = DriftCursor()
    first = plan_tick([state(IN_SYNC)], cursor, now=1)
    assert first.requests == {}
    drift = state(SCHEMA_DRIFT, fingerprint="b" * 64)
    second = plan_tick([drift], first.cursor, now=2)
    key = run_key("staging", ("h1",), "b" * 64)
    assert second.requests == {"staging": key}
    assert second.cursor.environments["staging"].since == 2
    third = plan_tick([drift], second.cursor, now=3)
    assert third.requests == {}
    assert third.cursor.environments["staging"].since == 2
    # unreachable for a while, then the same drift: nothing new
    down = plan_tick([state(UNREACHABLE, revisions=None, fingerprint=None)], third.cursor, now=4)
    assert down.cursor.environments["staging"].fingerprint == "b" * 64
    again = plan_tick([drift], down.cursor, now=5)
    assert again.requests == {}
    # another drift on top: a new request
    other = state(UNKNOWN_REVISION, revisions=("old",), fingerprint="b" * 64)
    moved = plan_tick([other], again.cursor, now=6)
    assert list(moved.requests) == ["staging"] and moved.requests["staging"] != key
    # fixed, then the very first drift again: a new episode, a new key
    fixed = plan_tick([state(IN_SYNC)], moved.cursor, now=7)
    assert fixed.cursor.environments["staging"].episode == 1
    assert fixed.cursor.environments["staging"].requested is None
    back = plan_tick([drift], fixed.cursor, now=8)
    assert back.requests == {"staging": run_key("staging", ("h1",), "b" * 64, episode=1)}


def test_plan_skips_no_runs_for_and_behind_and_keeps_head_and_reference() -> None:
    states = [
        state(SCHEMA_DRIFT, env="dev"),
        state(UNKNOWN_REVISION, env="prod"),
        state(BEHIND, env="qa"),
    ]
    plan = plan_tick(
        states, DriftCursor(), now=1, no_runs_for={"dev"}, head="h1", reference="r" * 64
    )
    assert list(plan.requests) == ["prod"]
    assert plan.cursor.head == "h1" and plan.cursor.reference == "r" * 64
    assert plan.state("dev").status == SCHEMA_DRIFT
    assert DriftCursor.decode(plan.cursor.to_json()) == plan.cursor


# -- the versions folder -----------------------------------------------------------------


def test_versions_signature_fingerprint_and_cached_heads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ini = write_project(tmp_path, [Rev("aaa1"), Rev("bbb2", down="aaa1")])
    project = load_project(ini)
    versions = project.versions_dirs
    signature, fingerprint = versions_signature(versions), versions_fingerprint(versions)
    reads: list[object] = []
    real_get_heads = ScriptDirectory.get_heads

    def counted(script: ScriptDirectory) -> tuple[str, ...]:
        reads.append(script)
        return real_get_heads(script)

    monkeypatch.setattr(ScriptDirectory, "get_heads", counted)
    assert script_heads(project) == ("bbb2",)
    assert script_heads(project) == ("bbb2",)
    assert len(reads) == 1  # the second answer came from the cache, not from Alembic
    # touching a file changes the cheap signature, not the content fingerprint
    first = next(versions[0].glob("aaa1*.py"))
    stat = first.stat()
    os.utime(first, ns=(stat.st_atime_ns, stat.st_mtime_ns + 5_000_000_000))
    assert versions_signature(versions) != signature
    assert versions_fingerprint(versions) == fingerprint
    # a new revision file changes both, and the head
    write_rev(versions[0], Rev("ccc3", down="bbb2"))
    assert versions_fingerprint(versions) != fingerprint
    assert script_heads(project) == ("ccc3",)


def test_probe_all_uses_the_real_probe_by_default(two_dbs: tuple[str, str]) -> None:
    good, _ = two_dbs
    [result] = probe_all([ProbeTarget("dev", good, exclude=("orgs",))])
    assert result.ok
    assert result.fingerprint == probe(good, environment="dev", exclude=("orgs",)).fingerprint
    with pytest.raises(ConfigError):
        resolve_url_env("DRIFT_TEST_NEVER_SET_ANYWHERE", "x")


def test_the_probe_carries_its_settings_in_its_statement(two_dbs: tuple[str, str]) -> None:
    """No startup ``options`` (a pooler refuses them): the timeout still stops a probe.

    A probe blocked by a lock on the version table is cancelled by the server at its own
    timeout, set with ``SET LOCAL`` in the probe's message; a probe that answers says how
    its time split between the connection and the statements.
    """
    good, _ = two_dbs
    holder = connect_dbapi(good, label="holder")
    try:
        holder.autocommit = False
        with holder.cursor() as cur:
            cur.execute("LOCK TABLE alembic_version IN ACCESS EXCLUSIVE MODE")
        started = time.monotonic()
        with pytest.raises(DatabaseError, match="^dev: the probe did not finish within 1 s"):
            probe(good, environment="dev", timeout_s=1)
        assert time.monotonic() - started < 5
    finally:
        holder.rollback()
        holder.close()
    result = probe(good, environment="dev")
    assert result.revisions == ("head0001",)
    assert result.connect_ms > 0 and result.query_ms > 0
    assert result.elapsed_ms >= result.connect_ms + result.query_ms
    again = probe(good, environment="dev", known=result.known())
    assert again.reused and again.query_ms > 0
