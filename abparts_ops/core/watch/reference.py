"""The one reference: what an environment should look like, and which state it is in.

After the reset the migration history is the reference. An environment at revision ``r``
must have the schema the on-disk history builds up to ``r`` (the *expected schemas*,
computed once per history on a scratch database, see
:mod:`abparts_ops.core.history.expected`). :func:`expected_for` reads an
environment's version rows and says which revision's schema it must have;
:func:`assess_fingerprint` (the sensor: a probe fingerprint, no diff) and
:func:`assess_snapshot` (the checks, the CLI and the stamp guard: a full snapshot, with
the diff) then put it in exactly one :class:`~abparts_ops.core.watch.states.EnvironmentState`.

The rules, in this order:

1. A row names an id found in no history (neither on disk nor in an archive folder):
   **unknown revision**. Its schema is still compared with the baseline, the revision a
   stamp would write, and the reason says whether a stamp could replace the id.
2. No version table, an empty one, or a row of the archived history: the reset is done
   and this environment's stamp is not. Its schema must equal the baseline's (what the
   stamp needs): **awaiting stamp** when it does, **schema drift** (diff against the
   baseline) when it does not.
3. One row ``r`` of the on-disk history: the schema must equal ``expected(r)``. When it
   does: **in sync** if ``r`` is the single head, else **behind** (the pending revisions
   listed). When it does not: **schema drift** against ``r`` (pending listed as well).
4. Several rows, all in the history (branches applied side by side): **behind**; the
   schema is not compared (the expected schemas follow one line of revisions), the
   reason says to merge the heads.

History changes come first and are said in the words of
:mod:`abparts_ops.core.history.changes`: when the expected schema of the revision an
environment is judged by is not built from the files as they are (only a reader that does
not build meets this: :class:`~abparts_ops.core.history.expected.StaleIndex`), it is
**history changed**, never in sync; and when its schema differs from the expected one but
is exactly what the *previous* content of a changed revision built, the schema drift
says "revision X changed after <env> ran it: compare ...".

The baseline is the revision ``baseline_revision`` proved, when known; otherwise the root
of the on-disk history (after a reset they are the same revision). Pure logic: no
database, no Dagster.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from abparts_ops.core.history.changes import RevisionChange, changed_after_ran, not_built_yet
from abparts_ops.core.schema.diff import SchemaDiff, diff_snapshots
from abparts_ops.core.schema.model import Snapshot
from abparts_ops.core.watch.states import EnvironmentState


class ExpectedView(Protocol):
    """What the reference needs of the expected schemas (their index is enough).

    Satisfied by :class:`~abparts_ops.core.history.expected.ExpectedSchemas` and by its
    JSON-able index (no snapshots), which the sensor reads from the asset's metadata.
    """

    @property
    def heads(self) -> tuple[str, ...]: ...

    @property
    def order(self) -> tuple[str, ...]: ...

    @property
    def privileges(self) -> bool:
        """Whether the expected schemas include granted privileges (read them alike)."""
        ...

    def knows(self, revision: str) -> bool: ...

    def pending(self, revisions: Sequence[str]) -> tuple[str, ...]: ...

    def probe_fingerprint(self, revision: str) -> str | None: ...

    def change(self, revision: str) -> RevisionChange | None:
        """Why the expected schema at ``revision`` is not an earlier build's (None: it is)."""
        ...


class ExpectedSnapshots(ExpectedView, Protocol):
    """The expected schemas with their snapshots (for a diff)."""

    def snapshot(self, revision: str) -> Snapshot | None: ...


def describe_revisions(revisions: Sequence[str] | None) -> str:
    """Human words for an environment's version rows."""
    if revisions is None:
        return "no version table"
    if not revisions:
        return "an empty version table"
    if len(revisions) == 1:
        return f"revision {revisions[0]}"
    return f"{len(revisions)} revisions ({', '.join(revisions)})"


def _short(value: str | None, n: int = 12) -> str:
    return "-" if value is None else value[:n]


@dataclass(frozen=True)
class Expectation:
    """What an environment with these version rows should look like.

    ``expected_revision`` is the revision whose schema it must have (None when none can
    be named: no baseline, several rows); ``kind`` is ``"history"`` (rows of the on-disk
    history), ``"awaiting_stamp"`` (none, or archived ids) or ``"unknown"`` (an id in no
    history). ``pending`` lists the revisions between its rows and the head, in order.
    """

    revisions: tuple[str, ...] | None
    kind: str
    expected_revision: str | None
    head: str | None
    baseline: str | None
    pending: tuple[str, ...] = ()
    unknown_ids: tuple[str, ...] = ()
    archived_ids: tuple[str, ...] = ()
    archive_behind: int = 0


def baseline_of(expected: ExpectedView, baseline: str | None = None) -> str | None:
    """The baseline revision: ``baseline`` when the history knows it, else the history's root."""
    if baseline and expected.knows(baseline):
        return baseline
    order = tuple(expected.order)
    return order[0] if order else None


def expected_for(
    revisions: Sequence[str] | None,
    expected: ExpectedView,
    *,
    archived: Collection[str] = (),
    baseline: str | None = None,
) -> Expectation:
    """THE answer to "what should an environment with these version rows look like?".

    ``revisions`` are its version rows (None: no version table); ``expected`` the
    expected schemas of the on-disk history; ``archived`` the ids of the archived
    history (or, from :func:`~abparts_ops.core.rollout.catch_up.archive_positions`,
    each id mapped to how many archived revisions it is behind the old head); ``baseline``
    the revision ``baseline_revision`` proved (see the module docstring for the rules).
    """
    rows = None if revisions is None else tuple(revisions)
    heads = tuple(expected.heads)
    head = heads[0] if len(heads) == 1 else None
    base = baseline_of(expected, baseline)
    archived_set = set(archived)
    in_history = tuple(r for r in rows or () if expected.knows(r))
    archived_ids = tuple(r for r in rows or () if r not in in_history and r in archived_set)
    unknown = tuple(r for r in rows or () if r not in in_history and r not in archived_set)
    common = {"revisions": rows, "head": head, "baseline": base}
    if unknown:
        return Expectation(
            kind="unknown",
            expected_revision=base,
            unknown_ids=unknown,
            archived_ids=archived_ids,
            **common,
        )
    if not rows or archived_ids:
        pending = tuple(expected.pending((base,))) if base else ()
        behind = (
            max((int(archived.get(r, 0) or 0) for r in archived_ids), default=0)
            if isinstance(archived, Mapping)
            else 0
        )
        return Expectation(
            kind="awaiting_stamp",
            expected_revision=base,
            archived_ids=archived_ids,
            pending=pending,
            archive_behind=behind,
            **common,
        )
    pending = tuple(expected.pending(rows))
    return Expectation(
        kind="history",
        expected_revision=rows[0] if len(rows) == 1 else None,
        pending=pending,
        **common,
    )


@dataclass(frozen=True)
class Assessment:
    """One environment in exactly one state, with the reason and what it was judged on.

    ``schema_matches`` is None when the schema was not compared (unreachable, no expected
    revision or fingerprint). ``diff`` is set by :func:`assess_snapshot` only.
    """

    environment: str
    state: EnvironmentState
    reason: str
    revisions: tuple[str, ...] | None = None
    expected_revision: str | None = None
    expected_fingerprint: str | None = None
    actual_fingerprint: str | None = None
    head: str | None = None
    baseline: str | None = None
    pending: tuple[str, ...] = ()
    unknown_ids: tuple[str, ...] = ()
    archived_ids: tuple[str, ...] = ()
    schema_matches: bool | None = None
    diff: SchemaDiff | None = field(default=None, compare=False)
    change: RevisionChange | None = None
    """The change of the history behind this state, when one is (see the module doc)."""

    @property
    def advice(self) -> str:
        """What to do about this state, one line."""
        return self.state.advice(self.environment)

    @property
    def summary(self) -> str:
        """The reason, followed by the advice unless in sync."""
        return self.reason if self.state.ok else f"{self.reason}; {self.advice}"

    @property
    def at_head(self) -> bool:
        """True when the version rows are exactly the single head."""
        return self.head is not None and self.revisions == (self.head,)


def unreachable(environment: str, error: str) -> Assessment:
    """The assessment of an environment that could not be read (``error``: one safe line)."""
    detail = error[len(environment) + 2 :] if error.startswith(f"{environment}: ") else error
    return Assessment(
        environment=environment,
        state=EnvironmentState.UNREACHABLE,
        reason=f"{environment}: unreachable: {detail}",
    )


def _pending_words(pending: Sequence[str]) -> str:
    if not pending:
        return "no revision pending"
    more = f" and {len(pending) - 10} more" if len(pending) > 10 else ""
    shown = ", ".join(pending[:10]) + more
    return f"{len(pending)} pending revision(s): {shown}"


def _judge(
    environment: str,
    expectation: Expectation,
    *,
    matches: bool | None,
    actual_fingerprint: str | None,
    expected_fingerprint: str | None,
    difference: str,
    diff: SchemaDiff | None = None,
    change: RevisionChange | None = None,
) -> Assessment:
    """Put an expectation and a schema comparison into one state with its reason."""
    e = expectation
    at = describe_revisions(e.revisions)
    vs = f"(probe {_short(actual_fingerprint)}, expected {_short(expected_fingerprint)})"
    ran = change is not None and change.ran_before(actual_fingerprint)
    because = (
        f"{changed_after_ran(environment, change)}: "
        if change is not None and change.built and ran and matches is False
        else ""
    )
    if (
        change is not None
        and not change.built
        and e.expected_revision is not None
        and e.kind in ("history", "awaiting_stamp")
    ):
        state = EnvironmentState.HISTORY_CHANGED
        words = not_built_yet(environment, e.expected_revision, change, ran)
        reason = f"{environment}: history changed: at {at}: {words}"
    elif e.kind == "unknown":
        ids = ", ".join(e.unknown_ids)
        if matches is True:
            schema = f"its schema equals the baseline {e.expected_revision}"
        elif matches is False:
            schema = (
                f"its schema also differs from the baseline {e.expected_revision}: {difference}"
            )
        else:
            schema = "schema not compared (no baseline known)"
        state = EnvironmentState.UNKNOWN_REVISION
        reason = f"{environment}: unknown revision: at {at}; {ids} is in no history; {schema}"
    elif e.kind == "awaiting_stamp":
        what = (
            f"archived revision {', '.join(e.archived_ids)}" if e.archived_ids else at
        )
        if matches is False and e.archive_behind > 0:
            state = EnvironmentState.BEHIND_ARCHIVE
            reason = (
                f"{environment}: behind the reset: at {what}, {e.archive_behind} archived "
                f"revision(s) before the baseline {e.expected_revision}; its schema is not the "
                "baseline's yet (catch it up, then it is stamped)"
            )
        elif matches is False:
            state = EnvironmentState.SCHEMA_DRIFT
            reason = (
                f"{environment}: schema drift: {because}at {what} (awaiting its stamp), and its "
                f"schema differs from the baseline {e.expected_revision} the stamp needs: "
                f"{difference}"
            )
        else:
            state = EnvironmentState.AWAITING_STAMP
            schema = (
                f"schema equals the baseline {e.expected_revision}"
                if matches
                else "schema not compared"
            )
            reason = f"{environment}: awaiting its stamp: at {what}; {schema}"
    elif e.expected_revision is None:
        state = EnvironmentState.BEHIND
        reason = (
            f"{environment}: behind: at {at} (branches side by side; schema not compared), "
            f"{_pending_words(e.pending)}; merge the heads (`alembic merge heads`)"
        )
    elif matches is False:
        state = EnvironmentState.SCHEMA_DRIFT
        pending = f"; {_pending_words(e.pending)}" if e.pending else ""
        reason = (
            f"{environment}: schema drift: {because}at {at}, the schema differs from what the "
            f"history builds up to {e.expected_revision}: {difference}{pending}"
        )
    elif e.head is not None and e.revisions == (e.head,):
        state = EnvironmentState.IN_SYNC
        schema = "schema matches it" if matches else "schema not compared"
        reason = f"{environment}: in sync: at the head {e.head}, {schema}"
    else:
        state = EnvironmentState.BEHIND
        schema = (
            f"schema matches {e.expected_revision} (no schema difference)"
            if matches
            else "schema not compared"
        )
        reason = (
            f"{environment}: behind: at {at}, {schema}; head {e.head or '(several heads)'}, "
            f"{_pending_words(e.pending)}"
        )
    if matches is False and diff is None:
        reason = f"{reason} {vs}"
    return Assessment(
        environment=environment,
        state=state,
        reason=reason,
        revisions=e.revisions,
        expected_revision=e.expected_revision,
        expected_fingerprint=expected_fingerprint,
        actual_fingerprint=actual_fingerprint,
        head=e.head,
        baseline=e.baseline,
        pending=e.pending,
        unknown_ids=e.unknown_ids,
        archived_ids=e.archived_ids,
        schema_matches=matches,
        diff=diff,
        change=change,
    )


def _change(expected: ExpectedView, revision: str | None) -> RevisionChange | None:
    if revision is None:
        return None
    lookup = getattr(expected, "change", None)  # views written before history changes
    return lookup(revision) if lookup is not None else None


def assess_fingerprint(
    environment: str,
    revisions: Sequence[str] | None,
    fingerprint: str,
    expected: ExpectedView,
    *,
    archived: Collection[str] = (),
    baseline: str | None = None,
) -> Assessment:
    """Classify from a probe fingerprint (the sensor's cheap path; no diff).

    The schema matches when ``fingerprint`` equals the probe fingerprint of the expected
    revision's schema; it is not compared when that revision has none.
    """
    expectation = expected_for(revisions, expected, archived=archived, baseline=baseline)
    wanted = (
        expected.probe_fingerprint(expectation.expected_revision)
        if expectation.expected_revision
        else None
    )
    matches = None if wanted is None else fingerprint == wanted
    return _judge(
        environment,
        expectation,
        matches=matches,
        actual_fingerprint=fingerprint,
        expected_fingerprint=wanted,
        difference="fingerprints differ",
        change=_change(expected, expectation.expected_revision),
    )


def assess_snapshot(
    environment: str,
    revisions: Sequence[str] | None,
    actual: Snapshot,
    expected: ExpectedSnapshots,
    *,
    archived: Collection[str] = (),
    baseline: str | None = None,
) -> Assessment:
    """Classify from a full snapshot (checks, CLI, stamp guard): the diff comes with it."""
    expectation = expected_for(revisions, expected, archived=archived, baseline=baseline)
    diff: SchemaDiff | None = None
    matches: bool | None = None
    wanted: str | None = None
    difference = ""
    reference = (
        expected.snapshot(expectation.expected_revision)
        if expectation.expected_revision is not None
        else None
    )
    if reference is not None:
        wanted = reference.probe_fingerprint
        diff = diff_snapshots(
            reference,
            actual,
            reference_label=f"expected at {expectation.expected_revision}",
            actual_label=environment,
        )
        matches = diff.is_empty
        difference = f"{len(diff.changes)} differing object(s)"
    return _judge(
        environment,
        expectation,
        matches=matches,
        actual_fingerprint=actual.probe_fingerprint,
        expected_fingerprint=wanted,
        difference=difference,
        diff=diff,
        change=_change(expected, expectation.expected_revision),
    )
