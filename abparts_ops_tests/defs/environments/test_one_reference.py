"""Issue 19: one truth about the history, for the checks and the stamp.

On the package's demo (baseline materialized and proven): a revision applied by hand with
``alembic upgrade`` is verified green with no ``refresh_history`` in between (the checks
get the expected schemas of the files as they are, built or extended from the one
cache). And a job or check that needs the proven baseline when there is none says so in
one line, instead of a raw ``DagsterExecutionLoadInputError`` on a missing
``storage/expected_schemas`` file.
"""

from __future__ import annotations

import dagster as dg
import pytest

from abparts_ops.core.db import make_engine
from abparts_ops.core.history.migrate import upgrade
from abparts_ops.core.history.project import load_project
from abparts_ops.defs.environment_assets import StampConfig
from abparts_ops_tests.core.history.projects import Rev, write_rev
from abparts_ops_tests.defs.environments.conftest import (
    Pipeline,
    check_results,
    failure_description,
    read_revisions,
    stamp_op,
)

NEW = "e1f2a3b4c5d6"
ADD_COLUMN = 'op.add_column("parts", sa.Column("colour_code", sa.Text(), nullable=True))'
BROKEN = 'op.execute("ALTER TABLE no_such_table ADD COLUMN x integer")'
CHECKS = ("revision_is_head", "schema_matches_reference")


def _upgrade_by_hand(pipeline: Pipeline, url: str) -> None:
    """``alembic upgrade head`` against ``url`` (the project's own revisions, no guard)."""
    project = load_project(pipeline.settings.alembic.ini_path)
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            upgrade(conn, project, "heads")
    finally:
        engine.dispose()


def _sql(url: str, sql: str) -> None:
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql(sql)
    finally:
        engine.dispose()


def test_verify_is_green_right_after_a_correct_upgrade_by_hand(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch, tmp_path
) -> None:
    """Before: every check failed with "expected_schemas is stale ... run refresh_history"."""
    monkeypatch.setenv("ABPARTS_OPS_CACHE", str(tmp_path / "cache"))
    urls = pipeline.fresh_environments(monkeypatch, names=("dev", "staging", "prod"))
    for env in ("dev", "staging"):
        assert pipeline.stamp(env, dry_run=False).success
    # prod stamped by hand (`alembic stamp`): a stamp job would record its identity, and
    # the package's other tests replace prod's database
    _sql(urls["prod"], f"UPDATE alembic_version SET version_num = '{pipeline.baseline_revision}'")
    assert all(e.passed for e in pipeline.verify().get_asset_check_evaluations())
    path = write_rev(
        pipeline.layout.versions_dir,
        Rev(NEW, pipeline.baseline_revision, ADD_COLUMN, message="parts: a nullable colour code",
            filename=f"{NEW}_parts_colour_code.py"),
    )
    try:
        for env in ("dev", "staging", "prod"):
            _upgrade_by_hand(pipeline, urls[env])
            assert read_revisions(urls[env]) == (NEW,)
        checks = check_results(pipeline.verify())  # no refresh_history in between
        for env in ("dev", "staging", "prod"):
            for name in CHECKS:
                assert checks[(env, name)].passed, checks[(env, name)].description
        assert checks[("prod", "revision_is_head")].description == f"prod is at the head {NEW}."
    finally:
        path.unlink(missing_ok=True)


def test_without_a_proven_baseline_every_stamp_says_so_in_one_line(pipeline: Pipeline) -> None:
    """A failed or never-run reset: no expected_schemas output stored anywhere.

    Before: ``DagsterExecutionLoadInputError ... FileNotFoundError: .../storage/
    expected_schemas``. Now one line, and nothing written.
    """
    with dg.DagsterInstance.ephemeral() as empty:
        for env, config in (("dev", {"dry_run": False}), ("prod", {"confirm": "prod"})):
            result = pipeline.defs.resolve_job_def(f"stamp_{env}").execute_in_process(
                instance=empty,
                run_config=dg.RunConfig(ops={stamp_op(env): StampConfig(**config)}),
                raise_on_error=False,
            )
            assert not result.success
            assert failure_description(result) == (
                f"{env}: refusing to stamp: no proven baseline yet: run reset_baseline first "
                "(baseline_revision was never materialized; nothing was written)"
            )
    assert read_revisions(pipeline.urls["dev"]) != (pipeline.baseline_revision,)


def test_checks_need_a_baseline_only_when_the_history_does_not_build(
    pipeline: Pipeline,
) -> None:
    """Without a reset, the checks judge against the history on disk when it builds; when
    it does not (as the hand-written diffs of a tangled history), they say to reset."""
    with dg.DagsterInstance.ephemeral() as empty:
        verify = pipeline.defs.resolve_job_def("verify_environments")
        healthy = check_results(verify.execute_in_process(instance=empty, raise_on_error=False))
        assert set(healthy) == {(env, n) for env in ("dev", "staging", "prod") for n in CHECKS}
        assert all("not verified" not in e.description for e in healthy.values())

        path = write_rev(
            pipeline.layout.versions_dir,
            Rev(NEW, pipeline.baseline_revision, BROKEN, message="parts: a nullable colour code",
                filename=f"{NEW}_broken.py"),
        )
        try:
            broken = check_results(
                verify.execute_in_process(instance=empty, raise_on_error=False)
            )
            proven = check_results(pipeline.verify())
        finally:
            path.unlink()
    for env in ("dev", "staging", "prod"):
        for name in CHECKS:
            description = broken[(env, name)].description
            assert not broken[(env, name)].passed
            assert description.startswith(
                f"{env}: not verified: no proven baseline yet: run reset_baseline first ("
            )
            assert f"revision {NEW}" in description and "\n" not in description
            with_baseline = proven[(env, name)].description
            assert with_baseline.startswith(f"{env}: not verified: ")
            assert "no proven baseline" not in with_baseline and f"revision {NEW}" in with_baseline
