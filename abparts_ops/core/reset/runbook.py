"""The reset, proven before written: render, prove on a copy, and only then write.

:func:`prove_and_write_baseline` is the whole write path of the reset:

1. an archive a crash left incomplete is finished or cleaned (and said so);
2. the baseline is planned (:func:`~abparts_ops.core.reset.baseline_files.plan_baseline`)
   and rendered into a temporary copy of the Alembic project where it is the only
   revision (:func:`~abparts_ops.core.reset.baseline_files.staged_project`);
3. every proof of the registry runs there
   (:func:`~abparts_ops.core.reset.proofs.prove_baseline`);
4. only when every blocking proof passed (and it is not a dry run) are the old revisions
   archived, the new file written (atomically, never over another file) and the
   reference dump written. Otherwise the versions folder and the reference dump are left
   byte for byte as they were.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from abparts_ops.core.history.archive import ArchiveResult, recover_interrupted_archives
from abparts_ops.core.history.project import AlembicProject
from abparts_ops.core.memory import release_memory
from abparts_ops.core.reset.baseline_files import (
    BaselinePlan,
    apply_baseline,
    plan_baseline,
    staged_project,
)
from abparts_ops.core.reset.proofs import (
    PROOFS,
    Proof,
    blocking_failures,
    prove_baseline,
)
from abparts_ops.core.reset.verdict import ProofResult
from abparts_ops.core.schema.dump import write_reference_text
from abparts_ops.core.schema.model import Snapshot


@dataclass(frozen=True)
class BaselineRecord:
    """The baseline a reset leaves for the stamps, typed: the value of ``baseline_revision``.

    ``revision`` is the id inside the file (read from it, never from its name), ``path``
    the file, ``sha256`` its content's hash, ``source_fingerprint`` the source schema it
    was proven against, ``action`` what the reset did (``written``, ``unchanged``,
    ``dry_run``, ``refused``) and ``proofs`` every proof's verdict.
    """

    revision: str
    path: Path
    sha256: str
    source_fingerprint: str
    action: str
    proofs: Mapping[str, ProofResult] = field(default_factory=dict)

    @property
    def in_versions_folder(self) -> bool:
        """True when the file is in the versions folder (a dry run or refusal wrote none)."""
        return self.action in ("written", "unchanged")


@dataclass(frozen=True)
class ResetOutcome:
    """What the reset did.

    ``action``: ``written`` (new baseline written, old history archived), ``unchanged``
    (the versions folder already holds this baseline), ``dry_run`` (proven, nothing
    written) or ``refused`` (a blocking proof failed: nothing written). ``failed`` names
    the blocking proofs that failed; ``recovered`` has one line per interrupted archive
    found (finished, cleaned, or what a dry run would do).
    """

    plan: BaselinePlan
    action: str
    results: dict[str, ProofResult]
    failed: tuple[str, ...] = ()
    archive: ArchiveResult | None = None
    reference_written: bool = False
    recovered: tuple[str, ...] = field(default_factory=tuple)

    @property
    def refused(self) -> bool:
        """True when a blocking proof failed and nothing was written."""
        return self.action == "refused"

    def record(self, source_fingerprint: str) -> BaselineRecord:
        """The typed record of this outcome for the snapshot of ``source_fingerprint``."""
        plan = self.plan
        return BaselineRecord(
            revision=plan.revision,
            path=plan.existing or plan.path,
            sha256=plan.sha256,
            source_fingerprint=source_fingerprint,
            action=self.action,
            proofs=dict(self.results),
        )

    def failure_report(self) -> str:
        """The failed proofs with their summaries and details (Markdown), for the run log."""
        parts = [
            f"baseline {self.plan.revision} was not written: blocking proof(s) "
            f"{', '.join(self.failed)} failed; the versions folder and the reference dump "
            "are unchanged."
        ]
        for name in self.failed:
            result = self.results[name]
            parts += ["", f"## {name}: {result.summary}"]
            if result.details and result.details != result.summary:
                parts += ["", result.details]
        return "\n".join(parts)


def prove_and_write_baseline(
    snapshot: Snapshot,
    project: AlembicProject,
    *,
    scratch_url: str,
    source_url: str,
    reference_text: str,
    reference_path: Path,
    now: datetime,
    revision: str | None = None,
    message: str = "baseline schema",
    dry_run: bool = False,
    exclude: Sequence[str] = (),
    schema: str = "public",
    models: str | None = None,
    sys_path: Sequence[Path | str] = (),
    pg_dump_dirs: Sequence[Path | str] | None = None,
    proofs: Sequence[Proof] = PROOFS,
    privileges: bool = False,
) -> ResetOutcome:
    """Render, prove on a temporary copy of the project, then write (see the module doc).

    ``privileges``: the snapshot was taken with granted privileges (config
    ``compare_privileges``), so the round trip compares them too.

    ``reference_text`` is the reference dump of the source, written to ``reference_path``
    with the baseline (only after the proofs pass, and only when it differs). The first
    versions folder of ``project`` receives the baseline.
    """
    versions_dir = project.versions_dirs[0]
    recovered = tuple(recover_interrupted_archives(versions_dir, dry_run=dry_run))
    plan = plan_baseline(snapshot, versions_dir, revision=revision, message=message, now=now)
    release_memory()  # what rendering took, before the proofs build and read the schema
    with staged_project(project, plan) as staged:
        results = prove_baseline(
            scratch_url,
            staged,
            snapshot,
            exclude=exclude,
            schema=schema,
            models=models,
            sys_path=sys_path,
            source_url=source_url,
            pg_dump_dirs=pg_dump_dirs,
            proofs=proofs,
            privileges=privileges,
        )
    failed = tuple(blocking_failures(results, proofs))

    def outcome(
        action: str, archive: ArchiveResult | None = None, reference_written: bool = False
    ) -> ResetOutcome:
        return ResetOutcome(
            plan=plan,
            action=action,
            results=results,
            failed=failed,
            archive=archive,
            reference_written=reference_written,
            recovered=recovered,
        )

    if dry_run:
        return outcome("dry_run")
    if failed:
        return outcome("refused")
    _path, archive = apply_baseline(plan, versions_dir)
    reference_written = write_reference_text(reference_text, Path(reference_path))
    return outcome("unchanged" if plan.is_noop else "written", archive, reference_written)
