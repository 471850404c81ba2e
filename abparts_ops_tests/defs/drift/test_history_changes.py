"""Issue 19: a revision every environment already ran is edited in place (same id).

The package's demo environments are all at the head ``f2a4c6e8b0d1`` with its schema.
The head's file is then edited so that it builds another default for
``user_preferences.theme``. Before, the drift sensor kept saying "in sync" (it compared
heads only) while ``abparts-ops drift`` said ``schema_drift``. Now every reader says the
same thing in the same words, and none says in sync from a reference that no longer
matches the files: the sensor's tick before the expected schemas are rebuilt (not
judged yet), the CLI and the checks (which build them), and the sensor's tick after.
"""

from __future__ import annotations

from typing import Any

import dagster as dg
import pytest

from abparts_ops.cli import FOUND, main
from abparts_ops.core.settings import CONFIG_ENV
from abparts_ops.embedded.demo import DEMO_OLD_HEAD
from abparts_ops_tests.defs.drift.conftest import NAMES, Watch, run_sql
from abparts_ops_tests.defs.drift.test_schema_drift_sensor import (
    assert_all_in_sync,
    observations,
    verify,
)

BEFORE = 'sa.Column("theme", sa.String(length=20), server_default="light", nullable=False)'
AFTER = 'sa.Column("theme", sa.String(length=20), server_default="dark", nullable=False)'


def words(env: str) -> str:
    """The words every reader uses for an environment that ran the old content."""
    return (
        f"revision {DEMO_OLD_HEAD} changed after {env} ran it: compare {env} with what the "
        f"history builds now (`abparts-ops drift {env}` shows the diff)"
    )


def states(data: Any) -> dict[str, str]:
    return {
        env: meta["state"]
        for (env, kind), meta in observations(data).items()
        if kind == "live_revision"
    }


def test_an_applied_revision_edited_in_place_is_said_by_every_reader(
    watch: Watch, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    [path] = watch.layout.versions_dir.glob(f"{DEMO_OLD_HEAD}_*.py")
    original = path.read_text(encoding="utf-8")
    assert original.count(BEFORE) == 1
    assert_all_in_sync(watch.tick(fresh=True))
    path.write_text(original.replace(BEFORE, AFTER), encoding="utf-8")
    try:
        # 1. the sensor, before anything rebuilt the expected schemas: not judged, said
        stale = watch.tick(fresh=True)
        assert not stale.run_requests
        assert states(stale) == dict.fromkeys(NAMES, "history_changed")
        for env in NAMES:
            reason = observations(stale)[(env, "live_revision")]["reason"]
            assert reason.startswith(f"{env}: history changed: at revision {DEMO_OLD_HEAD}: ")
            assert words(env) in reason
        assert stale.skip_message.startswith("not all judged, the history changed:")
        assert (
            f"revision {DEMO_OLD_HEAD} changed in place (same id, other content)"
            in stale.skip_message
        )
        assert "in sync" not in stale.skip_message

        # 2. the CLI builds them (only the edited revision) and says it, with the diff
        monkeypatch.setenv(CONFIG_ENV, str(watch.config_path))
        assert main(["drift", "staging"]) == FOUND
        out = capsys.readouterr().out
        assert out.startswith("staging: schema_drift\n")
        assert words("staging") in out
        assert "theme" in out and "dark" in out

        # 3. the checks say it, in the same words, with the diff attached
        [request] = [
            r
            for r in watch.tick(fresh=True).run_requests
            if r.tags["abparts_ops/environment"] == "staging"
        ]
        result = verify(watch, request)
        checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
        assert checks["revision_is_head"].passed
        schema_check = checks["schema_matches_reference"]
        assert not schema_check.passed
        assert words("staging") in schema_check.description
        assert "theme" in schema_check.metadata["diff"].value

        # 4. the sensor, from the same cache: schema drift for those that ran the old
        # content, in the same words; one that has what the new content builds is in sync
        run_sql(
            watch.urls["prod"],
            "ALTER TABLE user_preferences ALTER COLUMN theme SET DEFAULT 'dark'",
        )
        after = watch.tick(fresh=True)
        assert states(after) == {
            "dev": "schema_drift",
            "staging": "schema_drift",
            "prod": "in_sync",
        }
        assert {r.tags["abparts_ops/environment"] for r in after.run_requests} == {
            "dev",
            "staging",
        }
        for env in ("dev", "staging"):
            reason = observations(after)[(env, "live_revision")]["reason"]
            assert reason.startswith(f"{env}: schema drift: {words(env)}: at revision ")
        prod = observations(after)[("prod", "live_revision")]["reason"]
        assert prod.startswith("prod: in sync: at the head ") and "changed after" not in prod
    finally:
        path.write_text(original, encoding="utf-8")
        run_sql(
            watch.urls["prod"],
            "ALTER TABLE user_preferences ALTER COLUMN theme SET DEFAULT 'light'",
        )
    result = watch.defs.resolve_job_def("refresh_history").execute_in_process(
        instance=watch.instance, raise_on_error=False
    )
    assert result.success
    assert_all_in_sync(watch.tick(fresh=True))


def test_the_refresh_says_what_it_rebuilt(watch: Watch) -> None:
    """The expected_schemas asset of an edited history: only the edited revision built."""
    [path] = watch.layout.versions_dir.glob(f"{DEMO_OLD_HEAD}_*.py")
    original = path.read_text(encoding="utf-8")
    path.write_text(original.replace(BEFORE, AFTER.replace("dark", "blue")), encoding="utf-8")
    try:
        result = watch.defs.resolve_job_def("refresh_history").execute_in_process(
            instance=watch.instance, raise_on_error=False
        )
        assert result.success
        [event] = [
            e.materialization
            for e in result.get_asset_materialization_events()
            if e.materialization.asset_key == dg.AssetKey("expected_schemas")
        ]
        meta = {k: v.value for k, v in event.metadata.items()}
        assert meta["built_revisions"] == DEMO_OLD_HEAD and meta["reused"] == 0
        assert meta["history_changes"] == (
            f"revision {DEMO_OLD_HEAD} changed in place (same id, other content)"
        )
    finally:
        path.write_text(original, encoding="utf-8")
    assert watch.defs.resolve_job_def("refresh_history").execute_in_process(
        instance=watch.instance, raise_on_error=False
    ).success
    assert_all_in_sync(watch.tick(fresh=True))
