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

import psycopg2
import sqlalchemy as sa
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError

from abparts_ops.core.db import connect, explain_error, make_engine
from abparts_ops.core.errors import AbpartsOpsError, MigrationError, StampRefused
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


class SchemaDrift(StampRefused):
    """The environment's schema differs from the reference; ``diff`` says how."""

    def __init__(self, message: str, diff: SchemaDiff) -> None:
        super().__init__(message)
        self.diff = diff


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
                f"{timeout_s:g} s (wait for that run to finish, then run this one again)."
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
        # Not db.connect(): when the connection dies mid-transaction, the error that
        # explains it is the first one (e.g. "terminating connection due to administrator
        # command"), not the "connection already closed" of the rollback that follows.
        with engine.connect() as conn:
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
            raise MigrationError(
                f"{environment}: verification after the stamp read {_describe(after)}, "
                f"expected {target} (inspect the version table; rerun the stamp)."
            )
        return StampResult(**{**result.__dict__, "after": after})
    except (DBAPIError, psycopg2.Error) as exc:
        raise _explain(exc, environment, url) from None
    finally:
        engine.dispose()


def _explain(exc: BaseException, environment: str, url: str | sa.URL) -> AbpartsOpsError:
    """One safe line for a database error raised while stamping.

    When the connection dies mid-transaction, the rollback that follows fails again
    ("connection already closed") and hides the error that explains it: use the first
    one in the chain, or the safe error already made from it (e.g. by ``fetch_rows``).
    """
    first: BaseException = exc
    seen: set[int] = set()
    current: BaseException | None = exc.__context__
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, AbpartsOpsError):
            return current
        if isinstance(current, (DBAPIError, psycopg2.Error)):
            first = current
        current = current.__context__
    return explain_error(first, label=environment, url=url)


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
        # READ COMMITTED, not REPEATABLE READ: a repeatable-read snapshot would be taken by
        # the first lock attempt, so a stamp that waited for another one would read the
        # version rows as they were *before* that stamp committed. Each statement below
        # runs after the lock is held and sees every committed stamp; the catalog query
        # is a single statement, so the schema snapshot is consistent in itself.
        conn.exec_driver_sql("SET TRANSACTION ISOLATION LEVEL READ COMMITTED")
        # Bound every lock wait of this transaction (the version table's row and table
        # locks, e.g. behind a concurrent `alembic upgrade`), not only the advisory lock.
        conn.exec_driver_sql(f"SET LOCAL lock_timeout = {max(1, int(lock_timeout_s * 1000))}")
        waited = _acquire_lock(
            conn, _lock_key(vt_schema, version_table), lock_timeout_s, environment
        )
        before = current_revisions(conn, version_table=version_table, schema=vt_schema)
        actual = snapshot_from_rows(
            fetch_rows(conn, schema=schema, patterns=patterns, label=environment),
            schema=schema,
            source=environment,
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
            raise SchemaDrift(
                f"{environment}: schema differs from the reference in {len(diff.changes)} "
                "object(s); refusing to stamp (bring the schema in line, or rebuild the "
                f"baseline from a source that has these changes).\n\n{diff.to_markdown(50)}",
                diff,
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
