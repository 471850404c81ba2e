"""Assets of the reset: the old history as evidence, the new baseline and its proofs."""


from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import dagster as dg

from abparts_ops.core.history.migrate import build_from_empty
from abparts_ops.core.history.revisions import History, check_single_head, read_history
from abparts_ops.core.memory import release_memory
from abparts_ops.core.reset.proofs import proofs_for
from abparts_ops.core.reset.runbook import BaselineRecord, prove_and_write_baseline
from abparts_ops.core.reset.verdict import ProofResult
from abparts_ops.core.schema.model import Snapshot
from abparts_ops.core.scratch import scratch_database
from abparts_ops.defs.metadata import md
from abparts_ops.defs.names import BASELINE_REVISION, SOURCE_SCHEMA
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
        where = f" ({result.where()})" if result.where() else ""
        description = f"revision {result.failed_revision or '?'}{where} failed: {result.error}"
    return dg.AssetCheckResult(
        passed=result.ok,
        description=description[:1000],
        metadata={
            "applied": len(result.applied),
            "failed_revision": result.failed_revision or "",
            "failed_file": result.failed_file or "",
            "failed_line": result.failed_line or 0,
            "error": result.error or "",
        },
    )


history_checks = [single_head_history, history_builds_from_empty]


class BaselineConfig(dg.Config):
    """Run config of ``baseline_revision``."""

    revision: str = ""
    message: str = "baseline schema"
    dry_run: bool = False


@dg.asset(group_name="baseline", kinds={"alembic", "python"}, deps=[migration_history])
def baseline_revision(
    context: dg.AssetExecutionContext,
    config: BaselineConfig,
    source_schema: Snapshot,
    reference_dump: str,
    alembic: AlembicResource,
    policy: SchemaPolicyResource,
    scratch: DatabaseResource,
    source_db: DatabaseResource,
) -> dg.Output[BaselineRecord]:
    """A new self-contained root revision that builds the whole source schema from empty.

    Proven before written (core.reset.runbook): the baseline is rendered into a
    temporary copy of the Alembic project and every proof runs there; only when all the
    blocking ones pass are the old revision files moved (never deleted) into a dated
    archive folder with a manifest, the new file written (never over another file) and
    the reference dump written. A failed proof writes nothing: the materialization says
    ``refused`` and the blocking checks below fail the run with the diff. ``dry_run``
    proves and writes nothing. A rerun on an unchanged snapshot changes nothing; an
    archive a crash left incomplete is finished or cleaned first, and the log says so.
    """
    release_memory()  # the previous steps' values: each step starts from what it uses
    project = alembic.project()
    outcome = prove_and_write_baseline(
        source_schema,
        project,
        scratch_url=scratch.get_url(),
        source_url=source_db.get_url(),
        reference_text=reference_dump,
        reference_path=Path(policy.reference_path),
        now=datetime.now(),
        revision=config.revision or None,
        message=config.message,
        dry_run=config.dry_run,
        exclude=policy.exclude,
        schema=policy.schema_name,
        models=alembic.models,
        sys_path=alembic.sys_path,
        privileges=policy.compare_privileges,
    )
    for line in outcome.recovered:
        context.log.warning(line)
    plan = outcome.plan
    path = plan.existing or plan.path
    if outcome.refused:
        context.log.error(outcome.failure_report())
    context.log.info(f"baseline {plan.revision}: {outcome.action} ({path.name})")
    archive = outcome.archive
    record = outcome.record(source_schema.fingerprint)
    return dg.Output(
        record,
        data_version=dg.DataVersion(record.sha256),
        metadata={
            "revision": record.revision,
            "action": record.action,
            "file": dg.MetadataValue.path(str(path)),
            "sha256": plan.sha256,
            "archived_files": len(archive.entries) if archive is not None else 0,
            "archive_dir": str(archive.archive_dir) if archive and archive.entries else "",
            "reference_written": outcome.reference_written,
            "reference_path": dg.MetadataValue.path(str(policy.reference_path)),
            "failed_proofs": ", ".join(outcome.failed),
            "recovered_archives": "\n".join(outcome.recovered),
            "source_fingerprint": source_schema.fingerprint,
            "lines": len(plan.source.splitlines()),
            "proofs": md(_proofs_table(outcome.results)),
            "preview": md("```python\n" + "\n".join(plan.source.splitlines()[:120]) + "\n```"),
        },
    )


def _proofs_table(results: dict[str, ProofResult]) -> str:
    lines = ["| proof | passed | summary |", "|---|---|---|"]
    for name, result in results.items():
        summary = result.summary.replace("|", "\\|")
        lines.append(f"| {name} | {'yes' if result.passed else '**no**'} | {summary} |")
    return "\n".join(lines)


def build_baseline_checks(with_models: bool) -> dg.AssetChecksDefinition:
    """The blocking proofs on ``baseline_revision``, one check per registry entry.

    ``baseline_revision`` ran the proofs before deciding to write (nothing is written
    unless the blocking ones pass); these checks report those verdicts, so they show in
    the UI, fail the run when one fails, and are what the stamp gate reads
    (``models_match`` only ``with_models``). A verdict counts only for the source schema
    it was proven against: when ``source_schema`` has changed since, every check fails
    and says to rematerialize ``baseline_revision``.
    """
    proofs = proofs_for(with_models)
    specs = [
        dg.AssetCheckSpec(
            proof.name,
            asset=BASELINE_REVISION,
            blocking=proof.blocking,
            description=proof.description,
            additional_deps=[SOURCE_SCHEMA],
        )
        for proof in proofs
    ]

    @dg.multi_asset_check(
        specs=specs,
        ins={
            "baseline_revision": dg.AssetIn(key=BASELINE_REVISION),
            "source_schema": dg.AssetIn(key=SOURCE_SCHEMA),
        },
        name="baseline_proofs",
    )
    def baseline_proofs(
        baseline_revision: BaselineRecord, source_schema: Snapshot
    ) -> Iterator[dg.AssetCheckResult]:
        """Report each proof's verdict from the run of ``baseline_revision``."""
        results = baseline_revision.proofs
        proven_on = baseline_revision.source_fingerprint
        stale = proven_on != source_schema.fingerprint
        for proof in proofs:
            result = results.get(proof.name)
            if stale:
                result = ProofResult(
                    proof.name,
                    False,
                    f"proven against source schema {proven_on[:12] or '?'}, but source_schema "
                    f"is now {source_schema.fingerprint[:12]} (rematerialize baseline_revision)",
                )
            elif result is None:
                result = ProofResult(
                    proof.name,
                    False,
                    "not run by baseline_revision (rematerialize it: its run computes the proofs)",
                )
            yield _check_result(result)

    return baseline_proofs


def _check_result(result: ProofResult) -> dg.AssetCheckResult:
    metadata: dict[str, Any] = dict(result.metadata)
    if result.details:
        metadata["details"] = md(result.details)
    return dg.AssetCheckResult(
        check_name=result.name,
        asset_key=BASELINE_REVISION,
        passed=result.passed,
        description=result.summary[:1000],
        metadata=metadata,
    )
