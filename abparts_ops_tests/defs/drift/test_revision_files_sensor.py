"""Real ticks of ``revision_files_sensor``: a new revision file fires it, once.

The new file goes into the package's copy of the demo project and is removed at the end.
Behaviour changed by issue 10: the sensor refreshes the reference (migration_history and
expected_schemas) and no longer requests a verification; a new revision leaves every
environment *behind* (reported by the drift sensor, not verified).
"""

from __future__ import annotations

import os

import dagster as dg

from abparts_ops.core.drift import DriftCursor
from abparts_ops.core.states import EnvironmentState
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

        # before the refresh, the drift sensor knows its reference is stale: no run
        stale = watch.tick(fresh=True)
        assert not stale.run_requests
        assert "expected_schemas is stale" in stale.skip_message

        # the requested refresh works and sees the new head
        result = refresh(watch)
        assert result.success
        history = result.output_for_node("migration_history")
        assert history.heads == (NEW_REVISION,)
        expected = result.output_for_node("expected_schemas")
        assert expected.heads == (NEW_REVISION,)

        # and the drift sensor now finds every environment behind the new head, by one
        drift = watch.tick(fresh=True)
        assert not drift.run_requests  # behind is reported, not verified
        cursor = DriftCursor.decode(drift.cursor)
        assert cursor.head == NEW_REVISION
        assert {m.status for m in cursor.environments.values()} == {EnvironmentState.BEHIND}
        assert "1 pending revision(s): " + NEW_REVISION in drift.skip_message
        assert "no schema difference" in drift.skip_message
    finally:
        new_file.unlink()
        assert refresh(watch).success
    assert watch.tick(fresh=True).skip_message.startswith("all in sync:")


def refresh(watch: Watch) -> dg.ExecuteInProcessResult:
    """Run the refresh_history job (migration_history and expected_schemas)."""
    return watch.defs.resolve_job_def("refresh_history").execute_in_process(
        instance=watch.instance, raise_on_error=False
    )
