"""How one environment's state reads in the UI: a short line, a health, the live events.

The drift sensor (each tick) and the live checks executed in a run both turn a
:class:`~abparts_ops.core.watch.drift.DriftState` into the same events: an observation of
``[env, live_revision]`` and of ``[env, live_schema]`` with the state in their metadata
(a materialization too, when the environment changed), and one check result on each
(``revision_in_sync``, ``schema_in_sync``) whose status colours the asset graph and the
asset list and whose
description starts with the short line ("staging: schema_drift (2 objects)"). A failed
check is an ERROR where that asset is the problem (an unknown revision, schema drift, an
unreachable database), a WARN where work is merely waiting (behind, awaiting a stamp, a
catch-up, a history not judged yet).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import dagster as dg

from abparts_ops.core.watch.drift import DriftState
from abparts_ops.core.watch.reference import describe_revisions
from abparts_ops.core.watch.states import EnvironmentState
from abparts_ops.defs.names import (
    ENVIRONMENT_TAG,
    LIVE_REVISION_CHECK,
    LIVE_SCHEMA_CHECK,
    live_revision_key,
    live_schema_key,
)

_REVISION_ERRORS = (EnvironmentState.UNKNOWN_REVISION, EnvironmentState.UNREACHABLE)
_SCHEMA_ERRORS = (EnvironmentState.SCHEMA_DRIFT, EnvironmentState.UNREACHABLE)


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" + ("" if count == 1 else "s")


def short_line(state: DriftState, differences: int | None = None) -> str:
    """``<env>: <state>`` with the one number that matters, e.g. ``staging: schema_drift
    (2 objects)``, ``prod: behind (1 pending)``; ``differences`` when a verification
    counted them."""
    detail = ""
    if state.status is EnvironmentState.SCHEMA_DRIFT and differences is not None:
        detail = f" ({_plural(differences, 'object')})"
    elif state.status is EnvironmentState.BEHIND and state.pending:
        detail = f" ({len(state.pending)} pending)"
    return f"{state.environment}: {state.status.value}{detail}"


def reason_tail(state: DriftState) -> str:
    """The reason without its leading ``<env>: <state words>: `` (said by the short line)."""
    reason = state.reason
    prefix = f"{state.environment}: "
    if reason.startswith(prefix):
        reason = reason[len(prefix) :]
        words, sep, rest = reason.partition(": ")
        if sep and len(words) <= 24:  # "schema drift", "awaiting its stamp", ...
            reason = rest
    return reason


def state_line(state: DriftState, differences: int | None = None) -> str:
    """One line per environment: the short line, then what the reference said."""
    tail = reason_tail(state)
    return f"{short_line(state, differences)}: {tail}" if tail else short_line(state, differences)


@dataclass(frozen=True)
class LiveEvent:
    """One live asset's observation and its check result, before Dagster's types."""

    asset_key: dg.AssetKey
    description: str
    metadata: dict[str, Any]
    check_name: str
    passed: bool
    severity: dg.AssetCheckSeverity
    check_description: str
    tags: dict[str, str] = field(default_factory=dict)


def live_events(
    state: DriftState,
    *,
    head: str | None,
    differences: int | None = None,
    since: float | None = None,
) -> list[LiveEvent]:
    """The two live assets' events for ``state`` (``since``: when this state began)."""
    reachable = state.status is not EnvironmentState.UNREACHABLE
    line = short_line(state, differences)
    common: dict[str, Any] = {
        "state": state.status.value,
        "status": state.status.value,
        "summary": line,
        "reason": state.reason,
        "pending": ", ".join(state.pending),
        "pending_count": len(state.pending),
        "reachable": int(reachable),
        "status_since": dg.MetadataValue.timestamp(since if since else time.time()),
        "elapsed_ms": round(state.elapsed_ms, 1),
    }
    revision_meta: dict[str, Any] = {
        "revision": describe_revisions(state.revisions) if reachable else "unknown",
        "head": head or "",
        "expected_revision": state.expected_revision or "",
        **common,
    }
    schema_meta: dict[str, Any] = {
        "fingerprint": state.fingerprint or "",
        "reference": state.reference or "",
        **common,
    }
    if state.revision_in_sync is not None:
        revision_meta["revision_in_sync"] = int(state.revision_in_sync)
    if state.schema_in_sync is not None:
        schema_meta["schema_in_sync"] = int(state.schema_in_sync)
        if state.schema_in_sync:
            schema_meta["differing_objects"] = 0
        elif differences is not None:
            schema_meta["differing_objects"] = differences
    if state.table_count is not None:
        schema_meta["tables"] = state.table_count
    if reachable:
        schema_meta["catalogs_unchanged"] = int(state.reused)
    description = state_line(state, differences)
    tags = {ENVIRONMENT_TAG: state.environment}
    revision_ok = reachable and state.revision_in_sync is True
    schema_ok = reachable and state.schema_in_sync is True
    def event(
        key: dg.AssetKey, meta: dict[str, Any], check: str, ok: bool, errors: Any
    ) -> LiveEvent:
        severity = (
            dg.AssetCheckSeverity.ERROR if state.status in errors else dg.AssetCheckSeverity.WARN
        )
        return LiveEvent(
            asset_key=key,
            description=state.reason,
            metadata=meta,
            check_name=check,
            passed=ok,
            severity=severity,
            check_description=description,
            tags=tags,
        )

    return [
        event(
            live_revision_key(state.environment),
            revision_meta,
            LIVE_REVISION_CHECK,
            revision_ok,
            _REVISION_ERRORS,
        ),
        event(
            live_schema_key(state.environment),
            schema_meta,
            LIVE_SCHEMA_CHECK,
            schema_ok,
            _SCHEMA_ERRORS,
        ),
    ]


def _check_metadata(event: LiveEvent) -> dict[str, Any]:
    keys = ("state", "summary", "reason", "pending", "revision", "expected_revision")
    return {key: event.metadata[key] for key in keys if key in event.metadata}


LiveAssetEvent = dg.AssetMaterialization | dg.AssetCheckEvaluation | dg.AssetObservation
"""A runless event the drift sensor reports for a live asset."""


def sensor_events(events: Sequence[LiveEvent], *, changed: bool) -> list[LiveAssetEvent]:
    """Runless events for a sensor tick, in this order: a materialization of each live
    asset when the environment ``changed`` (state, revision or fingerprint; the check
    results then belong to it), the check evaluations, the observations."""
    materializations: list[LiveAssetEvent] = [
        dg.AssetMaterialization(
            asset_key=event.asset_key,
            description=event.description,
            metadata=event.metadata,
            tags=event.tags,
        )
        for event in events
        if changed
    ]
    checks: list[LiveAssetEvent] = [
        dg.AssetCheckEvaluation(
            asset_key=event.asset_key,
            check_name=event.check_name,
            passed=event.passed,
            severity=event.severity,
            description=event.check_description[:1000],
            metadata=_check_metadata(event),
        )
        for event in events
    ]
    observations = [
        dg.AssetObservation(
            asset_key=event.asset_key,
            description=event.description,
            metadata=event.metadata,
            tags=event.tags,
        )
        for event in events
    ]
    return [*materializations, *checks, *observations]


def check_result(event: LiveEvent) -> dg.AssetCheckResult:
    """The same check as the result of executing the live checks in a run."""
    return dg.AssetCheckResult(
        asset_key=event.asset_key,
        check_name=event.check_name,
        passed=event.passed,
        severity=event.severity,
        description=event.check_description[:1000],
        metadata=_check_metadata(event),
    )
