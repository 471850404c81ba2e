"""Real ticks of ``revision_files_sensor``: a new revision file fires it, once.

The new file goes into the package's copy of the demo project and is removed at the end.
Behaviour changed by issue 10: the sensor refreshes the reference (migration_history and
expected_schemas) and no longer requests a verification; a new revision leaves every
environment *behind* (reported by the drift sensor, not verified). Issue 19: until the
refresh, the drift sensor judges what the earlier build still describes and says the
history changed for the rest (never `unknown_revision`, never in sync).
"""

from __future__ import annotations

import os
from collections.abc import Callable

import dagster as dg
import sqlalchemy as sa

from abparts_ops.core.db import make_engine
from abparts_ops.core.history.migrate import downgrade, upgrade
from abparts_ops.core.history.project import AlembicProject, load_project
from abparts_ops.core.watch.drift import DriftCursor
from abparts_ops.core.watch.states import EnvironmentState
from abparts_ops.embedded.demo import DEMO_OLD_HEAD
from abparts_ops_tests.defs.drift.conftest import Watch

NEW_REVISION = "d1f7e0a0b0c1"
NEW_FILE = f'''"""add a notes column after the reset

Revision ID: {NEW_REVISION}
Revises: {DEMO_OLD_HEAD}
"""
from alembic import op
import sqlalchemy as sa

revision = "{NEW_REVISION}"
down_revision = "{DEMO_OLD_HEAD}"
branch_labels = None
depends_on = None


def upgrade():
    op.add_column("parts", sa.Column("notes", sa.Text()))


def downgrade():
    op.drop_column("parts", "notes")
'''


def test_a_new_revision_file_fires_the_sensor_once(watch: Watch) -> None:
    name = "revision_files_sensor"
    first = watch.tick(name, fresh=True)
    assert not first.run_requests
    assert first.skip_message.startswith("now watching ")
    assert str(watch.layout.versions_dir) in first.skip_message
    assert watch.tick(name).skip_message.startswith("no change in ")

    # a touch moves mtimes, not content: no run
    some_file = next(watch.layout.versions_dir.glob(f"{DEMO_OLD_HEAD}_*.py"))
    stat = some_file.stat()
    os.utime(some_file, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    touched = watch.tick(name)
    assert not touched.run_requests and "content unchanged" in touched.skip_message

    new_file = watch.layout.versions_dir / f"{NEW_REVISION}_add_notes.py"
    new_file.write_text(NEW_FILE, encoding="utf-8")
    try:
        fired = watch.tick(name)
        [request] = fired.run_requests
        assert request.job_name == "refresh_history"
        assert request.asset_selection == [
            dg.AssetKey("migration_history"),
            dg.AssetKey("expected_schemas"),
        ]
        assert watch.tick(name).skip_message.startswith("no change in ")
        # a sensor started after the change requests it too: the reference is behind
        [late] = watch.tick(name, fresh=True).run_requests
        assert late.run_key == request.run_key

        # before the refresh (issue 19): the others are behind (their revision did not
        # change, so the expected schemas still say what it builds), no run, and the
        # history's change is said once
        stale = watch.tick(fresh=True)
        assert not stale.run_requests
        lines = stale.skip_message.splitlines()
        assert lines[0] == (
            "no drift: dev: behind (1 pending); staging: behind (1 pending); "
            "prod: behind (1 pending)."
        )
        for line in lines[1:4]:
            assert "behind (1 pending): at revision " + DEMO_OLD_HEAD in line
            assert "(no schema difference)" in line and NEW_REVISION in line
        assert lines[-1].startswith(
            "the revision files changed since the expected schemas were built: "
            f"1 new revision(s): {NEW_REVISION}; run refresh_history"
        )
        # dev upgraded by hand to the new head before the refresh: not judged yet, and
        # never an unknown revision (before: `unknown_revision` in its observations)
        project = _project(watch)
        _migrate(watch.urls["dev"], lambda conn: upgrade(conn, project, NEW_REVISION))
        early = watch.tick()
        seen = {
            e.asset_key.path[0]: e.metadata["state"].value
            for e in early.asset_events
            if e.asset_key.path[-1] == "live_revision"
        }
        assert seen == {"dev": "history_changed", "staging": "behind", "prod": "behind"}
        assert early.skip_message.startswith("not all judged, the history changed:")
        assert (
            f"dev: history_changed: at revision {NEW_REVISION}: dev is at {NEW_REVISION}, "
            "whose expected schema is not built yet"
        ) in early.skip_message

        # the requested refresh works and sees the new head
        result = refresh(watch)
        assert result.success
        history = result.output_for_node("migration_history")
        assert history.heads == (NEW_REVISION,)
        [event] = [
            e.materialization
            for e in result.get_asset_materialization_events()
            if e.materialization.asset_key == dg.AssetKey("expected_schemas")
        ]
        assert event.metadata["head"].value == NEW_REVISION
        assert event.metadata["built_revisions"].value == NEW_REVISION  # only the new one

        # and the drift sensor now finds dev in sync, the others behind the new head by one
        drift = watch.tick(fresh=True)
        assert not drift.run_requests  # behind is reported, not verified
        cursor = DriftCursor.decode(drift.cursor)
        assert cursor.head == NEW_REVISION
        assert {env: m.status for env, m in cursor.environments.items()} == {
            "dev": EnvironmentState.IN_SYNC,
            "staging": EnvironmentState.BEHIND,
            "prod": EnvironmentState.BEHIND,
        }
        assert "1 pending revision(s): " + NEW_REVISION in drift.skip_message
        assert "no schema difference" in drift.skip_message
        assert "the revision files changed" not in drift.skip_message
    finally:
        project = _project(watch)
        _migrate(watch.urls["dev"], lambda conn: downgrade(conn, project, DEMO_OLD_HEAD))
        new_file.unlink()
        assert refresh(watch).success
    assert watch.tick(fresh=True).skip_message.startswith("all in sync:")


def _project(watch: Watch) -> AlembicProject:
    """The package's copy of the demo Alembic project."""
    return load_project(watch.settings.alembic.ini_path)


def _migrate(url: str, action: Callable[[sa.Connection], None]) -> None:
    """Run ``action`` (an upgrade or downgrade by hand) on a connection to ``url``."""
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            action(conn)
    finally:
        engine.dispose()


def refresh(watch: Watch) -> dg.ExecuteInProcessResult:
    """Run the refresh_history job (migration_history and expected_schemas)."""
    return watch.defs.resolve_job_def("refresh_history").execute_in_process(
        instance=watch.instance, raise_on_error=False
    )
