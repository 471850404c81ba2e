"""The proofs a baseline must pass before any environment is stamped with it.

All of them run on one throwaway database of the scratch server:

- ``single_head``: the script directory has exactly one head;
- ``round_trip``: ``upgrade head`` from empty gives a schema equal to the source snapshot
  (after exclusions), otherwise the Markdown diff says what differs;
- ``models_match``: Alembic's autogenerate comparison between the application's models
  and the upgraded database finds no operation (the ``alembic check`` of the runbook);
- ``downgrade_clean``: ``downgrade base`` leaves no table, type, sequence or view behind.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterable, Sequence
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
from abparts_ops.core.schema.exclusions import is_excluded
from abparts_ops.core.schema.introspect import exclusion_patterns, snapshot_connection
from abparts_ops.core.schema.model import Snapshot

PROOFS = ("single_head", "round_trip", "models_match", "downgrade_clean")


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


def prove_baseline(
    scratch_url: str,
    project: AlembicProject,
    reference: Snapshot,
    *,
    exclude: Sequence[str] = (),
    schema: str = "public",
    models: str | None = None,
    sys_path: Sequence[Path | str] = (),
    privileges: bool = False,
) -> dict[str, ProofResult]:
    """Run every proof (see the module docstring) on one scratch database.

    ``privileges`` compares the granted privileges too (config ``compare_privileges``;
    ``reference`` must have been taken with the same setting).

    ``models_match`` is present only when ``models`` is configured. A proof that could
    not run because an earlier step failed fails with that reason.
    """
    results: dict[str, ProofResult] = {"single_head": prove_single_head(project)}
    metadata = load_metadata(models, sys_path) if models else None
    patterns = exclusion_patterns(exclude, project.version_table)
    with scratch_database(scratch_url) as url:
        engine = make_engine(url, label="scratch database")
        try:
            with connect(engine, label="scratch database") as conn:
                results.update(
                    _prove_on(conn, project, reference, patterns, schema, metadata, privileges)
                )
        finally:
            engine.dispose()
    return results


def _prove_on(
    conn: sa.Connection,
    project: AlembicProject,
    reference: Snapshot,
    patterns: list[str],
    schema: str,
    metadata: sa.MetaData | None,
    privileges: bool = False,
) -> dict[str, ProofResult]:
    results: dict[str, ProofResult] = {}
    try:
        upgrade(conn, project, "heads")
    except AbpartsOpsError as exc:
        reason = f"upgrade from an empty database failed: {exc}"
        results["round_trip"] = ProofResult("round_trip", False, reason.splitlines()[0], str(exc))
        if metadata is not None:
            results["models_match"] = ProofResult("models_match", False, "not run: " + reason)
        results["downgrade_clean"] = ProofResult("downgrade_clean", False, "not run: " + reason)
        return results
    built = snapshot_connection(
        conn,
        schema=schema,
        exclude=patterns,
        version_table=project.version_table,
        source="baseline on an empty database",
        require_tables=False,
        privileges=privileges,
    )
    diff = diff_snapshots(
        reference,
        built,
        reference_label=f"source ({reference.source or 'reference'})",
        actual_label="baseline on an empty database",
    )
    counts = diff.counts()
    results["round_trip"] = ProofResult(
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
    if metadata is not None:
        results["models_match"] = _models_match(conn, metadata, patterns, schema)
    try:
        downgrade(conn, project, "base")
    except AbpartsOpsError as exc:
        results["downgrade_clean"] = ProofResult(
            "downgrade_clean",
            False,
            f"downgrade base failed: {str(exc).splitlines()[0]}",
            str(exc),
        )
        return results
    left = snapshot_connection(
        conn,
        schema=schema,
        exclude=(),
        version_table=project.version_table,
        source="after downgrade base",
        require_tables=False,
    )
    leftovers = _leftovers(left)
    total = sum(len(v) for v in leftovers.values())
    details = "\n".join(
        f"- {kind}: " + ", ".join(f"`{name}`" for name in names[:50])
        for kind, names in leftovers.items()
    )
    results["downgrade_clean"] = ProofResult(
        "downgrade_clean",
        total == 0,
        "downgrade base leaves an empty schema"
        if total == 0
        else f"downgrade base left {total} object(s) behind",
        details,
        {"leftover_objects": total},
    )
    return results
