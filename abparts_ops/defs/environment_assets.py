"""Per-environment assets: the guarded stamp and the checks that verify an environment.

For every configured environment other than the source, :func:`build_environment_defs`
makes:

* ``<env>/alembic_stamp``: a materialization means *the environment was stamped* (or was
  already at the baseline). A dry run (the default) materializes nothing: it records an
  observation saying what would change. Before anything, the blocking proofs on
  ``baseline_revision`` must have passed on its latest materialization; then
  :func:`~abparts_ops.core.migrations.stamp.guarded_stamp` does the work.
* the checks ``revision_is_head`` and ``schema_matches_reference`` on that asset. They
  read the live database, so they work whether or not the environment was ever stamped.
* the job ``verify_environments`` (every environment's checks, no stamp) and one job
  ``stamp_<env>`` per environment carrying the run tag ``abparts_ops/stamp=true``.

Stamps are never targeted by a schedule or a sensor. They run one at a time: each stamp
asset is in the concurrency pool :data:`STAMP_POOL` and carries the op tag
:data:`STAMP_TAG`; the ``stamp_<env>`` jobs carry the same tag as a *run* tag, for the
run queue's tag concurrency limit; and the core takes a PostgreSQL advisory lock anyway.
"""

# No ``from __future__ import annotations``: Dagster reads the ``config: StampConfig``
# annotation as it is and cannot resolve a string annotation to a config class.
import getpass
from collections.abc import Iterator, Mapping, Set
from dataclasses import dataclass, field
from typing import Any

import dagster as dg
from dagster._core.storage.asset_check_execution_record import (
    AssetCheckExecutionRecordStatus,
)
from pydantic import Field

from abparts_ops.core.db import connect, make_engine, scrub
from abparts_ops.core.errors import AbpartsOpsError
from abparts_ops.core.migrations.migrate import current_revisions
from abparts_ops.core.migrations.stamp import SchemaDrift, StampResult, guarded_stamp
from abparts_ops.core.schema.diff import diff_snapshots
from abparts_ops.core.schema.introspect import take_snapshot
from abparts_ops.core.schema.model import Snapshot
from abparts_ops.core.settings import EnvironmentSettings, Settings
from abparts_ops.defs.metadata import diff_metadata, md
from abparts_ops.defs.resources import AlembicResource, DatabaseResource, env_resource_key

GROUP = "environments"
STAMP_ASSET = "alembic_stamp"
STAMP_TAG_KEY = "abparts_ops/stamp"
STAMP_TAG = {STAMP_TAG_KEY: "true"}
"""Op tag of every stamp, and run tag of the ``stamp_<env>`` jobs (limit 1 in dagster.yaml)."""
STAMP_POOL = "abparts_ops_stamp"
"""Concurrency pool of every stamp asset: limit it to 1 to serialise stamps across runs."""
VERIFY_JOB = "verify_environments"
CHECK_NAMES = ("revision_is_head", "schema_matches_reference")
BASELINE_KEY = dg.AssetKey("baseline_revision")
SOURCE_SCHEMA_KEY = dg.AssetKey("source_schema")
REQUIRED_PROOFS = ("round_trip", "dump_parity", "downgrade_clean", "single_head")
"""Blocking checks on ``baseline_revision`` that must have passed before any stamp."""
OPTIONAL_PROOFS = ("models_match",)
"""Required too, when defined (only when the application's models are configured)."""


@dataclass
class EnvironmentDefs:
    """Everything the environment factory makes, for ``Definitions``."""

    assets: list[dg.AssetsDefinition] = field(default_factory=list)
    checks: list[dg.AssetChecksDefinition] = field(default_factory=list)
    jobs: list[Any] = field(default_factory=list)
    sensors: list[dg.SensorDefinition] = field(default_factory=list)
    schedules: list[dg.ScheduleDefinition] = field(default_factory=list)


class StampConfig(dg.Config):
    """Run config of ``<env>/alembic_stamp``. The default is a dry run."""

    dry_run: bool = Field(
        default=True,
        description="Only report what would change; write nothing (set false to stamp).",
    )
    confirm: str = Field(
        default="",
        description="A protected environment (prod) is stamped only when this is its name.",
    )
    lock_timeout_s: float = Field(
        default=10.0,
        description="How long to wait for another stamp of this environment to finish.",
    )


def stamp_key(environment: str) -> dg.AssetKey:
    """Asset key of an environment's stamp: ``<env>/alembic_stamp``."""
    return dg.AssetKey([environment, STAMP_ASSET])


def check_keys(environment: str) -> list[dg.AssetCheckKey]:
    """The verification checks of one environment."""
    return [dg.AssetCheckKey(stamp_key(environment), name) for name in CHECK_NAMES]


def _describe(revisions: tuple[str, ...] | None) -> str:
    if revisions is None:
        return "(no version table)"
    return ", ".join(revisions) if revisions else "(empty version table)"


def _first_line(text: str) -> str:
    lines = text.strip().splitlines()
    return lines[0] if lines else text


# -- the proofs gate ----------------------------------------------------------------------


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
        dg.AssetRecordsFilter(asset_key=BASELINE_KEY), limit=1
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
        name for name in OPTIONAL_PROOFS if dg.AssetCheckKey(BASELINE_KEY, name) in defined_checks
    ]
    keys = [dg.AssetCheckKey(BASELINE_KEY, name) for name in names]
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


def _defined_checks(context: Any) -> Set[dg.AssetCheckKey]:
    try:
        return context.repository_def.asset_graph.asset_check_keys
    except Exception:  # noqa: BLE001 - no repository (direct invocation): require all
        return {dg.AssetCheckKey(BASELINE_KEY, name) for name in OPTIONAL_PROOFS}


# -- metadata -----------------------------------------------------------------------------


def launched_by(tags: Mapping[str, str]) -> str:
    """Who launched the run: the ``dagster/user`` or ``user`` tag, else the OS user."""
    for key in ("dagster/user", "user"):
        if tags.get(key):
            return str(tags[key])
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def stamp_metadata(result: StampResult, *, run_id: str, user: str, dry_run: bool) -> dict[str, Any]:
    """The audit record of one stamp (or dry run): what, before/after, who, which run."""
    return {
        "environment": result.environment,
        "action": result.action,
        "dry_run": dry_run,
        "revision_before": _describe(result.before),
        "revision_after": _describe(result.after) if result.after is not None else "",
        "target": result.target,
        "purged": ", ".join(result.purged),
        "purged_count": len(result.purged),
        "creates_version_table": result.creates_version_table,
        "reference_fingerprint": result.reference_fingerprint,
        "actual_fingerprint": result.actual_fingerprint,
        "run_id": run_id,
        "launched_by": user,
        "lock_wait_ms": round(float(result.lock_wait_ms), 1),
        "message": result.message,
    }


def _failure(
    environment: str, message: str, url: str | None, extra: Mapping[str, Any] | None = None
) -> dg.Failure:
    """A ``dg.Failure`` with a one-line description; the whole message in metadata."""
    text = scrub(message, url)
    metadata: dict[str, Any] = {"environment": environment, "action": "refused"}
    if extra:
        metadata.update(extra)
    if text.strip() != _first_line(text) and "diff" not in metadata:
        metadata["details"] = md(text)
    return dg.Failure(description=_first_line(text), metadata=metadata, allow_retries=False)


# -- the factory --------------------------------------------------------------------------


def _stamp_asset(env: EnvironmentSettings) -> dg.AssetsDefinition:
    key = stamp_key(env.name)
    resource_key = env_resource_key(env.name)

    @dg.asset(
        key=key,
        group_name=GROUP,
        kinds={"postgres", "alembic"},
        deps=[BASELINE_KEY],
        ins={"source_schema": dg.AssetIn(key=SOURCE_SCHEMA_KEY)},
        required_resource_keys={resource_key, "alembic", "policy"},
        output_required=False,
        op_tags=STAMP_TAG,
        pool=STAMP_POOL,
        description=(
            f"Guarded `alembic stamp` of {env.name} with the baseline"
            + (" (protected: needs `confirm`)" if env.protected else "")
            + ". A materialization means the environment was stamped; a dry run (the "
            "default) only records an observation of what would change."
        ),
        metadata={"environment": env.name, "protected": env.protected},
    )
    def alembic_stamp(
        context: dg.AssetExecutionContext, config: StampConfig, source_schema: Snapshot
    ) -> Iterator[Any]:
        """Stamp this environment with the baseline, guarded and audited.

        Refuses (a failed run, nothing written) unless the baseline's blocking proofs
        passed on its latest materialization, the schema equals the reference, and a
        protected environment got ``confirm: <name>``. The materialization's metadata is
        the audit record: before/after revisions, fingerprints, run id, who launched it.
        """
        db: DatabaseResource = getattr(context.resources, resource_key)
        alembic: AlembicResource = context.resources.alembic
        policy = context.resources.policy
        problem = unproven_baseline(
            context.instance, _defined_checks(context), source_schema.fingerprint
        )
        if problem:
            raise _failure(env.name, f"{env.name}: refusing to stamp: {problem}", None)
        url: str | None = None
        try:
            url = db.get_url()
            project = alembic.project()
            result = guarded_stamp(
                url,
                environment=env.name,
                script=project.script(),
                reference=source_schema,
                exclude=policy.exclude,
                schema=env.schema,
                version_table=project.version_table,
                version_table_schema=project.version_table_schema,
                protected=env.protected,
                confirm=config.confirm or None,
                dry_run=config.dry_run,
                lock_timeout_s=config.lock_timeout_s,
            )
        except SchemaDrift as exc:
            raise _failure(env.name, str(exc), url, diff_metadata(exc.diff)) from None
        except AbpartsOpsError as exc:
            raise _failure(env.name, str(exc), url) from None
        metadata = stamp_metadata(
            result,
            run_id=context.run_id,
            user=launched_by(context.run.tags),
            dry_run=config.dry_run,
        )
        context.log.info(result.message)
        if result.action == "dry_run":
            yield dg.AssetObservation(asset_key=key, description=result.message, metadata=metadata)
            return
        yield dg.MaterializeResult(metadata=metadata, data_version=dg.DataVersion(result.target))

    return alembic_stamp


def _revision_check(env: EnvironmentSettings) -> dg.AssetChecksDefinition:
    resource_key = env_resource_key(env.name)

    @dg.asset_check(
        asset=stamp_key(env.name),
        name="revision_is_head",
        required_resource_keys={resource_key, "alembic"},
        description=(
            f"{env.name}'s version table holds exactly the single head of the script "
            "directory (read live; no stamp needed)."
        ),
    )
    def revision_is_head(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
        """Pass iff the live version rows equal ``(head,)`` of the Alembic history."""
        db: DatabaseResource = getattr(context.resources, resource_key)
        alembic: AlembicResource = context.resources.alembic
        url: str | None = None
        try:
            project = alembic.project()
            heads = tuple(sorted(project.script().get_heads()))
            url = db.get_url()
            engine = make_engine(url, label=env.name)
            try:
                with connect(engine, label=env.name) as conn:
                    current = current_revisions(
                        conn,
                        version_table=project.version_table,
                        schema=project.version_table_schema or env.schema,
                    )
            finally:
                engine.dispose()
        except AbpartsOpsError as exc:
            return _error_result(env.name, exc, url)
        head = ", ".join(heads) or "(none)"
        passed = len(heads) == 1 and current == heads
        if passed:
            description = f"{env.name} is at the head {head}."
        elif len(heads) != 1:
            description = f"the history has {len(heads)} heads ({head}); expected one."
        else:
            description = f"{env.name} is at {_describe(current)}; the head is {head}."
        return dg.AssetCheckResult(
            passed=passed,
            severity=dg.AssetCheckSeverity.ERROR,
            description=description,
            metadata={"environment": env.name, "current": _describe(current), "head": head},
        )

    return revision_is_head


def _schema_check(env: EnvironmentSettings) -> dg.AssetChecksDefinition:
    resource_key = env_resource_key(env.name)

    @dg.asset_check(
        asset=stamp_key(env.name),
        name="schema_matches_reference",
        additional_ins={"source_schema": dg.AssetIn(key=SOURCE_SCHEMA_KEY)},
        required_resource_keys={resource_key, "alembic", "policy"},
        description=(
            f"{env.name}'s live schema (after exclusions) equals the reference snapshot "
            "(source_schema); the Markdown diff is attached when it does not."
        ),
    )
    def schema_matches_reference(
        context: dg.AssetCheckExecutionContext, source_schema: Snapshot
    ) -> dg.AssetCheckResult:
        """Snapshot the environment and diff it with the reference: pass iff empty."""
        db: DatabaseResource = getattr(context.resources, resource_key)
        alembic: AlembicResource = context.resources.alembic
        policy = context.resources.policy
        url: str | None = None
        try:
            url = db.get_url()
            actual = take_snapshot(
                url,
                schema=env.schema,
                exclude=policy.exclude,
                version_table=alembic.version_table,
                source=env.name,
            )
        except AbpartsOpsError as exc:
            return _error_result(env.name, exc, url)
        diff = diff_snapshots(
            source_schema, actual, reference_label="reference", actual_label=env.name
        )
        total = diff.counts()["total"]
        description = (
            f"{env.name} matches the reference."
            if diff.is_empty
            else f"{env.name} differs from the reference in {total} object(s)."
        )
        return dg.AssetCheckResult(
            passed=diff.is_empty,
            severity=dg.AssetCheckSeverity.ERROR,
            description=description,
            metadata={
                "environment": env.name,
                "actual_probe_fingerprint": actual.probe_fingerprint or "",
                **diff_metadata(diff),
            },
        )

    return schema_matches_reference


def _error_result(environment: str, exc: Exception, url: str | None) -> dg.AssetCheckResult:
    """A failed check for an environment that cannot be read (one safe line)."""
    text = scrub(str(exc), url)
    return dg.AssetCheckResult(
        passed=False,
        severity=dg.AssetCheckSeverity.ERROR,
        description=_first_line(text)[:1000],
        metadata={"environment": environment, "error": text},
    )


def build_environment_defs(settings: Settings) -> EnvironmentDefs:
    """The stamp asset, its two checks and the jobs, for every non-source environment."""
    defs = EnvironmentDefs()
    for env in settings.targets:
        asset = _stamp_asset(env)
        checks = [_revision_check(env), _schema_check(env)]
        defs.assets.append(asset)
        defs.checks.extend(checks)
        defs.jobs.append(
            dg.define_asset_job(
                f"stamp_{env.name}",
                selection=dg.AssetSelection.assets(asset) | dg.AssetSelection.checks(*checks),
                tags=STAMP_TAG,
                executor_def=dg.in_process_executor,
                description=(
                    f"Stamp {env.name} (dry run unless run config says `dry_run: false`"
                    + (f" and `confirm: {env.name}`" if env.protected else "")
                    + "), then run its checks."
                ),
            )
        )
    if defs.checks:
        defs.jobs.append(
            dg.define_asset_job(
                VERIFY_JOB,
                selection=dg.AssetSelection.checks(*defs.checks),
                executor_def=dg.in_process_executor,
                description=(
                    "Run revision_is_head and schema_matches_reference for every "
                    "environment. Reads only: never stamps or materializes anything."
                ),
            )
        )
    return defs
