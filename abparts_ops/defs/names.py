"""Every asset key, check name, job name, tag and pool of the pipeline, declared once.

The assets, checks, jobs, sensors and schedules import their names from here, so a name
is spelled in one place (tests and the README use the same constants).
"""

from __future__ import annotations

import dagster as dg

from abparts_ops.core.reset.proofs import PROOFS

# -- assets -------------------------------------------------------------------------------
SOURCE_SCHEMA = dg.AssetKey("source_schema")
REFERENCE_DUMP = dg.AssetKey("reference_dump")
MIGRATION_HISTORY = dg.AssetKey("migration_history")
BASELINE_REVISION = dg.AssetKey("baseline_revision")
EXPECTED_SCHEMAS = dg.AssetKey("expected_schemas")
STAMP_ASSET = "alembic_stamp"
UPGRADE_ASSET = "alembic_upgrade"
LIVE_REVISION = "live_revision"
LIVE_SCHEMA = "live_schema"

ENVIRONMENTS_GROUP = "environments"
LIVE_GROUP = "live"


def stamp_key(environment: str) -> dg.AssetKey:
    """Asset key of an environment's stamp: ``<env>/alembic_stamp``."""
    return dg.AssetKey([environment, STAMP_ASSET])


def upgrade_key(environment: str) -> dg.AssetKey:
    """Asset key of an environment's guarded upgrade: ``<env>/alembic_upgrade``."""
    return dg.AssetKey([environment, UPGRADE_ASSET])


def live_revision_key(environment: str) -> dg.AssetKey:
    """Asset key of an environment's live revision: ``[env, "live_revision"]``."""
    return dg.AssetKey([environment, LIVE_REVISION])


def live_schema_key(environment: str) -> dg.AssetKey:
    """Asset key of an environment's live schema: ``[env, "live_schema"]``."""
    return dg.AssetKey([environment, LIVE_SCHEMA])


# -- checks -------------------------------------------------------------------------------
REVISION_IS_HEAD = "revision_is_head"
SCHEMA_MATCHES_REFERENCE = "schema_matches_reference"
ENVIRONMENT_CHECKS = (REVISION_IS_HEAD, SCHEMA_MATCHES_REFERENCE)
"""The verification checks of every ``<env>/alembic_stamp``."""

ROUND_TRIP = "round_trip"
DUMP_PARITY = "dump_parity"
DOWNGRADE_CLEAN = "downgrade_clean"
SINGLE_HEAD = "single_head"
MODELS_MATCH = "models_match"
REQUIRED_PROOFS = tuple(p.name for p in PROOFS if p.blocking and not p.needs_models)
"""Blocking checks on ``baseline_revision`` that must have passed before any stamp
(read from the proofs registry: round_trip, dump_parity, downgrade_clean, single_head)."""
OPTIONAL_PROOFS = tuple(p.name for p in PROOFS if p.blocking and p.needs_models)
"""Required too, when defined (only when the application's models are configured:
models_match and smoke_test)."""
HEAD_MATCHES_SOURCE = "head_matches_source_schema"
"""Check on ``expected_schemas``: right after a reset, the head's schema is the source's."""


LIVE_REVISION_CHECK = "revision_in_sync"
"""Check on ``[env, live_revision]``, evaluated by the drift sensor on each tick."""
LIVE_SCHEMA_CHECK = "schema_in_sync"
"""Check on ``[env, live_schema]``, evaluated by the drift sensor on each tick."""


def check_keys(environment: str) -> list[dg.AssetCheckKey]:
    """The verification checks of one environment."""
    return [dg.AssetCheckKey(stamp_key(environment), name) for name in ENVIRONMENT_CHECKS]


# -- jobs ---------------------------------------------------------------------------------
RESET_BASELINE_JOB = "reset_baseline"
REFRESH_HISTORY_JOB = "refresh_history"
VERIFY_JOB = "verify_environments"


def stamp_job_name(environment: str) -> str:
    """The job that stamps one environment: ``stamp_<env>``."""
    return f"stamp_{environment}"


def upgrade_job_name(environment: str) -> str:
    """The job that upgrades one environment: ``upgrade_<env>``."""
    return f"upgrade_{environment}"


# -- sensors and schedules ----------------------------------------------------------------
SCHEMA_DRIFT_SENSOR = "schema_drift_sensor"
REVISION_FILES_SENSOR = "revision_files_sensor"
NIGHTLY_SCHEDULE = "nightly_verification"

# -- tags and pools -----------------------------------------------------------------------
STAMP_TAG_KEY = "abparts_ops/stamp"
STAMP_TAG = {STAMP_TAG_KEY: "true"}
"""Op tag of every stamp, and run tag of the ``stamp_<env>`` jobs (limit 1 in dagster.yaml)."""
STAMP_POOL = "abparts_ops_stamp"
"""Concurrency pool of every stamp asset: limit it to 1 to serialise stamps across runs."""
TRIGGER_TAG = "abparts_ops/trigger"
DRIFT_TAG = "abparts_ops/drift"
ENVIRONMENT_TAG = "abparts_ops/environment"
VERSIONS_TAG = "abparts_ops/versions"
FOUND_TAG = "abparts_ops/found"
"""Run tag of a verification the drift sensor requests: what it found, in one short line."""
VERDICT_TAG = "abparts_ops/verdict"
"""Run tag the environment checks set: ``all in sync``, or ``staging: schema_drift; ...``."""
