"""Per-environment guarded upgrades: ``<env>/alembic_upgrade`` and the ``upgrade_<env>`` job.

For every configured environment, :func:`build_upgrade_defs` makes one asset whose
materialization means *the pending revisions were applied and verified* (see
:func:`~abparts_ops.core.rollout.upgrade.guarded_upgrade`) and one job that runs only
it. A dry run (the default) materializes nothing: it records an observation with the
pending revisions, the rehearsal's verdict and the lint findings. A refusal fails the run
with one line and the evidence (diff, failing revision, findings) as metadata.

No sensor or schedule targets these jobs. They share the stamps' concurrency pool
(:data:`~abparts_ops.defs.names.STAMP_POOL`) and tag, so upgrades and stamps
run one at a time, and the core takes the same PostgreSQL advisory lock anyway. The
expected schemas come from :func:`~abparts_ops.core.history.expected_cache.
load_or_build_expected`, the same cache the ``expected_schemas`` asset fills, so an
upgrade always judges against the history on disk now.
"""

# No ``from __future__ import annotations``: Dagster reads ``config: UpgradeConfig`` as is.
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import dagster as dg
from pydantic import Field

from abparts_ops.core.db import scrub
from abparts_ops.core.errors import AbpartsOpsError
from abparts_ops.core.history.expected_cache import default_cache_dir, load_or_build_expected
from abparts_ops.core.rollout.catch_up import archive_positions
from abparts_ops.core.rollout.lint import LintExclusion, LintReport
from abparts_ops.core.rollout.rehearsal_copy import RehearsalCopy
from abparts_ops.core.rollout.upgrade import (
    LintBlocked,
    RehearsalFailed,
    UpgradeDrift,
    UpgradeHalfApplied,
    UpgradePolicy,
    UpgradeResult,
    UpgradeVerificationFailed,
    guarded_upgrade,
)
from abparts_ops.core.settings import EnvironmentSettings, Settings
from abparts_ops.core.watch.states import version_rows_text
from abparts_ops.defs.metadata import diff_metadata, launched_by, markdown_table, md
from abparts_ops.defs.names import (
    EXPECTED_SCHEMAS,
    STAMP_POOL,
    STAMP_TAG,
    UPGRADE_ASSET,
    upgrade_key,
)
from abparts_ops.defs.proof_gate import proven_baseline
from abparts_ops.defs.resources import (
    AlembicResource,
    DatabaseResource,
    SchemaPolicyResource,
    env_resource_key,
)
from abparts_ops.defs.write_guard import guard_metadata, write_guard

GROUP = "upgrades"


@dataclass
class UpgradeDefs:
    """Everything the upgrade factory makes, for ``Definitions``."""

    assets: list[dg.AssetsDefinition] = field(default_factory=list)


class UpgradeConfig(dg.Config):
    """Run config of ``<env>/alembic_upgrade``. The default is a dry run."""

    dry_run: bool = Field(
        default=True,
        description="Rehearse and lint only; write nothing (set false to upgrade).",
    )
    confirm: str = Field(
        default="",
        description="A protected environment (prod) is upgraded only when this is its name.",
    )
    acknowledge: list[str] = Field(
        default_factory=list,
        description="squawk rule names whose error-level findings were reviewed and accepted.",
    )
    acknowledge_identity: str = Field(
        default="",
        description=(
            "A protected environment whose database identity changed since its last write "
            "is upgraded only when this is the new identity key (shown in the refusal)."
        ),
    )


def upgrade_op(environment: str) -> str:
    """Op name of ``<env>/alembic_upgrade`` (for run config)."""
    return f"{environment}__{UPGRADE_ASSET}"


def _exclusions(raw: Any) -> tuple[LintExclusion, ...]:
    items = []
    for item in raw or ():
        if isinstance(item, LintExclusion):
            items.append(item)
        elif isinstance(item, dict):
            items.append(LintExclusion(str(item["rule"]), str(item.get("reason", ""))))
        else:
            items.append(LintExclusion(str(item.rule), str(getattr(item, "reason", ""))))
    return tuple(items)


def upgrade_policy(settings: Settings, env: EnvironmentSettings) -> UpgradePolicy:
    """The upgrade policy of ``env`` from the configuration (core defaults where unset).

    Reads ``settings.upgrade.lock_timeout_s`` / ``statement_timeout_s``,
    ``settings.upgrade.squawk.exclude`` ({rule, reason} entries),
    ``settings.upgrade.rehearsal`` (what the rehearsal copies) and the environment's
    ``block_on_lint_errors`` (unset: true for a protected environment). A configuration
    without these keys gets the core's defaults.
    """
    default = UpgradePolicy()
    upgrade = getattr(settings, "upgrade", None)
    squawk = getattr(upgrade, "squawk", None) or getattr(settings, "squawk", None)
    block = getattr(env, "block_on_lint_errors", None)
    exclude = getattr(squawk, "exclude", None) if squawk is not None else None
    return UpgradePolicy(
        lock_timeout_s=float(getattr(upgrade, "lock_timeout_s", default.lock_timeout_s)),
        statement_timeout_s=float(
            getattr(upgrade, "statement_timeout_s", default.statement_timeout_s)
        ),
        exclude=_exclusions(exclude) if exclude is not None else default.exclude,
        block_on_lint_errors=env.protected if block is None else bool(block),
        rehearsal=_rehearsal_copy(getattr(upgrade, "rehearsal", None), default),
    )


def _rehearsal_copy(raw: Any, default: UpgradePolicy) -> RehearsalCopy:
    """The rehearsal's copy settings (``upgrade.rehearsal``), the core's defaults where unset."""
    if raw is None:
        return default.rehearsal
    return RehearsalCopy(
        max_bytes=int(raw.max_bytes),
        schema_only_tables=tuple(raw.schema_only_tables),
        timeout_s=float(raw.timeout_s),
    )


def _findings_metadata(report: LintReport | None, prefix: str = "") -> dict[str, Any]:
    if report is None:
        return {}
    return {
        f"{prefix}findings": md(report.to_markdown()),
        f"{prefix}findings_count": len(report.findings),
        f"{prefix}error_findings": len(report.errors),
        "excluded_rules": md(
            markdown_table([e.__dict__ for e in report.excluded], ["rule", "reason"])
            if report.excluded
            else "none"
        ),
    }


def upgrade_metadata(
    result: UpgradeResult, *, run_id: str, user: str, dry_run: bool
) -> dict[str, Any]:
    """The audit record of one upgrade (or dry run): what, before/after, timings, who."""
    metadata: dict[str, Any] = {
        "environment": result.environment,
        "action": result.action,
        "dry_run": dry_run,
        "revision_before": version_rows_text(result.before, as_metadata=True),
        "revision_after": (
            version_rows_text(result.after, as_metadata=True) if result.after is not None else ""
        ),
        "target": result.target,
        "pending": md(
            "\n".join(f"{i}. `{rev}`" for i, rev in enumerate(result.pending, 1))
            or "none: already at the head"
        ),
        "pending_count": len(result.pending),
        "before_fingerprint": result.before_fingerprint,
        "after_fingerprint": result.after_fingerprint or "",
        "expected_fingerprint": result.expected_fingerprint,
        "run_id": run_id,
        "launched_by": user,
        "lock_wait_ms": round(float(result.lock_wait_ms), 1),
        "seconds": round(result.seconds, 2),
        "message": result.message,
        **guard_metadata(result.guard),
    }
    if result.rehearsal is not None:
        metadata["rehearsal"] = result.rehearsal.verdict
        metadata["rehearsal_passed"] = result.rehearsal.passed
        metadata["rehearsal_seconds"] = round(result.rehearsal.seconds, 2)
    metadata.update(_findings_metadata(result.lint))
    if result.rehearsal is not None and result.rehearsal.copy is not None:
        metadata["rehearsal_copy"] = result.rehearsal.copy.describe()
    steps = result.alone or (result.rehearsal.alone if result.rehearsal is not None else ())
    metadata["transaction"] = (
        f"one transaction for all but {', '.join(steps)} (step(s) of their own, autocommit)"
        if steps
        else "one transaction for every revision"
    )
    observed = result.observed or (
        result.rehearsal.observed if result.rehearsal is not None else {}
    )
    if observed:
        metadata["rows_and_locks"] = md(observations_table(observed))
    if result.blocking:
        metadata["blocking_rules"] = ", ".join(sorted({f.rule for f in result.blocking}))
    if result.acknowledged:
        metadata["acknowledged"] = ", ".join(result.acknowledged)
    if result.applied:
        rows = [
            {"revision": f"`{a.revision}`", "seconds": f"{a.seconds:.3f}", "file": a.file or ""}
            for a in result.applied
        ]
        metadata["applied"] = md(markdown_table(rows, ["revision", "seconds", "file"]))
        metadata["applied_seconds"] = dg.MetadataValue.json(
            {a.revision: round(a.seconds, 3) for a in result.applied}
        )
        metadata["applied_count"] = len(result.applied)
    return metadata


def observations_table(observed: Any) -> str:
    """Per revision: rows inserted/updated/deleted per table, strong locks and how long."""
    rows = []
    for revision, seen in observed.items():
        for table, (ins, upd, dele) in sorted(seen.rows.items()):
            rows.append({"revision": f"`{revision}`", "table": table,
                         "inserted": ins, "updated": upd, "deleted": dele, "lock": ""})
        for lock in seen.locks:
            rows.append({"revision": f"`{revision}`", "table": lock.relation, "inserted": "",
                         "updated": "", "deleted": "",
                         "lock": f"{lock.mode} {lock.seconds:.3f} s"})
    if not rows:
        return "no rows written, no ACCESS EXCLUSIVE or SHARE lock on an existing table"
    return markdown_table(rows, ["revision", "table", "inserted", "updated", "deleted", "lock"])


def _first_line(text: str) -> str:
    lines = text.strip().splitlines()
    return lines[0] if lines else text


def _failure(environment: str, exc: AbpartsOpsError, url: str | None, extra: dict) -> dg.Failure:
    text = scrub(str(exc), url)
    metadata: dict[str, Any] = {"environment": environment, "action": "refused", **extra}
    if text.strip() != _first_line(text):
        metadata["details"] = md(text)
    return dg.Failure(description=_first_line(text), metadata=metadata, allow_retries=False)


def failure_evidence(exc: AbpartsOpsError) -> dict[str, Any]:
    """The evidence a refused or failed guarded run carries as metadata (diff, failing
    revision, findings, what the read-back found)."""
    if isinstance(exc, UpgradeDrift):
        return diff_metadata(exc.diff)
    if isinstance(exc, RehearsalFailed):
        rehearsal = exc.rehearsal
        extra: dict[str, Any] = {
            "rehearsal": rehearsal.verdict,
            "failed_revision": rehearsal.failed_revision or "",
            "failed_file": rehearsal.file or "",
            "failed_line": rehearsal.line or 0,
            "failed_statement": rehearsal.statement or "",
        }
        if rehearsal.diff is not None and not rehearsal.diff.is_empty:
            extra.update(diff_metadata(rehearsal.diff))
        return extra
    if isinstance(exc, LintBlocked):
        return {
            **_findings_metadata(exc.report),
            "blocking_rules": ", ".join(sorted({f.rule for f in exc.blocking})),
        }
    if isinstance(exc, UpgradeHalfApplied):
        extra = {
            "action": "half_applied",
            "revision_after": version_rows_text(exc.after, as_metadata=True),
        }
        if exc.matches:
            extra["schema_of_revision"] = exc.matches
        return {**extra, **(diff_metadata(exc.diff) if exc.diff is not None else {})}
    if isinstance(exc, UpgradeVerificationFailed) and exc.diff is not None:
        return {"action": "verification_failed", **diff_metadata(exc.diff)}
    return {}


def _upgrade_asset(settings: Settings, env: EnvironmentSettings) -> dg.AssetsDefinition:
    key = upgrade_key(env.name)
    resource_key = env_resource_key(env.name)
    policy = upgrade_policy(settings, env)

    @dg.asset(
        key=key,
        group_name=GROUP,
        kinds={"postgres", "alembic"},
        deps=[EXPECTED_SCHEMAS],
        required_resource_keys={resource_key, "alembic", "policy", "scratch"},
        output_required=False,
        op_tags=STAMP_TAG,
        pool=STAMP_POOL,
        description=(
            f"Guarded `alembic upgrade` of {env.name} to the head: schema check, rehearsal "
            "on a copy of its own schema, squawk lint, apply under the stamps' lock, verify"
            + (" (protected: needs `confirm`)" if env.protected else "")
            + ". A dry run (the default) only records an observation."
        ),
        metadata={"environment": env.name, "protected": env.protected},
    )
    def alembic_upgrade(context: dg.AssetExecutionContext, config: UpgradeConfig) -> Iterator[Any]:
        """Upgrade this environment to the head, rehearsed, linted, locked and verified.

        Refuses (a failed run, nothing written) when the write guard does (a confirm
        naming another environment, a protected environment without ``confirm: <name>``,
        a database that is another environment's, a protected database whose identity
        changed, the lock held), the schema is not the one expected at its revision, the
        rehearsal fails, or an error-level finding is not acknowledged. A failed apply
        says what the read-back found written. The materialization's metadata is the
        audit record: revisions applied and the time of each, findings, before/after
        revisions and fingerprints, database identity and checks, run id, launcher.
        """
        db: DatabaseResource = getattr(context.resources, resource_key)
        alembic: AlembicResource = context.resources.alembic
        schema_policy: SchemaPolicyResource = context.resources.policy
        scratch: DatabaseResource = context.resources.scratch
        url: str | None = None
        try:
            url = db.get_url()
            project = alembic.project()
            expected, _ = load_or_build_expected(
                scratch.get_url(),
                project,
                schema=env.schema,
                exclude=schema_policy.exclude,
                cache_dir=default_cache_dir(),
                privileges=schema_policy.compare_privileges,
            )
            result = guarded_upgrade(
                url,
                environment=env.name,
                project=project,
                expected=expected,
                archived=archive_positions(project),
                baseline=proven_baseline(context.instance),
                scratch_url=scratch.get_url(),
                policy=policy,
                exclude=schema_policy.exclude,
                schema=env.schema,
                acknowledge=config.acknowledge,
                dry_run=config.dry_run,
                guard=write_guard(
                    context, settings, env.name, confirm=config.confirm,
                    acknowledge_identity=config.acknowledge_identity,
                ),
            )
        except AbpartsOpsError as exc:
            raise _failure(env.name, exc, url, failure_evidence(exc)) from None
        metadata = upgrade_metadata(
            result, run_id=context.run_id, user=launched_by(context.run.tags),
            dry_run=config.dry_run,
        )
        context.log.info(result.message)
        if result.action == "dry_run":
            yield dg.AssetObservation(asset_key=key, description=result.message, metadata=metadata)
            return
        yield dg.MaterializeResult(metadata=metadata, data_version=dg.DataVersion(result.target))

    return alembic_upgrade


def build_upgrade_defs(settings: Settings) -> UpgradeDefs:
    """The upgrade asset of every configured environment (its job: :mod:`abparts_ops.defs.jobs`)."""
    defs = UpgradeDefs()
    for env in settings.environments.values():
        defs.assets.append(_upgrade_asset(settings, env))
    return defs
