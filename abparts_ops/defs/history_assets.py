"""Assets of the history as the reference: the expected schema of every revision."""

import time

import dagster as dg

from abparts_ops.core.migrations.expected import (
    ExpectedSchemas,
    default_cache_dir,
    load_or_build_expected,
)
from abparts_ops.defs.baseline_assets import baseline_revision, migration_history
from abparts_ops.defs.metadata import markdown_table, md
from abparts_ops.defs.resources import AlembicResource, DatabaseResource, SchemaPolicyResource


@dg.asset(
    group_name="history",
    kinds={"alembic", "postgres"},
    deps=[migration_history, baseline_revision],
)
def expected_schemas(
    context: dg.AssetExecutionContext,
    alembic: AlembicResource,
    policy: SchemaPolicyResource,
    scratch: DatabaseResource,
) -> dg.Output[ExpectedSchemas]:
    """The schema the on-disk history builds at each revision: the reference after a reset.

    An environment at revision ``r`` must look like ``upgrade r`` on an empty database,
    so this builds the history once on a scratch database, revision by revision, with a
    snapshot (and its probe fingerprint) after each step. The result is cached per history
    fingerprint, schema and exclusions (see ``default_cache_dir``): a rematerialization of
    an unchanged versions folder reuses it (``reused`` = 1) instead of touching the
    scratch server. The history fingerprint is the data version; the ``index`` metadata
    (order, parents, heads, probe fingerprint per revision) is what the drift sensor reads.
    It depends on ``baseline_revision`` too: in ``reset_baseline`` it must run after the
    baseline file is written, so that it describes the new history, not the archived one.
    """
    started = time.perf_counter()
    expected, reused = load_or_build_expected(
        scratch.get_url(),
        alembic.project(),
        schema=policy.schema_name,
        exclude=policy.exclude,
        cache_dir=default_cache_dir(),
        progress=lambda rev, i, n: context.log.debug(f"expected schema {i}/{n}: {rev}"),
        privileges=policy.compare_privileges,
    )
    elapsed_ms = round((time.perf_counter() - started) * 1000, 1)
    index = expected.index()
    heads = ", ".join(expected.heads)
    context.log.info(
        f"expected schemas of {len(expected.order)} revisions (head {heads or 'none'}): "
        f"{'reused from the cache' if reused else 'built on a scratch database'} "
        f"in {elapsed_ms:.0f} ms"
    )
    rows = [
        {
            "revision": f"`{rev}`" + (" (head)" if rev in expected.heads else ""),
            "tables": index.table_counts.get(rev, 0),
            "probe fingerprint": f"`{(index.probe_fingerprint(rev) or '')[:12]}`",
        }
        for rev in expected.order
    ]
    return dg.Output(
        expected,
        data_version=dg.DataVersion(expected.history_fingerprint),
        metadata={
            "revisions": len(expected.order),
            "head": heads,
            "reused": int(reused),
            "elapsed_ms": elapsed_ms,
            "history_fingerprint": expected.history_fingerprint,
            "index": dg.MetadataValue.json(index.to_dict()),
            "schemas": md(markdown_table(rows, ["revision", "tables", "probe fingerprint"])),
        },
    )
