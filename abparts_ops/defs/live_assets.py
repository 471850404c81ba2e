"""The live state of every environment, as assets the drift sensor observes.

Per environment two external assets, group ``live``: ``[env, "live_revision"]`` (what
its ``alembic_version`` says) and ``[env, "live_schema"]`` (the fingerprint of its
schema). Nothing materializes them: ``schema_drift_sensor`` records an
``AssetObservation`` of each on every tick, so the UI shows their current state and
plots their numeric metadata (in-sync flags as 0/1, probe time, differing objects) over
time, and the moment drift started is the first observation with a 0.
"""

from __future__ import annotations

import dagster as dg

from abparts_ops.core.settings import Settings
from abparts_ops.defs.names import (
    ENVIRONMENT_TAG,
    LIVE_GROUP,
    LIVE_REVISION,
    LIVE_SCHEMA,
    live_revision_key,
    live_schema_key,
)

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
