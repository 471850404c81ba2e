"""Catch-up across the reset (issue 18.3): archived revisions, then the baseline's stamp.

An old history (``o1 -> o2a, o2b -> o3 (merge) -> o4``, plus a side branch ``o1 -> ox``)
sits in ``versions_archive_<stamp>/``; the new history is one baseline ``b001`` that
builds what ``o4`` built. An environment left at ``o1`` (or ``o3``) is caught up: the
archived revisions run, guarded and rehearsed, then the version row becomes ``b001`` in
the same transaction, and the schema read back is the baseline's. Every refusal is read
back: version rows and schema unchanged.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from abparts_ops.core.db import connect, make_engine
from abparts_ops.core.errors import UpgradeRefused
from abparts_ops.core.history.expected_build import build_expected_schemas
from abparts_ops.core.history.migrate import upgrade
from abparts_ops.core.history.project import AlembicProject, load_project
from abparts_ops.core.rollout.catch_up import archived_project, guarded_catch_up
from abparts_ops.core.rollout.write_guard import WriteGuard
from abparts_ops.core.schema.introspect import take_snapshot
from abparts_ops.core.watch.reference import assess_snapshot
from abparts_ops.core.watch.states import EnvironmentState
from abparts_ops_tests.core.history.projects import Rev, write_project, write_rev
from abparts_ops_tests.core.rollout.upgrade_setup import state
from abparts_ops_tests.sql import run_sql, version_rows

ARCHIVE = "versions_archive_20261201_120000"
OLD = [
    Rev("o1", None, "op.create_table('parts', sa.Column('id', sa.BigInteger, primary_key=True),"
        " sa.Column('name', sa.Text))"),
    Rev("o2a", "o1", "op.add_column('parts', sa.Column('colour', sa.Text))"),
    Rev("o2b", "o1", "op.create_table('orders', sa.Column('id', sa.BigInteger, primary_key=True))"),
    Rev("o3", ("o2a", "o2b"), "pass"),
    Rev("o4", "o3", "op.execute('DELETE FROM parts WHERE name IS NULL')\n"
        "op.alter_column('parts', 'name', nullable=False)"),
    Rev("ox", "o1", "op.add_column('parts', sa.Column('side', sa.Integer))"),
]
REVIEWED = ["adding-not-nullable-field", "data-loss"]  # o4's findings, reviewed
BASELINE = Rev(
    "b001", None,
    "op.create_table('parts', sa.Column('id', sa.BigInteger, primary_key=True),"
    " sa.Column('name', sa.Text, nullable=False), sa.Column('colour', sa.Text))\n"
    "op.create_table('orders', sa.Column('id', sa.BigInteger, primary_key=True))",
)


class World:
    """The reset project (baseline + archive), its expected schemas, an environment."""

    def __init__(self, project: AlembicProject, scratch: str, make_env: Callable[..., str]):
        self.project = project
        self.scratch = scratch
        self.expected = build_expected_schemas(scratch, project)
        self.make_env = make_env

    def env_at(self, revision: str, rows: str = "") -> str:
        """A new environment upgraded on the OLD history to ``revision`` (with ``rows``)."""
        url = self.make_env("env")
        old = archived_project(self.project, ARCHIVE)
        engine = make_engine(url)
        try:
            with connect(engine) as conn:
                upgrade(conn, old, revision)
        finally:
            engine.dispose()
        if rows:
            run_sql(url, rows)
        return url

    def catch_up(self, url: str, **kwargs) -> object:
        """guarded_catch_up of ``url`` as staging (kwargs override)."""
        options = {
            "environment": "staging", "project": self.project, "expected": self.expected,
            "baseline": "b001", "scratch_url": self.scratch,
            "guard": WriteGuard("staging"), "old_head": "o4", "acknowledge": REVIEWED,
            **kwargs,
        }
        return guarded_catch_up(url, **options)


@pytest.fixture
def world(tmp_path: Path, db_factory: Callable[..., str], admin_url: str) -> World:
    ini = write_project(tmp_path / "project", [BASELINE])
    archive = tmp_path / "project" / "migrations" / ARCHIVE
    archive.mkdir()
    for rev in OLD:
        write_rev(archive, rev)
    return World(load_project(ini_path=ini), admin_url, db_factory)


def test_behind_by_several_with_a_merge_is_caught_up_and_stamped(world: World) -> None:
    """At o1 with rows: o2a, o2b, the merge o3 and o4 run (o4 deletes the nameless row,
    counted), then the version row is b001; the schema read back is the baseline's."""
    url = world.env_at("o1", "INSERT INTO parts VALUES (1, 'bolt'), (2, NULL), (3, 'nut')")
    dry = world.catch_up(url)
    assert dry.action == "dry_run" and sorted(dry.pending) == ["o2a", "o2b", "o3", "o4"]
    assert "then stamp the baseline b001 in the same transaction" in dry.message
    assert "o4 deletes 1 of 3 rows of parts" in " ".join(f.message for f in dry.findings)
    assert version_rows(url) == ("o1",)

    done = world.catch_up(url, dry_run=False)
    assert done.action == "caught_up" and done.after == ("b001",)
    assert [a.revision for a in done.applied] == list(dry.pending)
    assert version_rows(url) == ("b001",)
    now = take_snapshot(url, source="staging")
    assessment = assess_snapshot("staging", ("b001",), now, world.expected)
    assert assessment.state is EnvironmentState.IN_SYNC, assessment.reason


def test_behind_by_one_is_caught_up(world: World) -> None:
    url = world.env_at("o3")
    done = world.catch_up(url, dry_run=False)
    assert [a.revision for a in done.applied] == ["o4"] and version_rows(url) == ("b001",)


def test_a_side_branch_is_refused_with_nothing_written(world: World) -> None:
    url = world.env_at("ox")
    before = state(url)
    for dry_run in (True, False):
        with pytest.raises(UpgradeRefused, match="on a branch of the old history that does"):
            world.catch_up(url, dry_run=dry_run)
    assert state(url) == before


def test_a_protected_environment_without_confirm_is_refused(world: World) -> None:
    url = world.env_at("o1")
    before = state(url)
    with pytest.raises(UpgradeRefused, match="prod is protected: set run config `confirm: prod`"):
        world.catch_up(url, environment="prod", guard=WriteGuard("prod", protected=True),
                       dry_run=False)
    assert state(url) == before
    done = world.catch_up(url, environment="prod", dry_run=False,
                          guard=WriteGuard("prod", protected=True, confirm="prod"))
    assert done.after == ("b001",)


def test_a_revision_in_no_archive_or_already_at_the_old_head_is_refused(world: World) -> None:
    url = world.env_at("o4")
    before = state(url)
    with pytest.raises(UpgradeRefused, match=r"has 2 heads \(o4, ox\); name the one"):
        world.catch_up(url, old_head=None, dry_run=False)
    with pytest.raises(UpgradeRefused, match="at the old head o4: nothing to run"):
        world.catch_up(url, dry_run=False)
    run_sql(url, "UPDATE alembic_version SET version_num = 'feedface0001'")
    with pytest.raises(UpgradeRefused, match="feedface0001 is in no archived history"):
        world.catch_up(url, dry_run=False)
    assert state(url)[1] == before[1]


def test_a_catch_up_whose_result_is_not_the_baseline_is_refused(world: World) -> None:
    """A hand-made column on the environment survives the archived revisions: the
    rehearsal's result is not the baseline's schema, so nothing is written."""
    url = world.env_at("o1", "ALTER TABLE parts ADD COLUMN by_hand int")
    before = state(url)
    with pytest.raises(UpgradeRefused, match="differs from the head's expected schema"):
        world.catch_up(url, dry_run=False)
    assert state(url) == before
