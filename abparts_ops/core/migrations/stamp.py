"""The guarded ``alembic stamp``: the one step of the reset that writes to an environment.

In this order, inside one transaction: take a PostgreSQL advisory lock for the
environment's version table (a concurrent stamp waits a bounded time, then fails);
read the version rows; snapshot the schema and compare it with the reference (any
difference refuses the stamp); stop there on a dry run; require the confirmation of a
protected environment; replace the version rows with the baseline revision through
Alembic's ``MigrationContext`` with purge semantics (unknown ids from the old history
go); commit; re-read and verify in a new connection. The only DDL that can ever run is
the creation of a missing version table, and the result says so.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field

import sqlalchemy as sa
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError

from abparts_ops.core.db import connect, explain_error, make_engine
from abparts_ops.core.errors import StampRefused
from abparts_ops.core.migrations.migrate import current_revisions
from abparts_ops.core.schema.diff import SchemaDiff, diff_snapshots
from abparts_ops.core.schema.introspect import exclusion_patterns, fetch_rows, snapshot_from_rows
from abparts_ops.core.schema.model import Snapshot

LOCK_NAMESPACE = "abparts_ops:stamp"


@dataclass(frozen=True)
class StampResult:
    """What a stamp did (or, on a dry run, would do) to one environment.

    ``action`` is ``noop`` (already at the target), ``dry_run`` or ``stamped``.
    """

    environment: str
    action: str
    target: str
    before: tuple[str, ...] | None
    after: tuple[str, ...] | None
    purged: tuple[str, ...]
    creates_version_table: bool
    reference_fingerprint: str
    actual_fingerprint: str
    lock_wait_ms: float
    message: str
    diff: SchemaDiff | None = field(default=None, compare=False)


def _lock_key(schema: str, version_table: str) -> str:
    return f"{LOCK_NAMESPACE}:{schema}.{version_table}"


def _acquire_lock(conn: Connection, key: str, timeout_s: float, environment: str) -> float:
    started = time.perf_counter()
    deadline = started + timeout_s
    while True:
        got = conn.execute(
            sa.text("SELECT pg_try_advisory_xact_lock(hashtextextended(:key, 0))"), {"key": key}
        ).scalar()
        if got:
            return (time.perf_counter() - started) * 1000
        if time.perf_counter() >= deadline:
            raise StampRefused(
                f"{environment}: another stamp holds the lock on its version table; waited "
                f"{timeout_s:.0f} s (wait for that run to finish, then run this one again)."
            )
        time.sleep(0.1)


def _describe(revisions: tuple[str, ...] | None) -> str:
    if revisions is None:
        return "no version table"
    return ", ".join(revisions) if revisions else "empty version table"


def guarded_stamp(
    url: str | sa.URL,
    *,
    environment: str,
    script: ScriptDirectory,
    reference: Snapshot,
    exclude: Iterable[str] = (),
    schema: str = "public",
    version_table: str = "alembic_version",
    version_table_schema: str | None = None,
    protected: bool = False,
    confirm: str | None = None,
    dry_run: bool = True,
    lock_timeout_s: float = 10.0,
    connect_timeout: int = 5,
) -> StampResult:
    """Stamp ``environment`` with the single head of ``script``, guarded (see module doc).

    Raises :class:`StampRefused` (nothing written) when the history has several heads,
    the schema differs from ``reference``, a protected environment lacks
    ``confirm == environment``, or another stamp holds the lock past ``lock_timeout_s``.
    """
    heads = script.get_heads()
    if len(heads) != 1:
        raise StampRefused(
            f"{environment}: the Alembic history has {len(heads)} heads "
            f"({', '.join(sorted(heads)) or 'none'}); a stamp needs exactly one "
            "(materialize baseline_revision first)."
        )
    target = heads[0]
    known = {rev.revision for rev in script.walk_revisions()}
    vt_schema = version_table_schema or schema
    engine = make_engine(url, label=environment, connect_timeout=connect_timeout)
    try:
        with connect(engine, label=environment) as conn:
            result = _stamp_in_transaction(
                conn,
                environment=environment,
                script=script,
                target=target,
                known=known,
                reference=reference,
                patterns=exclusion_patterns(exclude, version_table),
                schema=schema,
                version_table=version_table,
                vt_schema=vt_schema,
                protected=protected,
                confirm=confirm,
                dry_run=dry_run,
                lock_timeout_s=lock_timeout_s,
            )
        if result.action != "stamped":
            return result
        with connect(engine, label=environment) as conn:
            after = current_revisions(conn, version_table=version_table, schema=vt_schema)
        if after != (target,):
            raise StampRefused(
                f"{environment}: verification after the stamp read {_describe(after)}, "
                f"expected {target} (inspect the version table; rerun the stamp)."
            )
        return StampResult(**{**result.__dict__, "after": after})
    except DBAPIError as exc:
        raise explain_error(exc, label=environment, url=url) from None
    finally:
        engine.dispose()


def _stamp_in_transaction(
    conn: Connection,
    *,
    environment: str,
    script: ScriptDirectory,
    target: str,
    known: set[str],
    reference: Snapshot,
    patterns: list[str],
    schema: str,
    version_table: str,
    vt_schema: str,
    protected: bool,
    confirm: str | None,
    dry_run: bool,
    lock_timeout_s: float,
) -> StampResult:
    if conn.in_transaction():
        conn.commit()
    with conn.begin() as transaction:
        conn.exec_driver_sql("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        waited = _acquire_lock(
            conn, _lock_key(vt_schema, version_table), lock_timeout_s, environment
        )
        before = current_revisions(conn, version_table=version_table, schema=vt_schema)
        actual = snapshot_from_rows(
            fetch_rows(conn, schema=schema, patterns=patterns), schema=schema, source=environment
        )
        diff = diff_snapshots(
            reference, actual, reference_label="reference", actual_label=environment
        )
        common = {
            "environment": environment,
            "target": target,
            "before": before,
            "purged": tuple(r for r in (before or ()) if r not in known),
            "creates_version_table": before is None,
            "reference_fingerprint": reference.fingerprint,
            "actual_fingerprint": actual.fingerprint,
            "lock_wait_ms": waited,
        }
        if not diff.is_empty:
            transaction.rollback()
            raise StampRefused(
                f"{environment}: schema differs from the reference in {len(diff.changes)} "
                "object(s); refusing to stamp (bring the schema in line, or rebuild the "
                f"baseline from a source that has these changes).\n\n{diff.to_markdown(50)}"
            )
        if before == (target,):
            transaction.rollback()
            return StampResult(
                **common,
                action="noop",
                after=before,
                message=f"{environment} is already at {target}; nothing to do.",
                diff=diff,
            )
        if dry_run:
            transaction.rollback()
            extra = " and create the version table" if before is None else ""
            return StampResult(
                **common,
                action="dry_run",
                after=None,
                message=(
                    f"dry run: would replace {_describe(before)} with {target}{extra} on "
                    f"{environment}; schema matches the reference. Nothing was written."
                ),
                diff=diff,
            )
        if protected and confirm != environment:
            transaction.rollback()
            raise StampRefused(
                f"{environment} is protected: set run config `confirm: {environment}` to "
                "stamp it (nothing was written)."
            )
        context = MigrationContext.configure(
            connection=conn,
            opts={
                "version_table": version_table,
                "version_table_schema": version_table_schema_opt(vt_schema, schema),
                "purge": True,
                "fn": lambda _rev, _ctx: script._stamp_revs(target, ()),
            },
        )
        context.run_migrations()
        transaction.commit()
    created = " (created the missing version table)" if before is None else ""
    return StampResult(
        **common,
        action="stamped",
        after=None,
        message=f"stamped {environment}: {_describe(before)} -> {target}{created}.",
        diff=diff,
    )


def version_table_schema_opt(vt_schema: str, schema: str) -> str | None:
    """Alembic's ``version_table_schema`` option: None for the default search path."""
    return None if vt_schema == schema == "public" else vt_schema
