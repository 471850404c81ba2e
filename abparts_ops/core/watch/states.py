"""The states an environment can be in: declared here once, with the advice for each.

After the reset, the migration history is the reference (see
:mod:`abparts_ops.core.watch.reference`): every environment is in exactly one of these states,
shown the same way by the sensor, its observations, the checks and ``abparts-ops drift``.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum


class EnvironmentState(StrEnum):
    """One environment's state against the on-disk migration history."""

    IN_SYNC = "in_sync"
    """At the head, and the schema is what the history builds up to the head."""
    BEHIND = "behind"
    """At an older revision of the history, with that revision's schema: upgrades pending."""
    AWAITING_STAMP = "awaiting_stamp"
    """At a revision of the archived history (or none): the reset is done, its stamp not."""
    BEHIND_ARCHIVE = "behind_archive"
    """At an archived revision older than the old head, so without the baseline's schema:
    archived revisions must run before the stamp (a catch-up across the reset)."""
    UNKNOWN_REVISION = "unknown_revision"
    """A version row names an id found in no history, neither on disk nor archived."""
    SCHEMA_DRIFT = "schema_drift"
    """The schema differs from what the history builds up to the environment's revision."""
    UNREACHABLE = "unreachable"
    """The environment could not be read (connection, permission, missing URL)."""
    HISTORY_CHANGED = "history_changed"
    """Not judged yet: the revision files it is judged by changed since the expected
    schemas were built (a revision it ran was edited in place, or it is at a revision not
    built yet). Only a reader that does not build says this (the drift sensor, until
    ``refresh_history`` has run); the others build and judge against the files as they are.
    """

    @property
    def ok(self) -> bool:
        """True only in sync."""
        return self is EnvironmentState.IN_SYNC

    @property
    def requests_verification(self) -> bool:
        """True for states the drift sensor asks a verification run for.

        Schema drift and unknown revisions are found problems; behind and awaiting a stamp
        are the normal wait for the next upgrade or stamp, reported but not verified.
        """
        return self in (EnvironmentState.SCHEMA_DRIFT, EnvironmentState.UNKNOWN_REVISION)

    def advice(self, environment: str) -> str:
        """One line saying what to do about this state, for ``environment``."""
        return ADVICE[self].format(env=environment)


ADVICE: dict[EnvironmentState, str] = {
    EnvironmentState.IN_SYNC: "nothing to do.",
    EnvironmentState.BEHIND: (
        "run upgrade_{env} (or `alembic upgrade head` against {env}) to apply the pending "
        "revisions."
    ),
    EnvironmentState.AWAITING_STAMP: (
        "run stamp_{env} with `dry_run: false` to record the proven baseline (no DDL runs)."
    ),
    EnvironmentState.BEHIND_ARCHIVE: (
        "catch {env} up across the reset: run stamp_{env} with `dry_run: false, catch_up: "
        "true` (the archived revisions run, rehearsed and guarded, then the baseline is "
        "stamped in the same run); never stamp it without."
    ),
    EnvironmentState.UNKNOWN_REVISION: (
        "find where that id came from (a revision file missing from the versions folder?); "
        "if the schema equals the baseline, stamp_{env} replaces the id, else restore the "
        "missing revision file."
    ),
    EnvironmentState.SCHEMA_DRIFT: (
        "bring {env}'s schema back to its revision (undo the hand-made change), or write a "
        "revision that makes the change and apply it everywhere."
    ),
    EnvironmentState.UNREACHABLE: (
        "check that {env}'s server is running and its URL variable is set and correct "
        "(`abparts-ops doctor`)."
    ),
    EnvironmentState.HISTORY_CHANGED: (
        "let refresh_history run (revision_files_sensor requests it) or run it; the next "
        "tick judges {env} against the revision files as they are (`abparts-ops drift {env}` "
        "does now)."
    ),
}


def version_rows_text(revisions: Sequence[str] | None, *, as_metadata: bool = False) -> str:
    """An environment's version rows in words: the ids, or what stands in their place.

    ``None`` is no version table, ``()`` an empty one. ``as_metadata`` puts those two in
    parentheses, as the Dagster metadata shows them: a value starting with "(" is never a
    revision id for the readers of that metadata (the CLI's ``verify``).
    """
    if revisions:
        return ", ".join(revisions)
    words = "no version table" if revisions is None else "empty version table"
    return f"({words})" if as_metadata else words
