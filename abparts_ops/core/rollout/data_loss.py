"""Data loss as a finding: rows a revision deletes or overwrites, data it drops.

The rehearsal with rows counts on the copy, right before each statement that loses data,
how many rows or values it takes and of how many (:class:`LossCounter`, from the
statement's derived check in :mod:`.prechecks`); the transaction statistics of each
revision (``pg_stat_xact_user_tables``) add rows deleted by what no check covers (a
trigger, a function). A schema-only rehearsal gets the counts from the same checks run
read-only on the environment itself (:func:`losses_on_environment`). Only data that
existed before the pending revisions counts: a column added and backfilled by them is
not lost. Each loss becomes one finding ``data-loss`` at error
level: in an environment where error-level findings block, the upgrade is refused until
the run acknowledges ``data-loss`` after review, like a squawk rule; the counts go into
the audit record either way.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import psycopg2
import psycopg2.extensions
from pglast import ast, enums, parse_sql

from abparts_ops.core.rollout.lint import DATA_LOSS_RULE, LintFinding
from abparts_ops.core.rollout.prechecks import (
    DROP_COLUMN,
    DROP_TABLE,
    TRUNCATE,
    UPDATE,
    PreCheck,
    PreCheckResult,
    derive_prechecks,
)
from abparts_ops.core.rollout.runner import ExecutedStatement, RevisionObservation
from abparts_ops.core.schema.model import Snapshot

_VERBS = {
    "delete": "deletes",
    "update": "overwrites",
    "truncate": "truncates",
    "drop_table": "drops table",
    "drop_column": "drops column",
}


@dataclass(frozen=True)
class Loss:
    """What one revision takes: ``rows`` of ``total`` (None: unknown) in ``relation``.

    ``kind`` is ``delete``, ``update``, ``truncate``, ``drop_table`` or ``drop_column``
    (``column`` names the column; ``rows`` then counts its non-null values). ``source``
    says where the numbers come from: ``copy`` (counted on the rehearsal's copy),
    ``environment`` (read-only on the environment) or ``statistics`` (the revision's
    transaction statistics, no total).
    """

    revision: str
    kind: str
    relation: str
    rows: int
    total: int | None = None
    column: str | None = None
    statement: str = ""
    source: str = "copy"

    def sentence(self) -> str:
        """One line, e.g. ``c0ffee000002 deletes 111 of 200 rows of parts``."""
        of = f" of {self.total}" if self.total is not None else ""
        if self.kind == "drop_column":
            return (
                f"{self.revision} drops column {self.relation}.{self.column}, which holds "
                f"{self.rows}{of} non-null value(s)"
            )
        if self.kind in ("drop_table", "truncate"):
            verb = _VERBS[self.kind]
            return f"{self.revision} {verb} {self.relation}, which holds {self.rows} row(s)"
        return f"{self.revision} {_VERBS[self.kind]} {self.rows}{of} rows of {self.relation}"

    def to_dict(self) -> dict[str, object]:
        """JSON-able form."""
        return dict(self.__dict__)


def losses_from_statistics(
    observed: Mapping[str, RevisionObservation], before: Snapshot | None = None
) -> list[Loss]:
    """Rows deleted per revision from tables that existed before, from the statistics.

    Updates are left to the counted checks: the statistics cannot tell a backfill of a
    new column from an overwrite of data that was there.
    """
    losses = []
    tables = set(before.kind("table")) if before is not None else None
    for revision, seen in observed.items():
        for table, (_inserted, _updated, deleted) in sorted(seen.rows.items()):
            if deleted and (tables is None or _bare(table) in tables):
                losses.append(Loss(revision, "delete", table, deleted, source="statistics"))
    return losses


def merge_losses(counted: Iterable[Loss], statistics: Iterable[Loss]) -> list[Loss]:
    """The counted losses, plus the statistics' for what no count covers.

    A statement counted before it ran says more (its total) than the statistics of its
    revision; the statistics still catch rows lost by what was not counted (a trigger, a
    function, a statement the checks could not derive).
    """
    counted = [loss for loss in counted if loss.rows]
    covered = {(loss.revision, loss.kind, _bare(loss.relation)) for loss in counted}
    extra = [
        loss for loss in statistics
        if (loss.revision, loss.kind, _bare(loss.relation)) not in covered
    ]
    return counted + extra


def _bare(relation: str) -> str:
    return relation.rsplit(".", 1)[-1].strip('"')


def as_findings(
    losses: Iterable[Loss], files: Mapping[str, str | None] | None = None
) -> list[LintFinding]:
    """One error-level ``data-loss`` finding per loss (what blocks until acknowledged)."""
    files = files or {}
    return [
        LintFinding(
            rule=DATA_LOSS_RULE,
            level="error",
            message=loss.sentence()
            + (" (from the rehearsal's transaction statistics)" if loss.source == "statistics"
               else " (counted on the environment)" if loss.source == "environment"
               else " (counted on the rehearsal's copy)"),
            line=1,
            sql_line=0,
            revision=loss.revision,
            statement=loss.statement,
            file=files.get(loss.revision),
        )
        for loss in losses
    ]


def _columns_touched(check: PreCheck) -> list[str]:
    """The columns an UPDATE sets or an ALTER TABLE drops, read from its statement."""
    try:
        parsed = parse_sql(check.statement)
    except Exception:  # noqa: BLE001 - pglast raises its own ParseError family
        return []
    names: list[str] = []
    for raw in parsed:
        stmt = raw.stmt
        if isinstance(stmt, ast.UpdateStmt):
            names += [target.name for target in stmt.targetList or () if target.name]
        elif isinstance(stmt, ast.AlterTableStmt):
            names += [
                cmd.name for cmd in stmt.cmds or ()
                if isinstance(cmd, ast.AlterTableCmd)
                and cmd.subtype == enums.AlterTableType.AT_DropColumn and cmd.name
            ]
    return names


def existed_before(check: PreCheck, before: Snapshot) -> bool:
    """Whether what ``check`` would lose existed before the pending revisions ran.

    Rows a revision inserts and then deletes, a column it adds and backfills, a table it
    creates and drops: none of that is data the environment had, so none of it is lost.
    """
    table = _bare(check.relation)
    if table not in before.kind("table"):
        return False
    if check.kind not in (UPDATE, DROP_COLUMN):
        return True
    columns = before.kind("column")
    return any(f"{table}.{name}" in columns for name in _columns_touched(check))


class LossCounter:
    """Counts on the rehearsal's copy, right before each statement, what it will lose.

    Called by the runner before every statement a revision runs (it is a
    :data:`~.runner.StatementHook`): the statement's derived data-loss check
    (:func:`~.prechecks.derive_prechecks`) runs on the same connection and transaction,
    in a savepoint, so it sees every earlier revision's effect and changes nothing.
    ``before`` is the schema before the pending revisions (what counts as existing data).
    """

    def __init__(self, schema: str, before: Snapshot) -> None:
        self.schema = schema
        self.before = before
        self.losses: list[Loss] = []

    def __call__(self, raw: Any, revision: str | None, sql: str) -> None:
        """Count what ``sql`` (about to run for ``revision``) loses; remember it."""
        if revision is None:
            return
        for check in derive_prechecks([ExecutedStatement(revision, sql)], schema=self.schema):
            if check.failure or check.query is None or not existed_before(check, self.before):
                continue
            counted = _count(raw, check.query)
            if counted is None or not counted[0]:
                continue
            found, total = counted
            columns = _columns_touched(check) if check.kind == DROP_COLUMN else []
            self.losses.append(
                Loss(
                    revision, check.kind, _bare(check.relation), found,
                    total if check.kind not in (DROP_TABLE, TRUNCATE) else None,
                    column=columns[0] if columns else None,
                    statement=" ".join(check.statement.split())[:300],
                )
            )


def _count(raw: Any, query: str) -> tuple[int, int | None] | None:
    """``(found, total)`` of a derived check's query on ``raw``; None when it fails."""
    in_transaction = raw.get_transaction_status() != psycopg2.extensions.TRANSACTION_STATUS_IDLE
    with raw.cursor() as cur:
        try:
            if in_transaction:
                cur.execute("SAVEPOINT abparts_ops_count")
            cur.execute(query)
            row = cur.fetchone()
            if in_transaction:
                cur.execute("RELEASE SAVEPOINT abparts_ops_count")
        except psycopg2.Error:
            if in_transaction:
                cur.execute("ROLLBACK TO SAVEPOINT abparts_ops_count")
            return None
    if row is None:
        return None
    total = int(row[1]) if len(row) > 1 and row[1] is not None else None
    return int(row[0] or 0), total


def losses_on_environment(results: Iterable[PreCheckResult], before: Snapshot) -> list[Loss]:
    """The data the derived pre-checks found a schema-only-rehearsed upgrade would lose."""
    losses = []
    for result in results:
        check = result.precheck
        if not result.loses_data or not result.found or check.revision is None:
            continue
        if not existed_before(check, before):
            continue
        columns = _columns_touched(check) if check.kind == DROP_COLUMN else []
        losses.append(
            Loss(
                check.revision, check.kind, _bare(check.relation), int(result.found),
                result.total if check.kind not in (DROP_TABLE, TRUNCATE) else None,
                column=columns[0] if columns else None,
                statement=" ".join(check.statement.split())[:300],
                source="environment",
            )
        )
    return losses
