"""The live state of every environment, as observable assets the drift sensor observes.

Per environment two observable source assets, group ``live``: ``[env, "live_revision"]``
(what its ``alembic_version`` says) and ``[env, "live_schema"]`` (the fingerprint of its
schema), each with one check (``revision_in_sync``, ``schema_in_sync``). Nothing
materializes them, so the graph shows them as "Observed" (never as "Never
materialized", pending work): ``schema_drift_sensor`` records an observation of each and
evaluates both checks on every tick, so the asset graph and the asset list show each
environment's state at a glance (a failed check's severity: red for drift, an unknown
revision or an unreachable database; yellow for work waiting), the check's description
says it in one line ("staging: schema_drift (2 objects)"), and the observations' numeric
metadata (in-sync flags as 0/1, probe time, differing objects) is plotted over time: the
moment drift started is the first observation with a 0. "Observe" in the UI probes the
environment now, in a run, the same way.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator

import dagster as dg

from abparts_ops.core.settings import EnvironmentSettings, Settings
from abparts_ops.defs.live_state import live_events, observe_result
from abparts_ops.defs.names import (
    ENVIRONMENT_TAG,
    LIVE_GROUP,
    LIVE_REVISION,
    LIVE_REVISION_CHECK,
    LIVE_SCHEMA,
    LIVE_SCHEMA_CHECK,
    live_revision_key,
    live_schema_key,
)
from abparts_ops.defs.resources import AlembicResource, SchemaPolicyResource
from abparts_ops.defs.sensors import probe_environments

__all__ = ["LIVE_REVISION", "LIVE_SCHEMA", "live_revision_key", "live_schema_key"]


def build_live_specs(settings: Settings) -> list[dg.AssetSpec]:
    """Two observed asset specs per configured environment (source included).

    Their observations come from ``schema_drift_sensor``; their metadata is described in
    each spec's description.
    """
    specs: list[dg.AssetSpec] = []
    for env in settings.environments.values():
        role = "source (reference)" if env.name == settings.source else "target"
        protected = ", protected" if env.protected else ""
        specs.append(
            dg.AssetSpec(
                key=live_revision_key(env.name),
                group_name=LIVE_GROUP,
                kinds={"postgres", "alembic"},
                description=(
                    f"The revision(s) in `{env.name}`'s Alembic version table, as seen by "
                    "`schema_drift_sensor` on each tick. Metadata: `revision`, `head`, "
                    "`state` (in_sync, behind, awaiting_stamp, unknown_revision, "
                    "schema_drift, unreachable, history_changed), `reason`, `pending` (the "
                    "revisions between it and the head), `pending_count`, `expected_revision`, "
                    "`revision_in_sync` (1/0), `reachable` (1/0), `status_since`, "
                    "`elapsed_ms`."
                ),
                metadata={"environment": env.name, "role": role + protected},
                tags={ENVIRONMENT_TAG: env.name},
            )
        )
        specs.append(
            dg.AssetSpec(
                key=live_schema_key(env.name),
                group_name=LIVE_GROUP,
                kinds={"postgres"},
                description=(
                    f"The fingerprint of `{env.name}`'s schema (exclusions applied), "
                    "computed by the server in one catalog query and checked on each tick "
                    "of `schema_drift_sensor` (recomputed only when the catalogs changed "
                    "since the tick before), compared with the expected probe fingerprint of "
                    "its own revision (the expected schemas of the revision files as they "
                    "are: what the history builds up to that revision). Metadata: "
                    "`fingerprint`, `reference` (the expected fingerprint), `state`, "
                    "`reason`, `pending`, "
                    "`schema_in_sync` (1/0), `differing_objects` (when known), `tables`, "
                    "`catalogs_unchanged` (1 when the last fingerprint was reused), "
                    "`elapsed_ms`."
                ),
                metadata={"environment": env.name, "role": role + protected},
                tags={ENVIRONMENT_TAG: env.name},
            )
        )
    return specs


def _live_checks(env: EnvironmentSettings) -> list[dg.AssetCheckSpec]:
    return [
        dg.AssetCheckSpec(
            LIVE_REVISION_CHECK,
            asset=live_revision_key(env.name),
            description=(
                f"{env.name}'s version rows are the revision its schema should be judged by "
                "and the head (evaluated by schema_drift_sensor on each tick). Fails as a "
                "warning while work waits (behind, awaiting its stamp, a catch-up, history "
                "changed), as an error for an unknown revision or an unreachable database. "
                "The description starts with the state: `staging: behind (1 pending)`."
            ),
        ),
        dg.AssetCheckSpec(
            LIVE_SCHEMA_CHECK,
            asset=live_schema_key(env.name),
            description=(
                f"{env.name}'s schema fingerprint equals what the history builds up to its "
                "own revision (evaluated by schema_drift_sensor on each tick). Fails as an "
                "error for schema drift or an unreachable database, as a warning when the "
                "schema could not be judged yet. The description starts with the state: "
                "`staging: schema_drift (2 objects)`."
            ),
        ),
    ]


def _live_asset(env: EnvironmentSettings, settings: Settings) -> dg.AssetsDefinition:
    specs = [s for s in build_live_specs(settings) if s.key.path[0] == env.name]
    connect_timeout_s = settings.probe.connect_timeout_s

    def observe_live(context) -> Iterator[dg.ObserveResult]:  # type: ignore[no-untyped-def]
        """Observe this environment's live revision and schema (one probe, no memory).

        ``context`` is Dagster's ``AssetExecutionContext``; it is not annotated because
        an observable source asset refuses the string annotation this module's
        ``from __future__ import annotations`` would give it.
        """
        alembic: AlembicResource = context.resources.alembic
        policy: SchemaPolicyResource = context.resources.policy
        states, head = probe_environments(
            context.instance, alembic, policy, [env], connect_timeout_s=connect_timeout_s
        )
        selected = context.selected_asset_keys
        checks = context.selected_asset_check_keys
        for state in states:
            context.log.info(state.reason)
            for event in live_events(state, head=head):
                if event.asset_key in selected:
                    check = dg.AssetCheckKey(event.asset_key, event.check_name)
                    yield observe_result(event, with_check=check in checks)

    with warnings.catch_warnings():
        # multi_observable_source_asset is marked beta; it is the API for this case
        warnings.simplefilter("ignore", dg.BetaWarning)
        decorator = dg.multi_observable_source_asset(
            name=f"{env.name}__observe_live",
            specs=specs,
            check_specs=_live_checks(env),
            can_subset=True,
            required_resource_keys={"alembic", "policy"},
            description=(
                f"Probe {env.name} now, as one tick of schema_drift_sensor does, and record "
                "both live observations and their checks."
            ),
        )
        return decorator(observe_live)


def build_live_assets(settings: Settings) -> list[dg.AssetsDefinition]:
    """Per environment one observable source asset holding its two live assets and checks.

    The drift sensor records their observations and check evaluations on every tick;
    their own observation (the UI's "Observe") probes the environment now.
    """
    return [_live_asset(env, settings) for env in settings.environments.values()]
