"""The proofs a baseline must pass before it is written, and before any stamp.

They are one registry, :data:`PROOFS` (a :class:`Proof` each: name, description, whether
it blocks, what it needs, the function), run in its order by :func:`run_proofs` on one
throwaway database of the scratch server:

- ``single_head``: the script directory has exactly one head;
- ``round_trip``: ``upgrade head`` from empty gives a schema equal to the source snapshot
  (after exclusions), otherwise the Markdown diff says what differs;
- ``dump_parity``: ``pg_dump`` of the source and of the upgraded database are identical
  after normalization (:mod:`abparts_ops.core.schema.dump_parity`), an oracle that does
  not depend on what the snapshot models;
- ``models_match``: Alembic's autogenerate comparison between the application's models
  and the upgraded database finds no operation (the ``alembic check`` of the runbook);
  only when models are configured;
- ``downgrade_clean``: ``downgrade base`` leaves no table, type, sequence or view behind.

Adding a proof is one :class:`Proof` entry in :data:`PROOFS`: its function takes the
:class:`ProofContext` and returns a :class:`ProofResult`; with ``needs_build`` it runs on
the upgraded database (and is reported as not run when the upgrade failed), in registry
order, before ``downgrade_clean`` takes the database back down.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from abparts_ops.core.db import connect, make_engine
from abparts_ops.core.errors import AbpartsOpsError, MigrationError
from abparts_ops.core.migrations.migrate import downgrade, upgrade
from abparts_ops.core.migrations.project import AlembicProject
from abparts_ops.core.migrations.scratch import scratch_database
from abparts_ops.core.schema.diff import diff_snapshots
from abparts_ops.core.schema.dump_parity import dump_parity
from abparts_ops.core.schema.exclusions import is_excluded
from abparts_ops.core.schema.introspect import exclusion_patterns, snapshot_connection
from abparts_ops.core.schema.model import Snapshot


@dataclass(frozen=True)
class ProofResult:
    """One proof's verdict: a one-line summary, Markdown details and numeric metadata."""

    name: str
    passed: bool
    summary: str
    details: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)


def load_metadata(models: str, sys_path: Sequence[Path | str] = ()) -> sa.MetaData:
    """Import ``package.module:Attr`` (a declarative Base or a MetaData) and return it.

    ``sys_path`` folders are put first on ``sys.path`` for the import only.
    """
    module_name, _, attr = models.partition(":")
    added = [str(p) for p in sys_path if str(p) not in sys.path]
    sys.path[:0] = added
    try:
        module = importlib.import_module(module_name)
        target: Any = module
        for part in attr.split("."):
            target = getattr(target, part)
    except (ImportError, AttributeError, SyntaxError) as exc:
        raise MigrationError(
            f"alembic.models: cannot import {models!r}: {exc} (fix the import path or "
            "alembic.sys_path)."
        ) from None
    finally:
        for entry in added:
            if entry in sys.path:
                sys.path.remove(entry)
    metadata = target if isinstance(target, sa.MetaData) else getattr(target, "metadata", None)
    if not isinstance(metadata, sa.MetaData):
        raise MigrationError(
            f"alembic.models: {models!r} is neither a MetaData nor a declarative Base "
            "(point it at the Base whose .metadata Alembic uses)."
        )
    return metadata


def prove_single_head(project: AlembicProject) -> ProofResult:
    """Exactly one head in the project's script directory."""
    heads = sorted(project.script().get_heads())
    passed = len(heads) == 1
    summary = (
        f"one head: {heads[0]}"
        if passed
        else f"{len(heads)} heads: {', '.join(heads) or 'none'} (merge them or rebuild the "
        "baseline)"
    )
    return ProofResult("single_head", passed, summary, metadata={"heads": len(heads)})


def _render_ops(diffs: Iterable[Any]) -> list[str]:
    lines = []
    for entry in diffs:
        items = entry if isinstance(entry, list) else [entry]
        for item in items:
            lines.append(" ".join(str(part) for part in item)[:300])
    return lines


def _models_match(
    conn: sa.Connection, metadata: sa.MetaData, patterns: list[str], schema: str
) -> ProofResult:
    def include_name(name: str | None, type_: str, parent_names: Any) -> bool:
        if type_ == "schema":
            return name in (None, schema)
        if type_ == "table" and name is not None:
            return not is_excluded(name, patterns)
        return True

    def include_object(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any):
        if type_ == "table" and name is not None:
            return not is_excluded(name, patterns)
        return True

    context = MigrationContext.configure(
        conn,
        opts={
            "compare_type": True,
            "include_name": include_name,
            "include_object": include_object,
        },
    )
    operations = _render_ops(compare_metadata(context, metadata))
    if conn.in_transaction():
        conn.rollback()
    if not operations:
        return ProofResult(
            "models_match", True, "models and the baseline schema agree", metadata={"operations": 0}
        )
    details = "\n".join(["Autogenerate would emit:", "", *[f"- `{op}`" for op in operations]])
    return ProofResult(
        "models_match",
        False,
        f"{len(operations)} difference(s) between the models and the baseline schema",
        details,
        {"operations": len(operations)},
    )


def _leftovers(snapshot: Snapshot) -> dict[str, list[str]]:
    return {kind: sorted(objs) for kind, objs in snapshot.objects.items() if objs}


class ProofNotRun(AbpartsOpsError):
    """Raised inside a proof whose precondition failed; it is reported as failed, not run."""


@dataclass
class ProofContext:
    """What a proof may look at: the project, the reference, the scratch database.

    ``conn``/``url`` are the scratch database's (None for the proofs that need none);
    ``build_error`` is set when ``upgrade heads`` from empty failed there.
    """

    project: AlembicProject
    reference: Snapshot
    schema: str
    exclude: tuple[str, ...]
    patterns: list[str]
    metadata: sa.MetaData | None = None
    source_url: str | None = None
    pg_dump_dirs: Sequence[Path | str] | None = None
    conn: sa.Connection | None = None
    url: str | None = None
    build_error: AbpartsOpsError | None = None
    built: Snapshot | None = None
    privileges: bool = False

    def connection(self) -> sa.Connection:
        """The scratch connection, upgraded to head; raises :class:`ProofNotRun` if not."""
        if self.build_error is not None:
            reason = f"upgrade from an empty database failed: {self.build_error}"
            raise ProofNotRun("not run: " + reason.splitlines()[0])
        assert self.conn is not None, "proof declared needs_build=False but uses the database"
        return self.conn


@dataclass(frozen=True)
class Proof:
    """One proof of the registry.

    ``blocking``: a failure keeps the baseline from being written (and any stamp).
    ``needs_build``: runs on the scratch database upgraded to head. ``needs_models``:
    runs only when the application's models are configured.
    """

    name: str
    description: str
    run: Callable[[ProofContext], ProofResult]
    blocking: bool = True
    needs_build: bool = True
    needs_models: bool = False


def _single_head(ctx: ProofContext) -> ProofResult:
    return prove_single_head(ctx.project)


def _round_trip(ctx: ProofContext) -> ProofResult:
    if ctx.build_error is not None:
        reason = f"upgrade from an empty database failed: {ctx.build_error}"
        return ProofResult("round_trip", False, reason.splitlines()[0], str(ctx.build_error))
    conn = ctx.connection()
    built = snapshot_connection(
        conn,
        schema=ctx.schema,
        exclude=ctx.patterns,
        version_table=ctx.project.version_table,
        source="baseline on an empty database",
        require_tables=False,
        privileges=ctx.privileges,
    )
    ctx.built = built
    reference = ctx.reference
    diff = diff_snapshots(
        reference,
        built,
        reference_label=f"source ({reference.source or 'reference'})",
        actual_label="baseline on an empty database",
    )
    counts = diff.counts()
    return ProofResult(
        "round_trip",
        diff.is_empty,
        "the baseline rebuilds the source schema exactly"
        if diff.is_empty
        else f"{counts['total']} difference(s) between the source and the rebuilt schema",
        diff.to_markdown(),
        {
            "differences": counts["total"],
            "tables_built": len(built.kind("table")),
            "built_fingerprint": built.fingerprint,
        },
    )


def _dump_parity(ctx: ProofContext) -> ProofResult:
    conn = ctx.connection()
    if ctx.source_url is None:
        return ProofResult(
            "dump_parity",
            False,
            "no source database URL was given, so the source cannot be dumped (pass "
            "source_url to prove_baseline)",
        )
    built_version = str(conn.exec_driver_sql("SHOW server_version").scalar())
    if conn.in_transaction():
        conn.rollback()
    assert ctx.url is not None
    result = dump_parity(
        ctx.source_url,
        ctx.url,
        server_version=ctx.reference.server_version,
        built_server_version=built_version,
        schema=ctx.schema,
        exclude=ctx.exclude,
        version_table=ctx.project.version_table,
        search_dirs=ctx.pg_dump_dirs,
    )
    return ProofResult(
        "dump_parity",
        result.identical,
        result.summary(),
        result.to_markdown(),
        {
            "missing": len(result.missing),
            "unexpected": len(result.unexpected),
            "changed": len(result.changed),
            "objects": result.entries,
            "pg_dump_version": result.pg_dump_version or "",
        },
    )


def _models(ctx: ProofContext) -> ProofResult:
    assert ctx.metadata is not None
    return _models_match(ctx.connection(), ctx.metadata, ctx.patterns, ctx.schema)


def _downgrade_clean(ctx: ProofContext) -> ProofResult:
    conn = ctx.connection()
    try:
        downgrade(conn, ctx.project, "base")
    except AbpartsOpsError as exc:
        return ProofResult(
            "downgrade_clean",
            False,
            f"downgrade base failed: {str(exc).splitlines()[0]}",
            str(exc),
        )
    left = snapshot_connection(
        conn,
        schema=ctx.schema,
        exclude=(),
        version_table=ctx.project.version_table,
        source="after downgrade base",
        require_tables=False,
    )
    leftovers = _leftovers(left)
    total = sum(len(v) for v in leftovers.values())
    details = "\n".join(
        f"- {kind}: " + ", ".join(f"`{name}`" for name in names[:50])
        for kind, names in leftovers.items()
    )
    return ProofResult(
        "downgrade_clean",
        total == 0,
        "downgrade base leaves an empty schema"
        if total == 0
        else f"downgrade base left {total} object(s) behind",
        details,
        {"leftover_objects": total},
    )


#: Every proof, in the order they run (``downgrade_clean`` last: it tears the build down).
PROOFS: tuple[Proof, ...] = (
    Proof(
        "single_head",
        "The new script directory has exactly one head.",
        _single_head,
        needs_build=False,
    ),
    Proof(
        "round_trip", "An empty database upgraded to head equals the source schema.", _round_trip
    ),
    Proof(
        "dump_parity",
        "pg_dump of the source equals pg_dump of an empty database upgraded to head.",
        _dump_parity,
    ),
    Proof(
        "models_match",
        "Autogenerate finds no difference between models and the baseline.",
        _models,
        needs_models=True,
    ),
    Proof(
        "downgrade_clean",
        "downgrade base leaves no table, type, sequence or view.",
        _downgrade_clean,
    ),
)


def proofs_for(with_models: bool, proofs: Sequence[Proof] = PROOFS) -> tuple[Proof, ...]:
    """The proofs that run for a project (``models_match`` only ``with_models``)."""
    return tuple(p for p in proofs if with_models or not p.needs_models)


def blocking_failures(
    results: dict[str, ProofResult], proofs: Sequence[Proof] = PROOFS
) -> list[str]:
    """Names of the blocking proofs in ``results`` that did not pass."""
    blocking = {p.name for p in proofs if p.blocking}
    return [name for name, r in results.items() if name in blocking and not r.passed]


def prove_baseline(
    scratch_url: str,
    project: AlembicProject,
    reference: Snapshot,
    *,
    exclude: Sequence[str] = (),
    schema: str = "public",
    models: str | None = None,
    sys_path: Sequence[Path | str] = (),
    source_url: str | None = None,
    pg_dump_dirs: Sequence[Path | str] | None = None,
    proofs: Sequence[Proof] = PROOFS,
    privileges: bool = False,
) -> dict[str, ProofResult]:
    """Run every proof of ``proofs`` (see the module docstring) on one scratch database.

    ``privileges`` makes ``round_trip`` compare the granted privileges too (config
    ``compare_privileges``; ``reference`` must have been taken with the same setting).

    ``models_match`` is present only when ``models`` is configured; ``dump_parity`` dumps
    the database at ``source_url`` (the source of ``reference``). A proof that could not
    run because an earlier step failed fails with that reason. Results keep registry order.
    """
    metadata = load_metadata(models, sys_path) if models else None
    selected = proofs_for(metadata is not None, proofs)
    ctx = ProofContext(
        project=project,
        reference=reference,
        schema=schema,
        exclude=tuple(exclude),
        patterns=exclusion_patterns(exclude, project.version_table),
        metadata=metadata,
        source_url=source_url,
        pg_dump_dirs=pg_dump_dirs,
        privileges=privileges,
    )
    results: dict[str, ProofResult] = {}
    for proof in selected:
        if not proof.needs_build:
            results[proof.name] = _run_one(proof, ctx)
    built = [p for p in selected if p.needs_build]
    if not built:
        return results
    with scratch_database(scratch_url) as url:
        engine = make_engine(url, label="scratch database")
        try:
            with connect(engine, label="scratch database") as conn:
                ctx.conn, ctx.url = conn, url
                try:
                    upgrade(conn, project, "heads")
                except AbpartsOpsError as exc:
                    ctx.build_error = exc
                for proof in built:
                    results[proof.name] = _run_one(proof, ctx)
                ctx.conn = None
        finally:
            engine.dispose()
    return {p.name: results[p.name] for p in selected}


def _run_one(proof: Proof, ctx: ProofContext) -> ProofResult:
    try:
        result = proof.run(ctx)
    except ProofNotRun as exc:
        return ProofResult(proof.name, False, str(exc))
    if ctx.conn is not None and ctx.conn.in_transaction():
        ctx.conn.rollback()
    return result
