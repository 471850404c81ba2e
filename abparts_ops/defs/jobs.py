"""Jobs a person launches from the UI or with ``dagster job execute`` (and the refresh)."""

from __future__ import annotations

import dagster as dg

from abparts_ops.defs.names import (
    BASELINE_REVISION,
    EXPECTED_SCHEMAS,
    MIGRATION_HISTORY,
    REFERENCE_DUMP,
    REFRESH_HISTORY_JOB,
    RESET_BASELINE_JOB,
    SOURCE_SCHEMA,
    TRIGGER_TAG,
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
