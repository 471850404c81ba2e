"""Assets of the source schema: the snapshot of the source environment and its dump."""


from pathlib import Path

import dagster as dg

from abparts_ops.core.memory import release_memory
from abparts_ops.core.schema.dump import reference_dump as build_reference_dump
from abparts_ops.core.schema.exclusions import unused_patterns
from abparts_ops.core.schema.frame import columns_frame
from abparts_ops.core.schema.introspect import take_snapshot
from abparts_ops.core.schema.model import Snapshot
from abparts_ops.defs.metadata import frame_schema, md, snapshot_summary
from abparts_ops.defs.resources import AlembicResource, DatabaseResource, SchemaPolicyResource


@dg.asset(group_name="baseline", kinds={"postgres", "pandas"})
def source_schema(
    context: dg.AssetExecutionContext,
    policy: SchemaPolicyResource,
    source_db: DatabaseResource,
    alembic: AlembicResource,
) -> dg.Output[Snapshot]:
    """Normalized snapshot of the source environment's schema, exclusions applied.

    Everything downstream compares against it: the reference dump, the baseline's round
    trip, and every environment's verification. Its fingerprint is the data version, so
    a rematerialization of an unchanged schema is visibly the same version.
    """
    snapshot = take_snapshot(
        source_db.get_url(),
        schema=policy.schema_name,
        exclude=policy.exclude,
        version_table=alembic.version_table,
        source=policy.source,
        privileges=policy.compare_privileges,
    )
    release_memory()  # what reading the catalog took, before Dagster pickles the snapshot
    frame = columns_frame(snapshot)
    counts = snapshot.counts()
    context.log.info(
        f"{policy.source}: {counts['table']} tables, {len(frame)} columns, "
        f"fingerprint {snapshot.fingerprint[:12]}"
    )
    unused = unused_patterns(policy.exclude, snapshot.excluded)
    if unused:
        context.log.warning(
            f"{policy.source}: exclude pattern(s) {', '.join(map(repr, unused))} matched no "
            "table (a typo? the table meant is compared after all); fix or remove them."
        )
    return dg.Output(
        snapshot,
        data_version=dg.DataVersion(snapshot.fingerprint),
        metadata={
            "dagster/column_schema": frame_schema(frame),
            "dagster/row_count": len(frame),
            "source_environment": policy.source,
            "fingerprint": snapshot.fingerprint,
            "probe_fingerprint": snapshot.probe_fingerprint or "",
            "tables": counts["table"],
            "columns": counts["column"],
            "enums": counts["enum"],
            "indexes": counts["index"],
            "foreign_keys": counts["foreign_key"],
            "views": counts["view"],
            "excluded": ", ".join(sorted(snapshot.excluded)),
            "unused_exclude_patterns": ", ".join(unused),
            "summary": md(snapshot_summary(snapshot, frame)),
        },
    )


@dg.asset(group_name="baseline", kinds={"postgres", "sql"})
def reference_dump(
    context: dg.AssetExecutionContext,
    source_schema: Snapshot,
    policy: SchemaPolicyResource,
    source_db: DatabaseResource,
    alembic: AlembicResource,
) -> dg.Output[str]:
    """Canonical, checksummed schema-only DDL of the source schema minus exclusions.

    Nothing is written here: ``baseline_revision`` writes it next to the Alembic project
    (``schema/reference.sql`` by default, for review in a pull request) together with the
    baseline, once the proofs passed, and only when its content changes.
    """
    release_memory()  # the previous step's values: each step starts from what it uses
    dump = build_reference_dump(
        source_db.get_url(),
        source_schema,
        exclude=policy.exclude,
        schema=policy.schema_name,
        version_table=alembic.version_table,
    )
    path = Path(policy.reference_path)
    context.log.info(
        f"reference dump {dump.sha256[:12]} via {dump.method} (written to {path} with the "
        "proven baseline)"
    )
    preview = "\n".join(dump.text.splitlines()[:80])
    return dg.Output(
        dump.text,
        data_version=dg.DataVersion(dump.sha256),
        metadata={
            "sha256": dump.sha256,
            "method": dump.method,
            "pg_dump_version": dump.pg_dump_version or "",
            "path": dg.MetadataValue.path(str(path)),
            "lines": len(dump.text.splitlines()),
            "source_fingerprint": source_schema.fingerprint,
            "probe_fingerprint": source_schema.probe_fingerprint or "",
            "preview": md(f"```sql\n{preview}\n```"),
        },
    )
