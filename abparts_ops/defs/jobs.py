"""Every job, in one place: the ones a person launches (reset, stamps, upgrades, verify)
and the ones sensors and the schedule request (refresh, verify)."""

from __future__ import annotations

import dagster as dg

from abparts_ops.core.settings import Settings
from abparts_ops.defs.names import (
    BASELINE_REVISION,
    EXPECTED_SCHEMAS,
    MIGRATION_HISTORY,
    REFERENCE_DUMP,
    REFRESH_HISTORY_JOB,
    RESET_BASELINE_JOB,
    SOURCE_SCHEMA,
    STAMP_TAG,
    TRIGGER_TAG,
    VERIFY_JOB,
    check_keys,
    stamp_job_name,
    stamp_key,
    upgrade_job_name,
    upgrade_key,
)

reset_baseline_job = dg.define_asset_job(
    RESET_BASELINE_JOB,
    selection=dg.AssetSelection.assets(
        SOURCE_SCHEMA, REFERENCE_DUMP, MIGRATION_HISTORY, BASELINE_REVISION, EXPECTED_SCHEMAS
    ),
    executor_def=dg.in_process_executor,
    description=(
        "Snapshot and dump the source, read the old history, render the new baseline and "
        "prove it on a temporary copy of the project; only when every blocking proof passed "
        "are the old files archived and the baseline and reference dump written; then build "
        "the expected schemas of the new history (the reference of every environment from "
        "now on). Never stamps anything: stamp_<env> follows, for every environment, the "
        "source included. Runs in one process: its steps form a chain, and a process per "
        "step would only add start-up time."
    ),
)

refresh_history_job = dg.define_asset_job(
    REFRESH_HISTORY_JOB,
    selection=dg.AssetSelection.assets(MIGRATION_HISTORY, EXPECTED_SCHEMAS),
    executor_def=dg.in_process_executor,
    description=(
        "Re-read the Alembic history (heads, chain, files' hashes), run its checks and "
        "rebuild the expected schemas (one scratch database, a snapshot per revision; "
        "reused when the history is unchanged). Requested by revision_files_sensor when "
        "the versions folder changes."
    ),
    tags={TRIGGER_TAG: "revision_files"},
)


def _unless_confirmed(environment: str, protected: bool) -> str:
    return "says `dry_run: false`" + (f" and `confirm: {environment}`" if protected else "")


def build_stamp_jobs(settings: Settings) -> list[dg.UnresolvedAssetJobDefinition]:
    """``stamp_<env>`` for every environment (the source too), and ``verify_environments``.

    A stamp is a dry run unless its run config says otherwise (and names a protected
    environment in ``confirm``); it runs in-process, tagged so that the instance's queue
    runs stamps and upgrades one at a time. ``verify_environments`` holds only checks.
    """
    jobs: list[dg.UnresolvedAssetJobDefinition] = []
    for env in settings.environments.values():
        when = _unless_confirmed(env.name, env.protected)
        jobs.append(
            dg.define_asset_job(
                stamp_job_name(env.name),
                selection=dg.AssetSelection.assets(stamp_key(env.name))
                | dg.AssetSelection.checks(*check_keys(env.name)),
                tags=STAMP_TAG,
                executor_def=dg.in_process_executor,
                description=(
                    f"Stamp {env.name} with the proven baseline (dry run unless run config "
                    f"{when}), then run its checks."
                ),
            )
        )
    jobs.append(
        dg.define_asset_job(
            VERIFY_JOB,
            selection=dg.AssetSelection.checks(
                *(key for env in settings.environments for key in check_keys(env))
            ),
            executor_def=dg.in_process_executor,
            description=(
                "Run revision_is_head and schema_matches_reference for every environment, "
                "the source included. Reads only: never stamps or materializes anything."
            ),
        )
    )
    return jobs


def build_upgrade_jobs(settings: Settings) -> list[dg.UnresolvedAssetJobDefinition]:
    """``upgrade_<env>`` for every environment: the guarded upgrade, a dry run by default.

    Tagged like the stamps (one at a time on the instance's queue); never launched by a
    sensor or a schedule.
    """
    jobs: list[dg.UnresolvedAssetJobDefinition] = []
    for env in settings.environments.values():
        when = _unless_confirmed(env.name, env.protected)
        jobs.append(
            dg.define_asset_job(
                upgrade_job_name(env.name),
                selection=dg.AssetSelection.assets(upgrade_key(env.name)),
                tags=STAMP_TAG,
                executor_def=dg.in_process_executor,
                description=(
                    f"Guarded upgrade of {env.name} to the head (dry run unless run config "
                    f"{when}). Never launched by a sensor or a schedule."
                ),
            )
        )
    return jobs
