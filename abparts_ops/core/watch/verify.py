"""Read one environment and ask the reference which state it is in.

The two ways of looking, each a thin reader around :mod:`abparts_ops.core.watch.reference`:
:func:`probe_state` (version rows and the probe fingerprint: one short visit, no diff) and
:func:`snapshot_state` (version rows and a full snapshot in one connection: the diff).
The checks, ``abparts-ops drift`` and the tests use them; the sensor probes all
environments at once through :mod:`abparts_ops.core.watch.drift`. Both read the granted
privileges exactly when the expected schemas were built with them.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable

import sqlalchemy as sa

from abparts_ops.core.db import connect, make_engine
from abparts_ops.core.history.migrate import current_revisions
from abparts_ops.core.schema.introspect import snapshot_connection
from abparts_ops.core.watch.probe import probe
from abparts_ops.core.watch.reference import (
    Assessment,
    ExpectedSnapshots,
    ExpectedView,
    assess_fingerprint,
    assess_snapshot,
)


def probe_state(
    url: str | sa.URL,
    *,
    environment: str,
    expected: ExpectedView,
    archived: Collection[str] = (),
    baseline: str | None = None,
    schema: str = "public",
    exclude: Iterable[str] = (),
    version_table: str = "alembic_version",
    version_table_schema: str | None = None,
    timeout_s: float = 10.0,
) -> Assessment:
    """The state of ``environment`` from one probe (errors are the probe's one-line ones)."""
    seen = probe(
        url,
        environment=environment,
        schema=schema,
        exclude=tuple(exclude),
        version_table=version_table,
        version_table_schema=version_table_schema,
        timeout_s=timeout_s,
        privileges=expected.privileges,
    )
    return assess_fingerprint(
        environment, seen.revisions, seen.fingerprint, expected, archived=archived,
        baseline=baseline,
    )


def snapshot_state(
    url: str | sa.URL,
    *,
    environment: str,
    expected: ExpectedSnapshots,
    archived: Collection[str] = (),
    baseline: str | None = None,
    schema: str = "public",
    exclude: Iterable[str] = (),
    version_table: str = "alembic_version",
    version_table_schema: str | None = None,
) -> Assessment:
    """The state of ``environment`` from its version rows and a full snapshot, with the diff."""
    engine = make_engine(url, label=environment)
    try:
        with connect(engine, label=environment) as conn:
            revisions = current_revisions(
                conn, version_table=version_table, schema=version_table_schema or schema
            )
            actual = snapshot_connection(
                conn,
                schema=schema,
                exclude=exclude,
                version_table=version_table,
                source=environment,
                require_tables=False,
                privileges=expected.privileges,
            )
    finally:
        engine.dispose()
    return assess_snapshot(
        environment, revisions, actual, expected, archived=archived, baseline=baseline
    )
