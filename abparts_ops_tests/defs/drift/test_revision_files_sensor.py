"""Real ticks of ``revision_files_sensor``: a new revision file fires it, once.

The new file goes into the package's copy of the demo project and is removed at the end.
"""

from __future__ import annotations

import os

import dagster as dg

from abparts_ops.core.drift import REVISION_DRIFT, DriftCursor
from abparts_ops.defs.sensors import ENVIRONMENT_TAG
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
        requests = {r.job_name: r for r in fired.run_requests}
        assert set(requests) == {"refresh_history", "verify_environments"}
        assert requests["refresh_history"].asset_selection == [dg.AssetKey("migration_history")]
        assert not requests["verify_environments"].asset_check_keys  # every environment
        assert requests["refresh_history"].run_key != requests["verify_environments"].run_key
        assert watch.tick(name).skip_message.startswith("no change in ")

        # the requested refresh works and sees the new head
        result = watch.defs.resolve_job_def("refresh_history").execute_in_process(
            instance=watch.instance, raise_on_error=False
        )
        assert result.success
        history = result.output_for_node("migration_history")
        assert history.heads == (NEW_REVISION,)

        # and the drift sensor now finds every target behind the new head
        drift = watch.tick(fresh=True)
        requested = {r.tags[ENVIRONMENT_TAG] for r in drift.run_requests}
        assert requested == {"staging", "prod"}  # dev is the source: reported, never verified
        cursor = DriftCursor.decode(drift.cursor)
        assert cursor.head == NEW_REVISION
        assert {m.status for m in cursor.environments.values()} == {REVISION_DRIFT}
    finally:
        new_file.unlink()
    assert watch.tick(fresh=True).skip_message.startswith("all in sync:")
