"""The revision graph of the files on disk: order, parents, heads, content, and what changed.

Read without importing a revision file's code beyond what Alembic needs for the graph;
the fingerprint of the history is the files' content (:func:`history_fingerprint`).
"""

from __future__ import annotations

import heapq
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from alembic import util as alembic_util
from alembic.script import ScriptDirectory

from abparts_ops.core.errors import MigrationError
from abparts_ops.core.history.changes import HistoryDelta
from abparts_ops.core.history.project import (
    AlembicProject,
    load_revisions,
)
from abparts_ops.core.history.revisions import file_sha256, history_order, versions_fingerprint

log = logging.getLogger(__name__)

#: Length of the revision file hashes in an :class:`ExpectedIndex` (enough to compare).
INDEX_CONTENT_CHARS = 16

def history_fingerprint(project: AlembicProject) -> str:
    """sha256 over the revision files of ``project`` (names and contents; no import).

    :func:`~abparts_ops.core.history.revisions.versions_fingerprint` of its versions
    folders: the fingerprint ``revision_files_sensor`` watches.
    """
    return versions_fingerprint(project.versions_dirs)


# -- the graph, shared by the full result, its index and the files -----------------------


def _ancestry(
    revisions: Iterable[str],
    parents: Mapping[str, tuple[str, ...]],
    dependencies: Mapping[str, tuple[str, ...]],
) -> set[str]:
    """``revisions`` and everything they need (down revisions and dependencies)."""
    done: set[str] = set()
    stack = list(revisions)
    while stack:
        rev = stack.pop()
        if rev in done:
            continue
        done.add(rev)
        stack.extend(parents.get(rev, ()))
        stack.extend(dependencies.get(rev, ()))
    return done


def _upgrade_order(
    base_order: Sequence[str],
    parents: Mapping[str, tuple[str, ...]],
    dependencies: Mapping[str, tuple[str, ...]],
) -> tuple[str, ...]:
    """Topological order over down revisions *and* dependencies, base first.

    Among revisions ready together, the one earlier in the history's own order comes
    first, so without ``depends_on`` this is exactly the history's order.
    """
    position = {rev: i for i, rev in enumerate(base_order)}
    waiting = {
        rev: {p for p in (*parents.get(rev, ()), *dependencies.get(rev, ())) if p in position}
        for rev in base_order
    }
    children: dict[str, list[str]] = {rev: [] for rev in base_order}
    for rev, needs in waiting.items():
        for need in needs:
            children[need].append(rev)
    ready = [position[rev] for rev, needs in waiting.items() if not needs]
    heapq.heapify(ready)
    order: list[str] = []
    while ready:
        rev = base_order[heapq.heappop(ready)]
        order.append(rev)
        for child in children[rev]:
            waiting[child].discard(rev)
            if not waiting[child]:
                heapq.heappush(ready, position[child])
    return tuple(order)


def pending_in(
    order: tuple[str, ...],
    parents: Mapping[str, tuple[str, ...]],
    dependencies: Mapping[str, tuple[str, ...]],
    revisions: Sequence[str] | None,
) -> tuple[str, ...]:
    """What ``upgrade heads`` applies to a database at ``revisions`` in this graph, in order.

    No revisions (no or an empty version table) give the whole ``order``; an id the graph
    does not know raises one MigrationError line.
    """
    if not revisions:
        return order
    unknown = sorted(r for r in set(revisions) if r not in parents)
    if unknown:
        raise MigrationError(
            f"revision {', '.join(unknown)} is in no revision file of the history on disk, "
            "so what `upgrade heads` would apply cannot be said (check knows() first; "
            "stamp the environment with a revision of this history)."
        )
    done = _ancestry(revisions, parents, dependencies)
    return tuple(rev for rev in order if rev not in done)


@dataclass(frozen=True)
class HistoryGraph:
    """The revision files as they are: graph, heads and each file's sha256.

    ``order`` is the upgrade order (base first, dependencies before dependants),
    ``contents`` each revision's file hash and ``paths`` its file. ``fingerprint`` is
    :func:`history_fingerprint` of the files.
    """

    fingerprint: str
    heads: tuple[str, ...]
    order: tuple[str, ...]
    parents: Mapping[str, tuple[str, ...]]
    dependencies: Mapping[str, tuple[str, ...]]
    contents: Mapping[str, str]
    paths: Mapping[str, str] = field(default_factory=dict)

    def ancestry(self, revision: str) -> set[str]:
        """``revision`` and every revision ``upgrade revision`` applies from empty."""
        return _ancestry((revision,), self.parents, self.dependencies)


def _dependencies(script: ScriptDirectory, revisions: Iterable[str]) -> dict[str, tuple[str, ...]]:
    found: dict[str, tuple[str, ...]] = {}
    for rev in revisions:
        resolved = getattr(script.get_revision(rev), "_resolved_dependencies", ()) or ()
        deps = tuple(alembic_util.to_tuple(resolved, default=()))
        if deps:
            found[rev] = deps
    return found


def read_graph(project: AlembicProject, script: ScriptDirectory | None = None) -> HistoryGraph:
    """Read the revision files of ``project`` (through Alembic) into a :class:`HistoryGraph`.

    One load of the revisions (``script``'s, when given). Raises one MigrationError line
    on a broken history (see :func:`~abparts_ops.core.history.project.load_revisions`).
    """
    script = script or project.script()
    fingerprint = history_fingerprint(project)
    scripts = load_revisions(project, script)
    parents = {
        sc.revision: tuple(alembic_util.to_tuple(sc.down_revision, default=())) for sc in scripts
    }
    paths = {sc.revision: str(Path(sc.path).resolve()) for sc in scripts}
    dependencies = _dependencies(script, parents)
    return HistoryGraph(
        fingerprint=fingerprint,
        heads=tuple(sorted(sc.revision for sc in scripts if sc.is_head)),
        order=_upgrade_order(tuple(history_order(parents)), parents, dependencies),
        parents=parents,
        dependencies=dependencies,
        contents={rev: file_sha256(Path(path)) for rev, path in paths.items()},
        paths=paths,
    )


def _same_content(recorded: str | None, current: str | None) -> bool:
    """Whether a recorded file hash (full, or an index's prefix) is ``current``'s."""
    if not recorded or not current:
        return False
    return recorded[:INDEX_CONTENT_CHARS] == current[:INDEX_CONTENT_CHARS]


def history_delta(
    order: Sequence[str], contents: Mapping[str, str], graph: HistoryGraph
) -> HistoryDelta:
    """How ``graph`` (the files) differs from a build of revisions ``order``/``contents``."""
    built = set(order)
    return HistoryDelta(
        changed=tuple(
            rev
            for rev in graph.order
            if rev in built and not _same_content(contents.get(rev), graph.contents[rev])
        ),
        added=tuple(rev for rev in graph.order if rev not in built),
        removed=tuple(rev for rev in order if rev not in graph.parents),
    )
