"""Drift watch without Dagster: probe every environment at once, classify, remember.

:func:`probe_all` runs the cheap probe (:func:`abparts_ops.core.watch.probe.probe`) for
every environment concurrently, each in a thread of its own with its own deadline: a dead
or hanging server becomes an outcome with a one-line ``error`` and never delays or stops
the others. :func:`classify` puts an outcome into one
:class:`~abparts_ops.core.watch.states.EnvironmentState` by asking the one reference
(:func:`abparts_ops.core.watch.reference.assess_fingerprint`): the expected schema of the
environment's own revision, from the migration history. :class:`DriftCursor` is the
memory kept between sensor ticks, and :func:`plan_tick` decides, from the states of one
tick and that memory, which environments need a verification run (the same drift never
twice).

The versions-folder helpers (:func:`versions_signature`, :func:`script_heads`,
:func:`history_graph`, and
:func:`~abparts_ops.core.history.revisions.versions_fingerprint` to confirm a change)
let a sensor notice new revision files with a few ``stat`` calls and read the graph
without importing every revision on every tick.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import threading
import time
import zlib
from collections import deque
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from abparts_ops.core.db import explain_error, scrub
from abparts_ops.core.errors import AbpartsOpsError
from abparts_ops.core.history.graph import HistoryGraph, read_graph
from abparts_ops.core.history.project import AlembicProject, revision_files
from abparts_ops.core.history.revisions import versions_fingerprint
from abparts_ops.core.watch.probe import KnownSchema, ProbeResult, probe
from abparts_ops.core.watch.reference import (
    Assessment,
    ExpectedView,
    assess_fingerprint,
    unreachable,
)
from abparts_ops.core.watch.states import EnvironmentState

STATUSES: tuple[str, ...] = tuple(state.value for state in EnvironmentState)

#: Extra time a probe thread gets beyond its own timeout before it is abandoned.
GRACE_S = 1.0

ProbeFn = Callable[..., ProbeResult]


@dataclass(frozen=True)
class ProbeTarget:
    """One environment to probe.

    ``url`` is the URL or a callable returning it (called inside the probe's thread, so a
    missing URL variable becomes that environment's error, not the tick's). The schema,
    exclusions and version table must be the ones the reference snapshot was taken with.
    """

    environment: str
    url: str | Callable[[], str]
    schema: str = "public"
    exclude: tuple[str, ...] = ()
    version_table: str = "alembic_version"
    version_table_schema: str | None = None
    known: KnownSchema | None = None
    """The last fingerprint seen with its catalog token: unchanged catalogs reuse it."""
    privileges: bool = False
    """Fingerprint the granted privileges too (as the expected schemas were built)."""


@dataclass(frozen=True)
class ProbeOutcome:
    """What probing one environment gave: a result, or one safe line in ``error``."""

    environment: str
    result: ProbeResult | None = None
    error: str | None = None
    elapsed_ms: float = 0.0

    @property
    def ok(self) -> bool:
        """True when the environment answered."""
        return self.result is not None

    @property
    def revisions(self) -> tuple[str, ...] | None:
        """The version rows seen (None when unreachable or without a version table)."""
        return self.result.revisions if self.result else None

    @property
    def fingerprint(self) -> str | None:
        """The schema's probe fingerprint (None when unreachable)."""
        return self.result.fingerprint if self.result else None


def _one_line(text: str) -> str:
    lines = [line.strip() for line in str(text).strip().splitlines() if line.strip()]
    return lines[0] if lines else "unknown error"


def _safe_error(exc: BaseException, environment: str, url: str | None) -> str:
    """One line naming ``environment``, without the password of ``url``."""
    if isinstance(exc, AbpartsOpsError):
        message = _one_line(str(exc))
        if not message.startswith(f"{environment}:") and environment not in message:
            message = f"{environment}: {message}"
    else:
        message = _one_line(str(explain_error(exc, label=environment, url=url)))
    return scrub(message, url)


def _probe_one(target: ProbeTarget, timeout_s: float, probe_fn: ProbeFn) -> ProbeOutcome:
    started = time.perf_counter()
    url: str | None = None
    try:
        url = target.url() if callable(target.url) else target.url
        extra: dict[str, object] = {} if target.known is None else {"known": target.known}
        if target.privileges:
            extra["privileges"] = True
        result = probe_fn(
            url,
            environment=target.environment,
            schema=target.schema,
            exclude=target.exclude,
            version_table=target.version_table,
            version_table_schema=target.version_table_schema,
            timeout_s=timeout_s,
            **extra,
        )
    except Exception as exc:  # noqa: BLE001 - every failure is this environment's outcome
        return ProbeOutcome(
            environment=target.environment,
            error=_safe_error(exc, target.environment, url),
            elapsed_ms=(time.perf_counter() - started) * 1000,
        )
    return ProbeOutcome(
        environment=target.environment,
        result=result,
        elapsed_ms=(time.perf_counter() - started) * 1000,
    )


#: How an environment's last probe went, for :func:`order_targets` (see :func:`probe_status`).
PROBED, TIMED_OUT, NOT_PROBED = "ok", "timeout", "not_probed"
_NOT_PROBED_TEXT = "not probed: this tick's time budget"
_TIMEOUT_TEXTS = ("no answer within", "timeout expired", "the probe did not finish within")
_RANK = {NOT_PROBED: 0, PROBED: 1, TIMED_OUT: 2}


def probe_status(outcome: ProbeOutcome) -> str:
    """:data:`PROBED` (answered, even with an error), :data:`TIMED_OUT` or :data:`NOT_PROBED`."""
    if outcome.ok or not outcome.error:
        return PROBED
    if _NOT_PROBED_TEXT in outcome.error:
        return NOT_PROBED
    if any(text in outcome.error for text in _TIMEOUT_TEXTS):
        return TIMED_OUT
    return PROBED


def encode_probe_statuses(outcomes: Iterable[ProbeOutcome]) -> str:
    """The statuses of one tick's probes as compact JSON (kept until the next tick)."""
    groups: dict[str, list[str]] = {PROBED: [], TIMED_OUT: [], NOT_PROBED: []}
    for outcome in outcomes:
        groups[probe_status(outcome)].append(outcome.environment)
    return json.dumps(groups, separators=(",", ":"))


def decode_probe_statuses(text: str | None) -> dict[str, str]:
    """Read :func:`encode_probe_statuses` output (anything unreadable: no memory)."""
    try:
        groups = json.loads(text) if text else {}
        return {
            str(env): status
            for status, names in groups.items()
            if status in _RANK
            for env in names
        }
    except (ValueError, TypeError, AttributeError):
        return {}


def order_targets(
    targets: Sequence[ProbeTarget], last: Mapping[str, str] | None
) -> list[ProbeTarget]:
    """``targets`` in the order a tick should probe them, from the previous tick's statuses.

    First those not probed last time (and those never probed), then those that answered,
    last those that timed out; config order within each group. So hosts that hang cannot
    keep the same healthy environments behind them tick after tick.
    """
    return [targets[i] for i in _probe_order(targets, last)]


def _probe_order(targets: Sequence[ProbeTarget], last: Mapping[str, str] | None) -> list[int]:
    last = last or {}
    return sorted(
        range(len(targets)),
        key=lambda i: (_RANK.get(last.get(targets[i].environment, NOT_PROBED), 0), i),
    )


def probe_all(
    targets: Sequence[ProbeTarget],
    *,
    max_workers: int = 16,
    timeout_s: float = 10,
    budget_s: float | None = None,
    probe_fn: ProbeFn = probe,
    last: Mapping[str, str] | None = None,
    connect_timeout_s: float | None = None,
) -> list[ProbeOutcome]:
    """Probe every target concurrently; one outcome per target, in the targets' order.

    At most ``max_workers`` probes run at once. Each probe has its own ``timeout_s``
    (connection and statement, enforced by the server and libpq) and a hard deadline of
    ``timeout_s`` plus a second: a probe still running then is abandoned (its daemon
    thread finishes on its own) and reported as timed out, and its slot goes to the next
    target. An error in one environment never affects another. ``budget_s`` bounds the
    whole call (a sensor tick has a time limit): when it runs out, probes still running
    or waiting are reported as not probed. ``probe_fn`` is the function called per target
    (the real probe by default).

    ``last`` (:func:`decode_probe_statuses` of the previous tick) sets the order the
    probes start in (:func:`order_targets`): what was not probed goes first, what timed
    out last. ``connect_timeout_s`` (the config's ``probe.connect_timeout_s``) is handed
    to the probe, so a host that never answers holds its slot only that long.
    """
    if max_workers < 1:
        raise ValueError("max_workers must be at least 1")
    if connect_timeout_s is not None:
        probe_fn = functools.partial(probe_fn, connect_timeout_s=connect_timeout_s)
    total = len(targets)
    outcomes: dict[int, ProbeOutcome] = {}
    running: dict[int, float] = {}
    pending = deque(_probe_order(targets, last))
    cond = threading.Condition()
    deadline_s = timeout_s + GRACE_S
    started_all = time.monotonic()
    budget_end = None if budget_s is None else started_all + budget_s

    def work(index: int) -> None:
        outcome = _probe_one(targets[index], timeout_s, probe_fn)
        with cond:
            if index in running:
                running.pop(index)
                outcomes[index] = outcome
            cond.notify()

    with cond:
        while len(outcomes) < total:
            while pending and len(running) < max_workers:
                index = pending.popleft()
                running[index] = time.monotonic()
                threading.Thread(
                    target=work, args=(index,), name=f"probe-{index}", daemon=True
                ).start()
            now = time.monotonic()
            if budget_end is not None and now >= budget_end:
                for index in [*running, *pending]:
                    env = targets[index].environment
                    outcomes[index] = ProbeOutcome(
                        environment=env,
                        error=f"{env}: not probed: this tick's time budget of {budget_s:g} s "
                        "ran out (raise max_workers or the sensor interval, or lower the "
                        "probe timeout).",
                        elapsed_ms=(now - running.get(index, now)) * 1000,
                    )
                running.clear()
                pending.clear()
                break
            for index, started in list(running.items()):
                if now - started >= deadline_s:
                    running.pop(index)
                    env = targets[index].environment
                    outcomes[index] = ProbeOutcome(
                        environment=env,
                        error=f"{env}: no answer within {timeout_s:g} s (check that the "
                        "server is running and reachable; the probe was abandoned).",
                        elapsed_ms=(now - started) * 1000,
                    )
            if len(outcomes) >= total:
                break
            if running:
                wait = min(started + deadline_s for started in running.values()) - now
                if budget_end is not None:
                    wait = min(wait, budget_end - now)
                cond.wait(timeout=max(0.005, wait))
    return [outcomes[i] for i in range(total)]


@dataclass(frozen=True)
class DriftState:
    """One environment's state at one tick: the reference's :class:`Assessment` (the one
    state record the checks and the CLI read too) and what the probe saw.

    ``fingerprint``, ``table_count``, ``token`` and ``reused`` are the probe's;
    ``elapsed_ms`` its time and ``error`` why it could not read the environment.
    Everything about the state (``status``, ``reason``, ``pending``, the expected
    revision and fingerprint, the in-sync flags) is read from the assessment.
    """

    assessment: Assessment
    fingerprint: str | None = None
    table_count: int | None = None
    elapsed_ms: float = 0.0
    error: str | None = None
    token: str | None = None
    reused: bool = False

    @property
    def environment(self) -> str:
        """The environment's name."""
        return self.assessment.environment

    @property
    def status(self) -> EnvironmentState:
        """Its one :class:`~abparts_ops.core.watch.states.EnvironmentState`."""
        return self.assessment.state

    @property
    def reason(self) -> str:
        """One readable line: the reference's reason, then the advice unless in sync (an
        unreachable environment: the reason only, which names what failed)."""
        if self.status is EnvironmentState.UNREACHABLE:
            return self.assessment.reason
        return self.assessment.summary

    @property
    def revisions(self) -> tuple[str, ...] | None:
        """Its version rows (None: no version table, or not read)."""
        return self.assessment.revisions

    @property
    def head(self) -> str | None:
        """The history's single head (None with several)."""
        return self.assessment.head

    @property
    def reference(self) -> str | None:
        """The expected probe fingerprint of :attr:`expected_revision`."""
        return self.assessment.expected_fingerprint

    @property
    def expected_revision(self) -> str | None:
        """The revision whose schema the environment must have."""
        return self.assessment.expected_revision

    @property
    def pending(self) -> tuple[str, ...]:
        """The revisions between its own and the head."""
        return self.assessment.pending

    @property
    def revision_in_sync(self) -> bool | None:
        """Whether its version rows are the head (None when it could not be judged)."""
        return None if self.assessment.head is None else self.assessment.at_head

    @property
    def schema_in_sync(self) -> bool | None:
        """Whether its schema is the expected one (None when it could not be judged)."""
        return self.assessment.schema_matches

    @property
    def drifting(self) -> bool:
        """True for the states a verification run is requested for."""
        return self.status.requests_verification


def short(value: str | None, n: int = 12) -> str:
    """The first ``n`` characters of a revision or fingerprint (``-`` for None)."""
    return "-" if value is None else value[:n]


def classify(
    outcome: ProbeOutcome,
    expected: ExpectedView,
    *,
    archived: Collection[str] = (),
    baseline: str | None = None,
) -> DriftState:
    """Classify one probe outcome with the one reference (``expected``: the history).

    ``archived`` are the ids of the archived history and ``baseline`` the proven
    baseline revision (see :func:`abparts_ops.core.watch.reference.expected_for`).
    """
    env = outcome.environment
    if not outcome.ok:
        error = outcome.error or f"{env}: unreachable"
        return DriftState(unreachable(env, error), elapsed_ms=outcome.elapsed_ms, error=error)
    result = outcome.result
    assert result is not None
    assessment = assess_fingerprint(
        env, result.revisions, result.fingerprint, expected, archived=archived, baseline=baseline
    )
    return DriftState(
        assessment,
        fingerprint=result.fingerprint,
        table_count=result.table_count,
        elapsed_ms=outcome.elapsed_ms,
        token=result.token,
        reused=result.reused,
    )


def run_key(
    environment: str,
    revisions: Sequence[str] | None,
    fingerprint: str | None,
    episode: int = 0,
) -> str:
    """A deterministic run key for one drift: environment, revisions and fingerprint.

    ``episode`` counts how often the environment came back in sync after a run was
    requested, so a drift that is fixed and later comes back identically is a new run.
    """
    payload = json.dumps(
        [environment, None if revisions is None else sorted(revisions), fingerprint, episode],
        separators=(",", ":"),
    )
    return f"drift-{environment}-{hashlib.sha256(payload.encode()).hexdigest()[:16]}"


@dataclass(frozen=True)
class EnvironmentMemory:
    """What the cursor remembers of one environment.

    ``revisions`` and ``fingerprint`` are the last values seen while reachable;
    ``since`` is when ``status`` began and ``seen_since`` when these exact revisions and
    fingerprint were first seen (epoch seconds); ``requested`` is the run key of the
    verification requested in the current ``episode`` (None when none was). ``token`` and
    ``table_count`` came with ``fingerprint`` and let the next probe skip recomputing it
    while the catalogs stay unchanged.
    """

    status: str
    revisions: tuple[str, ...] | None = None
    fingerprint: str | None = None
    since: float | None = None
    episode: int = 0
    requested: str | None = None
    seen_since: float | None = None
    token: str | None = None
    table_count: int | None = None

    def known(self) -> KnownSchema | None:
        """The fingerprint to hand the next probe, when one was seen with its token."""
        if self.token is None or self.fingerprint is None or self.table_count is None:
            return None
        return KnownSchema(self.token, self.fingerprint, self.table_count)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return {
            "status": self.status,
            "revisions": None if self.revisions is None else list(self.revisions),
            "fingerprint": self.fingerprint,
            "since": self.since,
            "episode": self.episode,
            "requested": self.requested,
            "seen_since": self.seen_since,
            "token": self.token,
            "table_count": self.table_count,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> EnvironmentMemory:
        """Read :meth:`to_dict` output (unknown keys ignored)."""
        revisions = data.get("revisions")
        status = str(data.get("status") or EnvironmentState.UNREACHABLE)
        return cls(
            status=status if status in STATUSES else EnvironmentState.UNREACHABLE.value,
            revisions=None if revisions is None else tuple(str(r) for r in revisions),
            fingerprint=data.get("fingerprint"),
            since=data.get("since"),
            episode=int(data.get("episode") or 0),
            requested=data.get("requested"),
            seen_since=data.get("seen_since"),
            token=data.get("token"),
            table_count=data.get("table_count"),
        )


CURSOR_VERSION = 1
COMPRESSED_PREFIX = "z1:"


@dataclass(frozen=True)
class DriftCursor:
    """The sensor's memory between ticks: last seen state per environment, as JSON."""

    environments: Mapping[str, EnvironmentMemory] = field(default_factory=dict)
    head: str | None = None
    reference: str | None = None

    def known(self, environment: str) -> KnownSchema | None:
        """What the next probe of ``environment`` may reuse (None: probe in full)."""
        memory = self.environments.get(environment)
        return memory.known() if memory else None

    def to_json(self) -> str:
        """Compact JSON, stable key order."""
        return json.dumps(
            {
                "version": CURSOR_VERSION,
                "head": self.head,
                "reference": self.reference,
                "environments": {
                    name: memory.to_dict() for name, memory in sorted(self.environments.items())
                },
            },
            sort_keys=True,
            separators=(",", ":"),
        )

    def encode(self) -> str:
        """The cursor as the sensor stores it: :meth:`to_json`, zlib-compressed, base64.

        Dagster keeps the cursor with every tick (skipped ticks for a week by default),
        and the JSON of 500 environments is ~150 KB; compressed it is ~25 KB.
        """
        packed = zlib.compress(self.to_json().encode("utf-8"), 9)
        return COMPRESSED_PREFIX + base64.b64encode(packed).decode("ascii")

    @classmethod
    def decode(cls, text: str | None) -> DriftCursor:
        """Read :meth:`encode` or :meth:`to_json` output.

        None, empty or unreadable text is an empty cursor (the next tick probes in full
        and starts the memory afresh).
        """
        if not text:
            return cls()
        try:
            if text.startswith(COMPRESSED_PREFIX):
                raw = base64.b64decode(text[len(COMPRESSED_PREFIX) :], validate=True)
                text = zlib.decompress(raw).decode("utf-8")
            data = json.loads(text)
            if not isinstance(data, dict) or data.get("version") != CURSOR_VERSION:
                return cls()
            return cls(
                environments={
                    str(name): EnvironmentMemory.from_dict(memory)
                    for name, memory in (data.get("environments") or {}).items()
                },
                head=data.get("head"),
                reference=data.get("reference"),
            )
        except (ValueError, TypeError, AttributeError, zlib.error):
            return cls()


@dataclass(frozen=True)
class TickPlan:
    """What one tick decided: states, verifications to request (env -> run key), memory."""

    states: tuple[DriftState, ...]
    requests: Mapping[str, str]
    cursor: DriftCursor

    def state(self, environment: str) -> DriftState:
        """The state of ``environment`` at this tick."""
        return next(s for s in self.states if s.environment == environment)


def plan_tick(
    states: Iterable[DriftState],
    cursor: DriftCursor,
    *,
    now: float | None = None,
    no_runs_for: Collection[str] = (),
    head: str | None = None,
    reference: str | None = None,
) -> TickPlan:
    """Decide which environments need a verification run and compute the next cursor.

    A drifting environment (not in ``no_runs_for``) gets a run key from its revisions,
    fingerprint and episode; it is requested unless that key was already requested, so
    the same drift never asks twice. An environment no longer drifting after a request
    (in sync, behind or awaiting its stamp) starts a new episode. An unreachable
    environment keeps its last seen revisions and fingerprint (and its pending request),
    so a short outage requests nothing new.
    """
    now = time.time() if now is None else now
    memories = dict(cursor.environments)
    requests: dict[str, str] = {}
    states = tuple(states)
    for state in states:
        previous = memories.get(state.environment)
        since = now if previous is None or previous.status != state.status else previous.since
        episode = previous.episode if previous else 0
        requested = previous.requested if previous else None
        if state.status is EnvironmentState.UNREACHABLE:
            memories[state.environment] = EnvironmentMemory(
                status=state.status.value,
                revisions=previous.revisions if previous else None,
                fingerprint=previous.fingerprint if previous else None,
                since=since,
                episode=episode,
                requested=requested,
                seen_since=previous.seen_since if previous else None,
                token=previous.token if previous else None,
                table_count=previous.table_count if previous else None,
            )
            continue
        if not state.drifting and requested is not None:
            episode, requested = episode + 1, None
        if state.drifting and state.environment not in no_runs_for:
            key = run_key(state.environment, state.revisions, state.fingerprint, episode)
            if key != requested:
                requests[state.environment] = key
                requested = key
        same = previous is not None and (previous.revisions, previous.fingerprint) == (
            state.revisions,
            state.fingerprint,
        )
        memories[state.environment] = EnvironmentMemory(
            status=state.status.value,
            revisions=state.revisions,
            fingerprint=state.fingerprint,
            since=since,
            episode=episode,
            requested=requested,
            seen_since=previous.seen_since if same and previous else now,
            token=state.token,
            table_count=state.table_count,
        )
    return TickPlan(
        states=states,
        requests=requests,
        cursor=replace(cursor, environments=memories, head=head, reference=reference),
    )


# -- the versions folder ----------------------------------------------------------------


def _files(folders: Iterable[Path]) -> list[tuple[Path, Path]]:
    """``(folder, file)`` for every revision file under ``folders`` (sub-folders too)."""
    found: list[tuple[Path, Path]] = []
    for folder in folders:
        folder = Path(folder)
        if folder.is_dir():
            found.extend((folder, path) for path in revision_files(folder, recursive=True))
    return found


def versions_signature(folders: Iterable[Path]) -> str:
    """A cheap signature of the revision files: names, sizes and mtimes (no reads).

    Changes whenever a revision file is added, removed, renamed or written; may also
    change when nothing in the content did (a ``touch``), so confirm with
    :func:`~abparts_ops.core.history.revisions.versions_fingerprint`.
    """
    digest = hashlib.sha256()
    for folder, path in _files(folders):
        try:
            stat = path.stat()
        except OSError:
            continue
        rel = path.relative_to(folder).as_posix()
        digest.update(f"{folder}\t{rel}\t{stat.st_size}\t{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


_HEADS_LOCK = threading.Lock()
_HEADS_CACHE: dict[tuple[str, ...], tuple[str, str]] = {}


def _cache_key(project: AlembicProject) -> tuple[tuple[str, ...], str]:
    """The project's key in the heads and graph caches, and the signature that keeps an
    entry valid: the versions folders' names, sizes and mtimes, and the ini file's mtime."""
    ini_mtime = ""
    if project.ini_path is not None:
        try:
            ini_mtime = str(project.ini_path.stat().st_mtime_ns)
        except OSError:
            ini_mtime = "missing"
    key = (str(project.ini_path), str(project.script_location), *map(str, project.versions_dirs))
    return key, versions_signature(project.versions_dirs) + ini_mtime


def script_heads(project: AlembicProject) -> tuple[str, ...]:
    """The heads of ``project``'s script directory, sorted.

    Alembic imports every revision file to find them; the answer is cached per project
    and reused while :func:`versions_signature` of its versions folders (and the ini
    file's mtime) stay the same, so a sensor tick costs a few ``stat`` calls.
    """
    key, signature = _cache_key(project)
    with _HEADS_LOCK:
        cached = _HEADS_CACHE.get(key)
        if cached is not None and cached[0] == signature:
            return tuple(cached[1].split(",")) if cached[1] else ()
    heads = tuple(sorted(project.script().get_heads()))
    with _HEADS_LOCK:
        _HEADS_CACHE[key] = (signature, ",".join(heads))
    return heads


_GRAPH_LOCK = threading.Lock()
_GRAPH_CACHE: dict[tuple[str, ...], tuple[str, HistoryGraph]] = {}


def history_graph(project: AlembicProject) -> HistoryGraph:
    """The revision files of ``project`` as a graph with each file's hash (cached).

    Alembic imports every revision file to read the graph; the answer is reused while
    :func:`versions_signature` of the versions folders (and the ini file's mtime) stay the
    same, so a sensor tick costs a few ``stat`` calls. The fingerprint is recomputed
    from the files on every call (a few small reads), so content that changed without
    moving a size or mtime is still seen.
    """
    key, signature = _cache_key(project)
    fingerprint = versions_fingerprint(project.versions_dirs)
    with _GRAPH_LOCK:
        cached = _GRAPH_CACHE.get(key)
    if cached is not None and cached[0] == signature and cached[1].fingerprint == fingerprint:
        return cached[1]
    graph = read_graph(project)
    with _GRAPH_LOCK:
        _GRAPH_CACHE[key] = (signature, graph)
    return graph
