"""Data loss as a finding: rows a revision deletes or overwrites, data it drops.

The rehearsal with rows knows, per revision, how many rows it inserted, updated and
deleted in each table (``pg_stat_xact_user_tables``, read before the revision's
transaction commits), and, counted on the copy right before each statement that
loses data, how many rows or values that statement takes and of how many
(:class:`Loss`, made by :func:`count_before` from the statement's derived check). A
schema-only rehearsal gets the same counts from read-only checks on the environment
itself (the derived pre-checks). Each loss becomes one finding ``data-loss`` at error
level: in an environment where error-level findings block, the upgrade is refused until
the run acknowledges ``data-loss`` after review, like a squawk rule; the counts go into
the audit record either way.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from abparts_ops.core.migrations.lint import DATA_LOSS_RULE, LintFinding
from abparts_ops.core.migrations.runner import RevisionObservation

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


def losses_from_statistics(observed: Mapping[str, RevisionObservation]) -> list[Loss]:
    """Rows deleted and updated per revision and table, from the transaction statistics."""
    losses = []
    for revision, seen in observed.items():
        for table, (_inserted, updated, deleted) in sorted(seen.rows.items()):
            if deleted:
                losses.append(Loss(revision, "delete", table, deleted, source="statistics"))
            if updated:
                losses.append(Loss(revision, "update", table, updated, source="statistics"))
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
