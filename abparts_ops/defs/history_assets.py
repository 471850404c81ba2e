"""Assets of the history as the reference: the expected schema of every revision."""

import time

import dagster as dg

from abparts_ops.core.history.expected_cache import default_cache_dir, refresh_expected
from abparts_ops.core.memory import long_lived_frozen
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
) -> dg.MaterializeResult:
    """The schema the on-disk history builds at each revision: the reference after a reset.

    An environment at revision ``r`` must look like ``upgrade r`` on an empty database,
    so this builds the history on a scratch database, revision by revision, with a
    snapshot (and its probe fingerprint) after each step, into the one cache (see
    ``default_cache_dir``), where every reader gets them (``load_or_build_expected``).
    A rematerialization of an unchanged versions folder reuses the cache (``reused`` = 1);
    a new revision on top of a cached history builds only that revision (``built``), and
    an edited one is rebuilt from it onwards (``history_changes``). The history
    fingerprint is the data version; the ``index`` metadata (order, parents, heads, file
    hashes, probe fingerprint per revision) is what the drift sensor falls back on when
    it cannot read the cache. It depends on ``baseline_revision`` too: in
    ``reset_baseline`` it must run after the baseline file is written, so that it
    describes the new history, not the archived one. Its value lives in the cache only
    (no IO manager): no reader ever loads a stale copy of it.
    """
    started = time.perf_counter()
    with long_lived_frozen():  # the build's garbage is collected as it goes
        refresh = refresh_expected(
            scratch.get_url(),
            alembic.project(),
            schema=policy.schema_name,
            exclude=policy.exclude,
            cache_dir=default_cache_dir(),
            progress=lambda rev, i, n: context.log.debug(f"expected schema {i}/{n}: {rev}"),
            privileges=policy.compare_privileges,
        )
    expected = refresh.expected
    elapsed_ms = round((time.perf_counter() - started) * 1000, 1)
    index = expected.index()
    heads = ", ".join(expected.heads)
    context.log.info(
        f"expected schemas of {len(expected.order)} revisions (head {heads or 'none'}): "
        f"{refresh.describe()} in {elapsed_ms:.0f} ms"
    )
    rows = [
        {
            "revision": f"`{rev}`" + (" (head)" if rev in expected.heads else ""),
            "tables": index.table_counts.get(rev, 0),
            "probe fingerprint": f"`{(index.probe_fingerprint(rev) or '')[:12]}`",
            "built": "yes" if rev in refresh.built else "",
        }
        for rev in expected.order
    ]
    return dg.MaterializeResult(
        data_version=dg.DataVersion(expected.history_fingerprint),
        metadata={
            "revisions": len(expected.order),
            "head": heads,
            "reused": int(refresh.reused),
            "built": len(refresh.built),
            "built_revisions": ", ".join(refresh.built),
            "refresh": refresh.describe(),
            "history_changes": "; ".join(refresh.delta.parts()) or "none",
            "elapsed_ms": elapsed_ms,
            "history_fingerprint": expected.history_fingerprint,
            "index": dg.MetadataValue.json(index.to_dict()),
            "schemas": md(
                markdown_table(rows, ["revision", "tables", "probe fingerprint", "built"])
            ),
        },
    )
