"""Changes of the migration history since its expected schemas were built: said once.

The expected schemas (:mod:`abparts_ops.core.history.expected`) are built from the
revision files as they are. When the files change, two things can be true of a revision
``r`` an environment sits at:

* its expected schema is **not built yet** (a revision added after the last build, or one
  whose file, or an ancestor's, changed since): only a reader that does not build (the
  drift sensor, between the change and the refresh) meets this; the environment is then
  judged again once the expected schemas are refreshed;
* its expected schema **was rebuilt because a revision it depends on changed content**
  (same id, other file): an environment whose schema is still exactly what the *previous*
  content built there ran the old version of that revision.

:class:`RevisionChange` records either fact for one revision; :class:`HistoryDelta` is
the whole difference between a build and the files. The words every reader uses (the
sensor, the checks, ``abparts-ops drift``, the asset's metadata) are the functions below,
and only them. Pure logic: no database, no Dagster.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any


def _ids(revisions: Sequence[str], limit: int = 5) -> str:
    shown = ", ".join(revisions[:limit])
    return shown + (f" and {len(revisions) - limit} more" if len(revisions) > limit else "")


@dataclass(frozen=True)
class RevisionChange:
    """Why the expected schema at one revision is not what an earlier build said.

    ``changed`` are the revisions it depends on (itself included) whose file changed
    content under the same id; ``added`` those that were not in the earlier build.
    ``previous_probe`` is the probe fingerprint the earlier build expected at this
    revision. ``built`` is False while the expected schema here is not built from the
    files as they are now (a stale reader), True once it is.
    """

    changed: tuple[str, ...] = ()
    added: tuple[str, ...] = ()
    previous_probe: str | None = None
    built: bool = True

    def ran_before(self, fingerprint: str | None) -> bool:
        """True when ``fingerprint`` is what the earlier content built here.

        That is the evidence that an environment ran the changed revision(s) before
        they changed: its schema is exactly the previous build's expected schema.
        """
        return bool(self.changed and self.previous_probe and fingerprint == self.previous_probe)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form of a built change (``added`` and ``built`` are a reader's only)."""
        return {"changed": list(self.changed), "previous_probe": self.previous_probe}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RevisionChange:
        """Read :meth:`to_dict` output (raises KeyError/TypeError on a malformed one)."""
        changed = tuple(str(rev) for rev in data["changed"])
        previous = data.get("previous_probe")
        return cls(changed=changed, previous_probe=None if previous is None else str(previous))


def changed_after_ran(environment: str, change: RevisionChange) -> str:
    """THE words for an environment that ran a revision before its file changed.

    "revision X changed after staging ran it: compare staging with what the history
    builds now (`abparts-ops drift staging` shows the diff)".
    """
    many = len(change.changed) > 1
    return (
        f"revision{'s' if many else ''} {_ids(change.changed)} changed after {environment} "
        f"ran {'them' if many else 'it'}: compare {environment} with what the history builds "
        f"now (`abparts-ops drift {environment}` shows the diff)"
    )


def not_built_yet(environment: str, revision: str, change: RevisionChange, ran: bool) -> str:
    """THE words for an environment whose expected schema is not built from the files yet.

    ``ran`` says whether its schema is the previous build's at ``revision`` (see
    :meth:`RevisionChange.ran_before`). Only a reader that does not build says this.
    """
    after = "it is judged against the history as it is now once refresh_history has run"
    if change.changed and ran:
        return f"{changed_after_ran(environment, change)}; {after}"
    if change.changed:
        many = len(change.changed) > 1
        return (
            f"revision{'s' if many else ''} {_ids(change.changed)} changed since the expected "
            f"schemas were built, and {environment} (at {revision}) depends on "
            f"{'them' if many else 'it'}; {after}"
        )
    return (
        f"{environment} is at {revision}, whose expected schema is not built yet "
        f"(new since the expected schemas were built: {_ids(change.added)}); {after}"
    )


@dataclass(frozen=True)
class HistoryDelta:
    """How the revision files differ from the history an expected-schemas build saw.

    ``changed``: same id, other content; ``added``: ids not in the build; ``removed``:
    ids of the build no longer on disk. Each in the files' order (removed: the build's).
    """

    changed: tuple[str, ...] = ()
    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()

    @property
    def empty(self) -> bool:
        """True when the build describes the files as they are."""
        return not (self.changed or self.added or self.removed)

    def parts(self) -> list[str]:
        """The differences in words, one short phrase each (empty when none)."""
        out: list[str] = []
        if self.changed:
            many = len(self.changed) > 1
            out.append(
                f"revision{'s' if many else ''} {_ids(self.changed)} changed in place "
                "(same id, other content)"
            )
        if self.added:
            out.append(f"{len(self.added)} new revision(s): {_ids(self.added)}")
        if self.removed:
            out.append(f"{len(self.removed)} revision(s) removed: {_ids(self.removed)}")
        return out

    def line(self) -> str:
        """One line for a reader that does not build (the drift sensor)."""
        if self.empty:
            return "the expected schemas describe the revision files as they are"
        return (
            "the revision files changed since the expected schemas were built: "
            + "; ".join(self.parts())
        )
