"""Assets of the reset: the old history as evidence, the new baseline and its proofs."""


import tempfile
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import dagster as dg

from abparts_ops.core.migrations.baseline_files import apply_baseline, plan_baseline
from abparts_ops.core.migrations.history import History, check_single_head, read_history
from abparts_ops.core.migrations.migrate import build_from_empty
from abparts_ops.core.migrations.project import AlembicProject
from abparts_ops.core.migrations.proofs import ProofResult, prove_baseline
from abparts_ops.core.migrations.scratch import scratch_database
from abparts_ops.core.schema.model import Snapshot
from abparts_ops.defs.metadata import md
from abparts_ops.defs.resources import AlembicResource, DatabaseResource, SchemaPolicyResource


@dg.asset(group_name="baseline", kinds={"alembic"})
def migration_history(alembic: AlembicResource) -> dg.Output[History]:
    """The Alembic history as it is on disk: revisions, parents, heads, merges, file hashes.

    Read before the reset it is the evidence of what is being replaced; read after it,
    it shows the single baseline root. Its files' fingerprint is the data version.
    """
    history = read_history(alembic.project())
    return dg.Output(
        history,
        data_version=dg.DataVersion(history.fingerprint),
        metadata={
            "revisions": len(history.revisions),
            "heads": ", ".join(history.heads),
            "head_count": len(history.heads),
            "merges": len(history.merges),
            "non_revision_files": len(history.non_revision_files),
            "fingerprint": history.fingerprint,
            "chain": md(history.to_markdown()),
        },
    )


@dg.asset_check(
    asset=migration_history, name="single_head", description="The history has exactly one head."
)
def single_head_history(migration_history: History) -> dg.AssetCheckResult:
    """Fails, naming the heads, when the on-disk history has several (unmerged) heads."""
    passed, summary = check_single_head(migration_history)
    return dg.AssetCheckResult(
        passed=passed,
        description=summary,
        metadata={"heads": len(migration_history.heads)},
    )


@dg.asset_check(
    asset=migration_history,
    description="`upgrade head` of the on-disk history builds an empty database.",
)
def history_builds_from_empty(
    alembic: AlembicResource, scratch: DatabaseResource
) -> dg.AssetCheckResult:
    """Upgrade a throwaway database from nothing; on failure name the revision and error.

    The public ABParts baselines failed exactly here: they were diffs, not schemas.
    """
    project = alembic.project()
    with scratch_database(scratch.get_url()) as url:
        result = build_from_empty(url, project)
    if result.ok:
        description = f"built from empty through {len(result.applied)} revision(s)"
    else:
        description = f"revision {result.failed_revision or '?'} failed: {result.error}"
    return dg.AssetCheckResult(
        passed=result.ok,
        description=description[:1000],
        metadata={
            "applied": len(result.applied),
            "failed_revision": result.failed_revision or "",
            "error": result.error or "",
        },
    )


history_checks = [single_head_history, history_builds_from_empty]


class BaselineConfig(dg.Config):
    """Run config of ``baseline_revision``."""

    revision: str = ""
    message: str = "baseline schema"
    dry_run: bool = False


@dg.asset(
    group_name="baseline", kinds={"alembic", "python"}, deps=[migration_history, "reference_dump"]
)
def baseline_revision(
    context: dg.AssetExecutionContext,
    config: BaselineConfig,
    source_schema: Snapshot,
    alembic: AlembicResource,
) -> dg.Output[dict[str, Any]]:
    """A new self-contained root revision that builds the whole source schema from empty.

    Old revision files are moved (never deleted) into a dated archive folder inside the
    Alembic project, with a manifest; an existing file is never overwritten, and a rerun
    on an unchanged snapshot changes nothing. ``dry_run`` renders and proves the file
    without writing anything. The blocking proofs below must pass before any stamp.
    """
    project = alembic.project()
    versions_dir = project.versions_dirs[0]
    plan = plan_baseline(
        source_schema,
        versions_dir,
        revision=config.revision or None,
        message=config.message,
        now=datetime.now(),
    )
    archived: list[str] = []
    archive_dir = ""
    if config.dry_run:
        action = "dry_run"
    elif plan.existing is not None:
        action = "unchanged"
    else:
        _path, archive = apply_baseline(plan, versions_dir)
        action = "written"
        if archive is not None:
            archived = [entry.file for entry in archive.entries]
            archive_dir = str(archive.archive_dir)
    path = plan.existing or plan.path
    context.log.info(f"baseline {plan.revision}: {action} ({path.name})")
    value = {
        "revision": _revision_of(plan),
        "path": str(path),
        "filename": path.name,
        "sha256": plan.sha256,
        "dry_run": config.dry_run,
        "action": action,
        "source": plan.source,
        "source_fingerprint": source_schema.fingerprint,
    }
    return dg.Output(
        value,
        data_version=dg.DataVersion(plan.sha256),
        metadata={
            "revision": value["revision"],
            "action": action,
            "file": dg.MetadataValue.path(str(path)),
            "sha256": plan.sha256,
            "archived_files": len(archived),
            "archive_dir": archive_dir,
            "source_fingerprint": source_schema.fingerprint,
            "lines": len(plan.source.splitlines()),
            "preview": md("```python\n" + "\n".join(plan.source.splitlines()[:120]) + "\n```"),
        },
    )


def _revision_of(plan: Any) -> str:
    existing = plan.existing
    if existing is not None:
        return str(existing.name.split("_", 1)[0])
    return str(plan.revision)


def _proof_project(alembic: AlembicResource, baseline: dict[str, Any]) -> Iterator[AlembicProject]:
    """The project the proofs run on: the real one, or a temporary one for a dry run."""
    project = alembic.project()
    if not baseline.get("dry_run"):
        yield project
        return
    with tempfile.TemporaryDirectory(prefix="abparts_dry_run_") as tmp:
        versions = Path(tmp) / "versions"
        versions.mkdir()
        (versions / baseline["filename"]).write_text(baseline["source"])
        yield AlembicProject(
            ini_path=None,
            script_location=Path(tmp),
            versions_dirs=(versions,),
            version_table=project.version_table,
            version_table_schema=project.version_table_schema,
        )


def build_baseline_checks(with_models: bool) -> dg.AssetChecksDefinition:
    """The blocking proofs on ``baseline_revision`` (``models_match`` when models are set)."""
    names = ["round_trip", "downgrade_clean", "single_head"] + (
        ["models_match"] if with_models else []
    )
    descriptions = {
        "round_trip": "An empty database upgraded to head equals the source schema.",
        "downgrade_clean": "downgrade base leaves no table, type, sequence or view.",
        "single_head": "The new script directory has exactly one head.",
        "models_match": "Autogenerate finds no difference between models and the baseline.",
    }
    specs = [
        dg.AssetCheckSpec(
            name,
            asset="baseline_revision",
            blocking=True,
            description=descriptions[name],
            additional_deps=["source_schema"],
        )
        for name in names
    ]

    @dg.multi_asset_check(
        specs=specs,
        ins={"baseline_revision": dg.AssetIn(), "source_schema": dg.AssetIn()},
        name="baseline_proofs",
    )
    def baseline_proofs(
        context: dg.AssetCheckExecutionContext,
        baseline_revision: dict[str, Any],
        source_schema: Snapshot,
        alembic: AlembicResource,
        policy: SchemaPolicyResource,
        scratch: DatabaseResource,
    ) -> Iterator[dg.AssetCheckResult]:
        """Prove the baseline on one throwaway database (see core.migrations.proofs)."""
        for project in _proof_project(alembic, baseline_revision):
            results = prove_baseline(
                scratch.get_url(),
                project,
                source_schema,
                exclude=policy.exclude,
                schema=policy.schema_name,
                models=alembic.models if with_models else None,
                sys_path=alembic.sys_path,
            )
        for name in names:
            yield _check_result(results[name])

    return baseline_proofs


def _check_result(result: ProofResult) -> dg.AssetCheckResult:
    metadata: dict[str, Any] = dict(result.metadata)
    if result.details:
        metadata["details"] = md(result.details)
    return dg.AssetCheckResult(
        check_name=result.name,
        asset_key="baseline_revision",
        passed=result.passed,
        description=result.summary[:1000],
        metadata=metadata,
    )
