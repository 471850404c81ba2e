"""The Dagster side of the one write guard: run config and the last recorded identity in.

The guard itself is :mod:`abparts_ops.core.rollout.write_guard`; this module only reads what the
instance knows (the database identity recorded by the environment's latest stamp or
upgrade, whichever came last) and passes the run config through, so that the stamp and
the upgrade assets build their guard the same way.
"""

from __future__ import annotations

from typing import Any

import dagster as dg

from abparts_ops.core.rollout.write_guard import GuardReport, WriteGuard, guard_for
from abparts_ops.core.settings import Settings
from abparts_ops.defs.metadata import md
from abparts_ops.defs.names import stamp_key, upgrade_key


def last_identity(instance: dg.DagsterInstance, environment: str) -> str | None:
    """The identity key recorded by ``environment``'s latest write (stamp or upgrade)."""
    latest: tuple[float, str] | None = None
    for key in (stamp_key(environment), upgrade_key(environment)):
        event = instance.get_latest_materialization_event(key)
        materialization = event.asset_materialization if event else None
        if materialization is None:
            continue
        value = materialization.metadata.get("identity_key")
        text = getattr(value, "value", value)
        if text and (latest is None or event.timestamp > latest[0]):
            latest = (event.timestamp, str(text))
    return latest[1] if latest else None


def write_guard(
    context: dg.AssetExecutionContext,
    settings: Settings,
    environment: str,
    *,
    confirm: str,
    acknowledge_identity: str,
) -> WriteGuard:
    """The write guard of ``environment`` for this run; unreadable others are logged."""
    guard = guard_for(
        settings,
        environment,
        confirm=confirm,
        acknowledge_identity=acknowledge_identity,
        recorded_identity=last_identity(context.instance, environment),
    )
    for name, why in sorted(guard.unreadable.items()):
        context.log.warning(f"{name}: identity not compared: {why}")
    return guard


def guard_metadata(report: GuardReport | None) -> dict[str, Any]:
    """The guard's audit metadata: the identity written to and what was checked."""
    if report is None:
        return {}
    lines = [f"- {line}" for line in report.checked]
    lines += [f"- not compared (unreachable): {name}" for name in report.unchecked]
    return {
        "identity_key": report.identity.key,
        "identity": report.identity.describe(),
        "guard": md("\n".join(lines)),
    }
