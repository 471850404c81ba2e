"""The proofs gate: whether the latest baseline may be stamped, read from the instance.

A stamp (and the guarded upgrade, for the state of an environment awaiting its stamp)
needs the revision that ``baseline_revision`` wrote and proved: its latest
materialization, not a dry run nor a refused reset, with every blocking proof of the
registry passed on that very materialization.
"""

from collections.abc import Set
from typing import Any

import dagster as dg
from dagster._core.storage.asset_check_execution_record import (
    AssetCheckExecutionRecordStatus,
)

from abparts_ops.defs.names import BASELINE_REVISION, OPTIONAL_PROOFS, REQUIRED_PROOFS


def _targets(record: Any, materialization: Any) -> bool:
    """True when a check execution was made on ``materialization`` of the baseline."""
    if record.run_id and record.run_id == materialization.run_id:  # runless events: ""
        return True
    evaluation = record.evaluation
    target = getattr(evaluation, "target_materialization_data", None)
    if target is not None:
        return target.storage_id == materialization.storage_id
    # No pointer (e.g. a check reported outside a run): compare times. The record's
    # create_timestamp has whole seconds in SQLite storage; the event's is exact.
    when = record.event.timestamp if record.event is not None else record.create_timestamp
    return when >= materialization.timestamp


def unproven_baseline(
    instance: dg.DagsterInstance,
    defined_checks: Set[dg.AssetCheckKey],
    reference_fingerprint: str | None = None,
) -> str | None:
    """Why the baseline may not be stamped yet (None when every proof passed on it).

    Reads the instance only: the latest ``baseline_revision`` materialization (not a dry
    run, written from the schema whose fingerprint is ``reference_fingerprint`` when
    given) and the latest evaluation of each blocking proof, which must have passed on
    that very materialization. ``models_match`` is required when it is among
    ``defined_checks``.
    """
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=BASELINE_REVISION), limit=1
    ).records
    if not records:
        return (
            "baseline_revision was never materialized; run the reset_baseline job (and "
            "let its proofs pass) before stamping."
        )
    latest = records[0]
    materialization = latest.asset_materialization
    action = materialization.metadata.get("action") if materialization else None
    if getattr(action, "value", action) == "dry_run":
        return (
            "the latest baseline_revision was a dry run (no baseline file was written); "
            "materialize it with dry_run: false before stamping."
        )
    built_from = materialization.metadata.get("source_fingerprint") if materialization else None
    built_from = getattr(built_from, "value", built_from)
    problems: list[str] = []
    if reference_fingerprint and built_from and built_from != reference_fingerprint:
        problems.append(
            f"source_schema changed since the baseline was written (baseline from "
            f"{str(built_from)[:12]}, reference now {reference_fingerprint[:12]})"
        )
    names = list(REQUIRED_PROOFS) + [
        name
        for name in OPTIONAL_PROOFS
        if dg.AssetCheckKey(BASELINE_REVISION, name) in defined_checks
    ]
    keys = [dg.AssetCheckKey(BASELINE_REVISION, name) for name in names]
    executions = instance.event_log_storage.get_latest_asset_check_execution_by_key(keys)
    for key in keys:
        record = executions.get(key)
        evaluation = record.evaluation if record is not None else None
        if record is None:
            problems.append(f"{key.name} never ran")
        elif record.status == AssetCheckExecutionRecordStatus.PLANNED or evaluation is None:
            problems.append(f"{key.name} did not complete")
        elif record.status == AssetCheckExecutionRecordStatus.FAILED or not evaluation.passed:
            problems.append(f"{key.name} failed")
        elif not _targets(record, latest):
            problems.append(f"{key.name} has not run on the latest baseline_revision")
    if not problems:
        return None
    return (
        "the baseline is not proven: " + "; ".join(problems) + " (rerun the reset_baseline job "
        "and fix what its proofs report; nothing was written)."
    )


def proven_baseline(instance: dg.DagsterInstance) -> str | None:
    """The revision the latest ``baseline_revision`` materialization wrote or found written.

    None when there is none, or when the latest one wrote nothing (a dry run, or a reset
    its proofs refused): that revision is in no versions folder.
    """
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=BASELINE_REVISION), limit=1
    ).records
    materialization = records[0].asset_materialization if records else None
    if materialization is None:
        return None
    action = materialization.metadata.get("action")
    if getattr(action, "value", action) in ("dry_run", "refused"):
        return None
    value = materialization.metadata.get("revision")
    text = getattr(value, "value", value)
    return str(text) if text else None


def defined_checks(context: Any) -> Set[dg.AssetCheckKey]:
    """The asset checks the running repository defines (every optional proof without one).

    Decides whether ``models_match`` and ``smoke_test`` are required: they exist only when
    the application's models are configured.
    """
    try:
        return context.repository_def.asset_graph.asset_check_keys
    except Exception:  # noqa: BLE001 - no repository (direct invocation): require all
        return {dg.AssetCheckKey(BASELINE_REVISION, name) for name in OPTIONAL_PROOFS}
