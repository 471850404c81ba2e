"""The live state of every environment, as external assets the drift sensor reports.

Per environment two external assets, group ``live``: ``[env, "live_revision"]`` (what its
``alembic_version`` says) and ``[env, "live_schema"]`` (the fingerprint of its schema),
each with one check (``revision_in_sync``, ``schema_in_sync``). No job materializes them:
``schema_drift_sensor`` reports, on every tick, an observation of each (its numeric
metadata, in-sync flags as 0/1, probe time, differing objects, is plotted over time) and
evaluates both checks; when an environment's state, revision or fingerprint changes it
also reports a materialization (a new version of the live database), so the asset graph
and the asset list draw each environment green, or red where its check failed with an
error (schema drift, an unknown revision, an unreachable database), and never as "Never
materialized" pending work. The checks' descriptions say the state in one line
("staging: schema_drift (2 objects)"); a warning (behind, awaiting its stamp, a
catch-up, a history not judged yet) marks work that waits. Executing the checks in the
UI probes the environment now, the same way.
"""

from __future__ import annotations

from collections.abc import Iterator

import dagster as dg

from abparts_ops.core.settings import EnvironmentSettings, Settings
from abparts_ops.defs.drift_tick import probe_environments
from abparts_ops.defs.live_state import check_result, live_events
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
                    "`schema_drift_sensor` on each tick (reported when it changes; its check "
                    "`revision_in_sync` says the state in one line). Metadata: `revision`, "
                    "`head`, `state` (in_sync, behind, awaiting_stamp, unknown_revision, "
                    "schema_drift, unreachable, history_changed), `summary` (the state in one "
                    "line), `reason`, `pending` (the "
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
                    "are: what the history builds up to that revision); reported when it "
                    "changes, its check `schema_in_sync` says the state in one line. Metadata: "
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


def _live_checks_for(env: EnvironmentSettings, settings: Settings) -> dg.AssetChecksDefinition:
    connect_timeout_s = settings.probe.connect_timeout_s

    def live_checks(context) -> Iterator[dg.AssetCheckResult]:  # type: ignore[no-untyped-def]
        """Probe this environment now and evaluate its live checks (no memory of a tick).

        ``context`` is Dagster's ``AssetCheckExecutionContext``; it is not annotated
        because Dagster refuses the string annotation this module's ``from __future__
        import annotations`` would give it.
        """
        alembic: AlembicResource = context.resources.alembic
        policy: SchemaPolicyResource = context.resources.policy
        states, head = probe_environments(
            context.instance, alembic, policy, [env], connect_timeout_s=connect_timeout_s
        )
        selected = context.selected_asset_check_keys
        for state in states:
            context.log.info(state.reason)
            for event in live_events(state, head=head):
                if dg.AssetCheckKey(event.asset_key, event.check_name) in selected:
                    yield check_result(event)

    return dg.multi_asset_check(
        specs=_live_checks(env),
        name=f"{env.name}__live_checks",
        can_subset=True,
        required_resource_keys={"alembic", "policy"},
        description=(
            f"Probe {env.name} now, as one tick of schema_drift_sensor does, and evaluate "
            "its live checks."
        ),
    )(live_checks)


def build_live_checks(settings: Settings) -> list[dg.AssetChecksDefinition]:
    """Per environment its two live checks, ``revision_in_sync`` and ``schema_in_sync``.

    The drift sensor evaluates them on every tick (runless evaluations); executing them
    in the UI probes the environment now, in a run, the same way.
    """
    return [_live_checks_for(env, settings) for env in settings.environments.values()]
