"""What a tick of the drift sensors reads and says: the Dagster-aware utilities of the watch.

The sensors (:mod:`abparts_ops.defs.sensors`) are short compositions of these steps:
the reference of this tick (:func:`current_reference`: the one expected-schemas cache,
read against the revision files), the probes and their classification
(:func:`probe_and_plan`, over :mod:`abparts_ops.core.watch.drift`), what a
verification already told (:func:`known_differences`), the live assets' events, the
verification requests and the tick's text (:func:`tick_text`). Module-level state is
one cache: the Alembic project, reloaded only when its ini file changes.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg

from abparts_ops.core.errors import AbpartsOpsError
from abparts_ops.core.history.expected import ExpectedIndex, StaleIndex
from abparts_ops.core.history.expected_cache import cached_index, default_cache_dir, reference_index
from abparts_ops.core.history.project import AlembicProject
from abparts_ops.core.rollout.catch_up import archive_positions
from abparts_ops.core.settings import EnvironmentSettings
from abparts_ops.core.watch.drift import (
    DriftCursor,
    DriftState,
    ProbeTarget,
    TickPlan,
    classify,
    decode_probe_statuses,
    encode_probe_statuses,
    history_graph,
    plan_tick,
    probe_all,
)
from abparts_ops.core.watch.states import EnvironmentState
from abparts_ops.defs.live_state import (
    LiveAssetEvent,
    live_events,
    sensor_events,
    short_line,
    state_line,
)
from abparts_ops.defs.names import (
    DRIFT_TAG,
    ENVIRONMENT_TAG,
    EXPECTED_SCHEMAS,
    FOUND_TAG,
    SCHEMA_MATCHES_REFERENCE,
    VERIFY_JOB,
    VERSIONS_TAG,
    check_keys,
    stamp_key,
)
from abparts_ops.defs.resources import AlembicResource, SchemaPolicyResource

TICK_BUDGET_S = 50.0
"""Probing stops after this long, under Dagster's default 60 s sensor evaluation limit."""
PROBE_ORDER_KEY = "abparts_ops/schema_drift_sensor/probe_order"
"""Instance key-value entry: how each environment's last probe went (sets the next order)."""


# -- the Alembic project, cached between ticks -----------------------------------------

_PROJECTS: dict[tuple[str, ...], AlembicProject] = {}
_PROJECTS_LOCK = threading.Lock()


def _mtime(path: Path | None) -> str:
    if not path:
        return ""
    try:
        return str(Path(path).stat().st_mtime_ns)
    except OSError:
        return "missing"


def cached_project(alembic: AlembicResource) -> AlembicProject:
    """``alembic.project()``, loaded once and reused while the ini file is unchanged.

    Loading imports every revision file; a sensor ticking every minute only needs the
    folders (to stat them) and, through :func:`~abparts_ops.core.watch.drift.script_heads`,
    the heads, which are re-read only when the files change.
    """
    key = (
        str(alembic.ini_path),
        _mtime(alembic.ini_path),
        str(alembic.script_location),
        alembic.version_table,
    )
    with _PROJECTS_LOCK:
        project = _PROJECTS.get(key)
    if project is None:
        project = alembic.project()
        with _PROJECTS_LOCK:
            _PROJECTS[key] = project
    return project


def expected_index(instance: dg.DagsterInstance) -> ExpectedIndex | None:
    """The expected schemas' index from the latest ``expected_schemas`` materialization.

    One event-log read: the ``index`` metadata (heads, order, parents and one probe
    fingerprint per revision; no snapshots). None when never materialized or unreadable.
    """
    event = instance.get_latest_materialization_event(EXPECTED_SCHEMAS)
    materialization = event.asset_materialization if event else None
    if materialization is None:
        return None
    value = materialization.metadata.get("index")
    data = getattr(value, "value", value)
    if data is None:
        return None
    try:
        return ExpectedIndex.from_dict(data if isinstance(data, dict) else json.loads(data))
    except (AbpartsOpsError, ValueError, TypeError, KeyError):
        return None


def built_fingerprint(instance: dg.DagsterInstance) -> str | None:
    """The history fingerprint the latest ``expected_schemas`` materialization was built from."""
    event = instance.get_latest_materialization_event(EXPECTED_SCHEMAS)
    materialization = event.asset_materialization if event else None
    if materialization is None:
        return None
    value = materialization.metadata.get("history_fingerprint")
    text = getattr(value, "value", value)
    return str(text) if text else None


def cached_archived(project: AlembicProject) -> Mapping[str, int]:
    """The archived ids and how far each is behind the old head (``archive_positions``,
    re-read only when the versions folders change)."""
    return archive_positions(project)


def known_differences(
    instance: dg.DagsterInstance, states: Sequence[DriftState], plan: TickPlan
) -> dict[str, int]:
    """Differing objects per schema-drifting environment, when a verification told us.

    Known when the latest ``schema_matches_reference`` evaluation of the environment
    diffed this very schema: its recorded probe fingerprint equals the one seen now (or,
    for evaluations without one, it ran after this state was first seen). One event-log
    read for all drifting environments; none when all in sync.
    """
    keys = {
        state.environment: dg.AssetCheckKey(stamp_key(state.environment), SCHEMA_MATCHES_REFERENCE)
        for state in states
        if state.schema_in_sync is False
    }
    fingerprints = {state.environment: state.fingerprint for state in states}
    if not keys:
        return {}
    try:
        records = instance.event_log_storage.get_latest_asset_check_execution_by_key(
            list(keys.values())
        )
    except Exception:  # noqa: BLE001 - an optional detail; the tick goes on without it
        return {}
    known: dict[str, int] = {}
    for env, key in keys.items():
        record = records.get(key)
        evaluation = record.evaluation if record is not None else None
        if evaluation is None:
            continue
        recorded = evaluation.metadata.get("actual_probe_fingerprint")
        diffed = getattr(recorded, "value", recorded) or None
        if diffed is not None:
            if diffed != fingerprints.get(env):
                continue
        else:
            memory = plan.cursor.environments.get(env)
            if memory is None or memory.seen_since is None:
                continue
            if record.create_timestamp < memory.seen_since:
                continue
        value = evaluation.metadata.get("differences")
        number = getattr(value, "value", value)
        if isinstance(number, int):
            known[env] = number
    return known


def _events(
    state: DriftState, plan: TickPlan, head: str | None, differences: int | None, changed: bool
) -> list[LiveAssetEvent]:
    memory = plan.cursor.environments.get(state.environment)
    since = memory.since if memory and memory.since else None
    events = live_events(state, head=head, differences=differences, since=since)
    return sensor_events(events, changed=changed)


LOG_LINES = 20
"""At most this many unreachable / drifting environments are logged one line each."""


def log_states(context: dg.SensorEvaluationContext, states: Sequence[DriftState]) -> None:
    """One log line per unreachable or drifting environment, the rest summarised."""
    for level, wanted in (("warning", EnvironmentState.UNREACHABLE), ("info", None)):
        chosen = [s for s in states if (s.status == wanted if wanted else s.drifting)]
        log = getattr(context.log, level)
        for state in chosen[:LOG_LINES]:
            log(state.reason)
        if len(chosen) > LOG_LINES:
            rest = chosen[LOG_LINES:]
            names = ", ".join(s.environment for s in rest[:50])
            more = f" and {len(rest) - 50} more" if len(rest) > 50 else ""
            log(
                f"... and {len(rest)} more {'unreachable' if wanted else 'drifting'}: {names}{more}"
            )


@dataclass(frozen=True)
class _Reference:
    """What one tick compares environments with, and what it says about the history."""

    view: ExpectedIndex | StaleIndex | None
    archived: Mapping[str, int] = field(default_factory=dict)
    problem: str | None = None
    """Why no run may be requested this tick (the project cannot be read, several heads)."""
    history: str | None = None
    """The history's change since the expected schemas were built, in one line."""


def _refresh_status(instance: dg.DagsterInstance, fingerprint: str) -> str:
    """Where the refresh of history ``fingerprint`` stands (one run-storage read)."""
    try:
        runs = instance.get_runs(
            filters=dg.RunsFilter(tags={VERSIONS_TAG: fingerprint[:16]}), limit=1
        )
    except Exception:  # noqa: BLE001 - an optional detail; the tick goes on without it
        runs = []
    if runs:
        run = runs[0]
        return f"refresh_history run {run.run_id[:8]} is {run.status.value.lower()}"
    return "run refresh_history (revision_files_sensor requests it while it runs)"


def current_reference(
    instance: dg.DagsterInstance, alembic: AlembicResource, policy: SchemaPolicyResource
) -> _Reference:
    """The reference of this tick: the expected schemas of the revision files as they are.

    From the one cache (a manifest read, no snapshot, never a build): the current build
    when there is one, else the earlier build read against the files
    (:class:`~abparts_ops.core.history.expected.StaleIndex`: what changed is judged
    only once ``refresh_history`` has run). The latest ``expected_schemas``
    materialization's index stands in when the cache holds nothing for these settings.
    """
    try:
        project = cached_project(alembic)
        graph = history_graph(project)
        archived = cached_archived(project)
    except Exception as exc:  # noqa: BLE001 - a broken project must not stop the probes
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        return _Reference(
            expected_index(instance),
            problem=f"the Alembic project cannot be read: {first}; no run requested",
        )
    settings = {
        "schema": policy.schema_name,
        "exclude": tuple(policy.exclude),
        "version_table": project.version_table,
        "privileges": policy.compare_privileges,
        "cache_dir": default_cache_dir(),
    }
    view: ExpectedIndex | StaleIndex | None = cached_index(graph.fingerprint, **settings)
    if view is None:
        view = reference_index(graph, fallback=expected_index(instance), **settings)
    history = None
    if isinstance(view, StaleIndex):
        history = (
            f"{view.delta.line()}; {_refresh_status(instance, graph.fingerprint)}: the "
            "environments that depend on them are judged once it has run"
        )
    problem = None
    if len(graph.heads) != 1:
        problem = (
            f"the history has {len(graph.heads)} heads ({', '.join(graph.heads)}); merge "
            "them (`alembic merge heads`)"
        )
    return _Reference(view, archived, problem, history)


def probe_environments(
    instance: dg.DagsterInstance,
    alembic: AlembicResource,
    policy: SchemaPolicyResource,
    environments: Sequence[EnvironmentSettings],
    *,
    connect_timeout_s: float | None = None,
    timeout_s: float = 10,
) -> tuple[list[DriftState], str | None]:
    """Probe and classify ``environments`` now, as one tick would (no memory of the last).

    For the live assets' own observation (the UI's "Observe"): the same reference, probe
    and classification as :func:`build_schema_drift_sensor`; every fingerprint computed
    in full. Returns the states and the head. Raises :class:`dagster.Failure` (one line)
    when there is no reference yet.
    """
    reference = current_reference(instance, alembic, policy)
    index = reference.view
    if index is None:
        raise dg.Failure(
            description=(
                "materialize expected_schemas first (run reset_baseline or refresh_history): "
                "the reference is the schema the migration history builds up to each revision"
            ),
            allow_retries=False,
        )
    targets = [
        ProbeTarget(
            environment=env.name,
            url=env.url,
            schema=env.schema,
            exclude=tuple(policy.exclude),
            version_table=alembic.version_table,
            privileges=index.privileges,
        )
        for env in environments
    ]
    outcomes = probe_all(
        targets,
        max_workers=max(1, min(16, len(targets))),
        timeout_s=timeout_s,
        budget_s=TICK_BUDGET_S,
        connect_timeout_s=connect_timeout_s,
    )
    states = [classify(o, index, archived=reference.archived) for o in outcomes]
    head = index.heads[0] if len(index.heads) == 1 else None
    return states, head


HEADLINE_NAMES = 20
"""The tick's first line names at most this many environments of each kind."""


def _sentence(line: str) -> str:
    """``line`` ending with a full stop: the UI shows the tick's lines run together."""
    return line if line.endswith((".", ")", "!", "?")) else f"{line}."


def headline_of(states: Sequence[DriftState], differences: Mapping[str, int]) -> str:
    """The tick's first line after its summary: every environment not in sync in its short
    form, then the ones in sync by name (``staging: schema_drift (1 object); in sync: dev,
    prod.``). The UI shows it first, in the tick history's tooltip and dialog."""

    def names(items: Sequence[str]) -> list[str]:
        more = len(items) - HEADLINE_NAMES
        return [*items[:HEADLINE_NAMES], *([f"and {more} more"] if more > 0 else [])]

    not_in_sync = [
        short_line(state, differences.get(state.environment))
        for state in states
        if state.status is not EnvironmentState.IN_SYNC
    ]
    in_sync = [state.environment for state in states if state.status is EnvironmentState.IN_SYNC]
    parts = names(not_in_sync)
    if in_sync:
        listed = ", ".join(names(in_sync))
        parts.append(listed if not not_in_sync else f"in sync: {listed}")
    return "; ".join(parts) + "."




@dataclass(frozen=True)
class TickOutcome:
    """One tick's probes, judged: the states, the plan (requests and cursor), the head."""

    reference: _Reference
    states: list[DriftState]
    plan: TickPlan
    previous: DriftCursor
    head: str | None
    differences: dict[str, int]


def probe_and_plan(
    instance: dg.DagsterInstance,
    alembic: AlembicResource,
    policy: SchemaPolicyResource,
    environments: Sequence[EnvironmentSettings],
    reference: _Reference,
    cursor: str | None,
    *,
    max_workers: int,
    timeout_s: float,
    connect_timeout_s: float | None,
) -> TickOutcome:
    """Probe every environment (last tick's slowest and unprobed first), classify each
    with the reference, and plan the requests and the next cursor."""
    index = reference.view
    assert index is not None
    previous = DriftCursor.decode(cursor)
    targets = [
        ProbeTarget(
            environment=env.name,
            url=env.url,
            schema=env.schema,
            exclude=tuple(policy.exclude),
            version_table=alembic.version_table,
            known=previous.known(env.name),
            privileges=index.privileges,
        )
        for env in environments
    ]
    storage = instance.run_storage  # the previous tick's probe order
    last = storage.get_cursor_values({PROBE_ORDER_KEY}).get(PROBE_ORDER_KEY)
    outcomes = probe_all(
        targets, max_workers=max_workers, timeout_s=timeout_s, budget_s=TICK_BUDGET_S,
        last=decode_probe_statuses(last), connect_timeout_s=connect_timeout_s,
    )
    storage.set_cursor_values({PROBE_ORDER_KEY: encode_probe_statuses(outcomes)})
    states = [classify(o, index, archived=reference.archived) for o in outcomes]
    head = index.heads[0] if len(index.heads) == 1 else None
    no_runs = {env.name for env in environments} if reference.problem else set()
    plan = plan_tick(
        states, previous, no_runs_for=no_runs, head=head, reference=index.history_fingerprint
    )
    differences = known_differences(instance, states, plan)
    return TickOutcome(reference, states, plan, previous, head, differences)


def tick_events(tick: TickOutcome, *, observe_unchanged: bool) -> list[LiveAssetEvent]:
    """The live assets' observations, check results and (on a change) materializations."""
    events: list[LiveAssetEvent] = []
    for state in tick.states:
        before = tick.previous.environments.get(state.environment)
        changed = before is None or (
            (before.status, before.revisions, before.fingerprint)
            != (state.status.value, state.revisions, state.fingerprint)
        )
        if observe_unchanged or changed:
            known = tick.differences.get(state.environment)
            events.extend(_events(state, tick.plan, tick.head, known, changed))
    return events


def verification_requests(tick: TickOutcome) -> list[dg.RunRequest]:
    """One ``verify_environments`` run per newly drifting environment, tagged with what
    was found (the Runs list shows it)."""
    plan = tick.plan
    return [
        dg.RunRequest(
            run_key=key,
            job_name=VERIFY_JOB,
            asset_selection=[],
            asset_check_keys=check_keys(env),
            tags={
                DRIFT_TAG: plan.state(env).status.value,
                ENVIRONMENT_TAG: env,
                FOUND_TAG: short_line(plan.state(env), tick.differences.get(env)),
            },
        )
        for env, key in plan.requests.items()
    ]


def tick_text(tick: TickOutcome) -> str:
    """The tick's text when it requests nothing: a summary and every environment's state
    on the first line, then one sentence per environment (the tick history shows it)."""
    states, differences = tick.states, tick.differences
    lines = []
    for state in states:
        line = state_line(state, differences.get(state.environment))
        memory = tick.plan.cursor.environments.get(state.environment)
        if state.drifting and memory and memory.requested:
            line += f" (verification already requested: {memory.requested})"
        lines.append(_sentence(line))
    reference = tick.reference
    lines.extend(_sentence(line) for line in (reference.problem, reference.history) if line)
    if all(s.status is EnvironmentState.IN_SYNC for s in states):
        summary = "all in sync"
    elif any(s.status is EnvironmentState.HISTORY_CHANGED for s in states):
        summary = "not all judged, the history changed"
    elif any(s.drifting for s in states):
        summary = "no new drift"
    else:
        summary = "no drift"
    return f"{summary}: {headline_of(states, differences)}\n" + "\n".join(lines)


def json_cursor(text: str | None) -> dict[str, str]:
    """The revision files sensor's cursor as a dict (ValueError when it is not one)."""
    if not text:
        return {}
    data = json.loads(text)
    if not isinstance(data, dict):
        raise ValueError("cursor is not an object")
    return {str(k): str(v) for k, v in data.items()}


def dump_cursor(data: dict[str, str]) -> str:
    """The revision files sensor's cursor as compact, sorted JSON."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"))


