"""Catch-up across the reset: an environment behind on the old history, brought to the baseline.

Teams reset their history while staging, or a customer's database, is a few revisions
behind dev on the old one. Stamping it would be a lie (its schema is not the baseline's);
the archive folder the reset wrote (``versions_archive_<stamp>/``,
:mod:`abparts_ops.core.history.archive`) still holds every revision it needs.
:func:`guarded_catch_up` runs them, guarded like an upgrade
(:func:`~.upgrade.guarded_run`: the one write guard, a rehearsal on a copy of the
environment with its rows where it fits, the lint of what ran, data-loss findings, the
apply under the lock, the read-back after a failure), from the environment's archived
revision to the old head, then replaces the version rows with the proven baseline in
the same transaction, and verifies that the schema is the baseline's expected schema.
One audited run; nothing is written if any step refuses.

Refused, with the reason: an environment whose revision is in no archive (ahead of the
source, or unknown), one on a side branch of the old history that does not lead to the
old head, an archived history with several heads, one already at the old head (it only
needs its stamp), and a rehearsal whose result is not the baseline's schema.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path

import sqlalchemy as sa
from alembic.script import ScriptDirectory
from alembic.script.revision import RevisionError
from alembic.util import CommandError
from sqlalchemy.engine import Connection

from abparts_ops.core.errors import UpgradeRefused
from abparts_ops.core.history.archive import archived_revisions
from abparts_ops.core.history.migrate import current_revisions
from abparts_ops.core.history.project import AlembicProject
from abparts_ops.core.quoting import quote_always
from abparts_ops.core.rollout.runner import pending_revisions
from abparts_ops.core.rollout.upgrade import (
    RunTarget,
    UpgradePolicy,
    UpgradeResult,
    guarded_run,
)
from abparts_ops.core.rollout.write_guard import NOTHING_WRITTEN, WriteGuard
from abparts_ops.core.schema.introspect import exclusion_patterns, snapshot_connection
from abparts_ops.core.schema.model import Snapshot
from abparts_ops.core.watch.drift import versions_signature
from abparts_ops.core.watch.reference import ExpectedSnapshots


@dataclass(frozen=True)
class CatchUpPlan:
    """What a catch-up runs: the archive, the environment's revision, the old head, the
    archived revisions between them (oldest first) and the baseline it ends at."""

    archive: Path
    start: str
    old_head: str
    pending: tuple[str, ...]
    baseline: str


@dataclass(frozen=True)
class _BaselineOnly:
    """The expected schemas a catch-up knows: the old head must give the baseline's."""

    old_head: str
    baseline: Snapshot
    privileges: bool = False

    def snapshot(self, revision: str) -> Snapshot | None:
        return self.baseline if revision == self.old_head else None


def archived_project(project: AlembicProject, archive_name: str) -> AlembicProject:
    """``project`` with the archive folder ``archive_name`` as its only versions folder."""
    for folder in project.versions_dirs:
        candidate = Path(folder).parent / archive_name
        if candidate.is_dir():
            return replace(project, versions_dirs=(candidate,))
    raise UpgradeRefused(
        f"{project.label}: the archive folder {archive_name} is not beside the versions "
        f"folder any more (restore it from version control); {NOTHING_WRITTEN}."
    )


def plan_catch_up(
    project: AlembicProject,
    rows: tuple[str, ...] | None,
    *,
    baseline: str,
    environment: str,
    old_head: str | None = None,
) -> tuple[CatchUpPlan, AlembicProject, ScriptDirectory]:
    """Which archived revisions bring ``environment`` (at ``rows``) to the old head.

    ``old_head`` is the archived revision the source was at when the baseline was taken
    (default: the archived history's only head; several heads need it named).

    Raises :class:`UpgradeRefused` with the reason when there is nothing to catch up or
    the environment cannot be caught up (module doc).
    """
    if not rows or len(rows) != 1:
        raise UpgradeRefused(
            f"{environment}: a catch-up needs one revision of the archived history in the "
            f"version table, found {', '.join(rows or ()) or 'none'}; {NOTHING_WRITTEN}."
        )
    start = rows[0]
    if start == baseline:
        raise UpgradeRefused(
            f"{environment} is already at the baseline {baseline}: nothing to catch up "
            f"(upgrade it for newer revisions); {NOTHING_WRITTEN}."
        )
    archives = archived_revisions(project)
    if start not in archives:
        raise UpgradeRefused(
            f"{environment}: revision {start} is in no archived history (it is ahead of "
            "the source, or was never in this project's history): a catch-up runs only "
            f"archived revisions; {NOTHING_WRITTEN}."
        )
    old = archived_project(project, archives[start])
    script = old.script()
    heads = tuple(sorted(script.get_heads()))
    if old_head is None:
        if len(heads) != 1:
            raise UpgradeRefused(
                f"{environment}: the archived history {archives[start]} has {len(heads)} "
                f"heads ({', '.join(heads)}); name the one the source was at when the "
                f"baseline was taken with run config `catch_up_to: <revision>`; "
                f"{NOTHING_WRITTEN}."
            )
        old_head = heads[0]
    elif script.get_revision(old_head) is None:
        raise UpgradeRefused(
            f"{environment}: catch_up_to {old_head} is not a revision of the archived history "
            f"{archives[start]} (its heads: {', '.join(heads)}); {NOTHING_WRITTEN}."
        )
    if start == old_head:
        raise UpgradeRefused(
            f"{environment} is at the old head {old_head}: nothing to run, it only needs "
            f"its stamp (run stamp_{environment} without catch_up); {NOTHING_WRITTEN}."
        )
    try:
        pending = pending_revisions(script, (start,), old_head)
    except (RevisionError, CommandError):
        pending = ()
    if not pending or start not in {
        rev.revision for rev in script.iterate_revisions(old_head, "base")
    }:
        raise UpgradeRefused(
            f"{environment}: revision {start} is on a branch of the old history that does "
            f"not lead to the old head {old_head} (the baseline was taken there): it cannot "
            f"be caught up by running archived revisions; {NOTHING_WRITTEN}."
        )
    plan = CatchUpPlan(
        archive=old.versions_dirs[0], start=start, old_head=old_head, pending=pending,
        baseline=baseline,
    )
    return plan, old, script


def guarded_catch_up(
    url: str,
    *,
    environment: str,
    project: AlembicProject,
    expected: ExpectedSnapshots,
    baseline: str,
    scratch_url: str,
    guard: WriteGuard,
    old_head: str | None = None,
    policy: UpgradePolicy | None = None,
    acknowledge: Iterable[str] = (),
    dry_run: bool = True,
    exclude: Iterable[str] = (),
    schema: str = "public",
    connect_timeout: int = 5,
) -> UpgradeResult:
    """Catch ``environment`` up across the reset, then stamp the baseline (module doc).

    ``expected`` are the expected schemas of the history on disk (the baseline's among
    them); ``baseline`` the revision ``baseline_revision`` proved; ``old_head`` the
    archived revision the source was at (see :func:`plan_catch_up`). Returns the
    :class:`~.upgrade.UpgradeResult` of the run (``action`` ``caught_up``, or
    ``dry_run``); raises as :func:`~.upgrade.guarded_upgrade` does.
    """
    target = expected.snapshot(baseline)
    if target is None:
        raise UpgradeRefused(
            f"{environment}: no expected schema for the baseline {baseline} (run "
            f"refresh_history); {NOTHING_WRITTEN}."
        )
    exclude = tuple(exclude)

    def locate(conn: Connection) -> RunTarget:
        vt_schema = project.version_table_schema or schema
        rows = current_revisions(conn, version_table=project.version_table, schema=vt_schema)
        plan, old, script = plan_catch_up(
            project, rows, baseline=baseline, environment=environment, old_head=old_head
        )
        actual = snapshot_connection(
            conn, schema=schema, exclude=exclude, version_table=project.version_table,
            source=environment, privileges=expected.privileges,
        )
        return RunTarget(
            environment=environment, project=old, script=script, target=plan.old_head,
            before=(plan.start,), current=plan.start, pending=plan.pending,
            before_snapshot=actual,
            expected=_BaselineOnly(plan.old_head, target, expected.privileges),
            schema=schema, patterns=exclusion_patterns(exclude, project.version_table),
            final=baseline, epilogue=_stamp(project, vt_schema, baseline),
            epilogue_says=f"stamp the baseline {baseline} in the same transaction",
            action="caught_up",
        )

    return guarded_run(
        url, locate, environment=environment, scratch_url=scratch_url,
        policy=policy or UpgradePolicy(), guard=guard, acknowledge=acknowledge,
        dry_run=dry_run, exclude=exclude, schema=schema, privileges=expected.privileges,
        connect_timeout=connect_timeout,
    )


def _stamp(project: AlembicProject, vt_schema: str, baseline: str) -> Callable[[Connection], None]:
    """The catch-up's last step: the version rows become the baseline, nothing else."""
    table = f"{quote_always(vt_schema)}.{quote_always(project.version_table)}"

    def stamp(conn: Connection) -> None:
        conn.exec_driver_sql(f"DELETE FROM {table}")
        conn.execute(sa.text(f"INSERT INTO {table} (version_num) VALUES (:v)"), {"v": baseline})

    return stamp


_POSITIONS: dict[tuple[str, ...], tuple[object, dict[str, int]]] = {}
_POSITIONS_LOCK = threading.Lock()


def archive_positions(project: AlembicProject) -> dict[str, int]:
    """Every archived revision id -> how many archived revisions it is behind the old head.

    0 for the old head itself (a stamp records the baseline over it), N > 0 for an
    environment a catch-up can bring there, -1 for a revision that does not lead to the
    old head (a side branch) or of an archive whose head is not known (several heads).
    It is a mapping of the archived ids, so :func:`~abparts_ops.core.watch.reference.expected_for`
    takes it where it takes the ids. Cached per versions folders' signature (the reset
    writes the archives and the versions folder together).
    """
    key = tuple(map(str, project.versions_dirs))
    signature = versions_signature(project.versions_dirs)
    with _POSITIONS_LOCK:
        cached = _POSITIONS.get(key)
    if cached is not None and cached[0] == signature:
        return dict(cached[1])
    positions: dict[str, int] = {}
    by_archive: dict[str, list[str]] = {}
    for revision, archive in archived_revisions(project).items():
        by_archive.setdefault(archive, []).append(revision)
    for archive, revisions in sorted(by_archive.items()):
        positions.update(dict.fromkeys(revisions, -1))
        try:
            script = archived_project(project, archive).script()
            heads = script.get_heads()
            if len(heads) != 1:
                continue
            lineage = [rev.revision for rev in script.iterate_revisions(heads[0], "base")]
        except Exception:  # noqa: BLE001 - an archive that does not load: positions unknown
            continue
        for revision in lineage:
            positions[revision] = len(pending_revisions(script, (revision,), heads[0]))
    with _POSITIONS_LOCK:
        _POSITIONS[key] = (signature, positions)
    return dict(positions)
