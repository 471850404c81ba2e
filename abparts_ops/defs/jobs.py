"""Jobs a person launches from the UI or with ``dagster job execute``."""

from __future__ import annotations

import dagster as dg

reset_baseline_job = dg.define_asset_job(
    "reset_baseline",
    selection=dg.AssetSelection.assets(
        "source_schema", "reference_dump", "migration_history", "baseline_revision"
    ),
    executor_def=dg.in_process_executor,
    description=(
        "Snapshot and dump the source, read the old history, render the new baseline and "
        "prove it on a temporary copy of the project; only when every blocking proof passed "
        "are the old files archived and the baseline and reference dump written. Never "
        "stamps anything. "
        "Runs in one process: its steps form a chain, and a process per step would only "
        "add start-up time."
    ),
)
