"""The guarded upgrade rehearses what production will do, on the demo with rows (issue 17).

On the package's demo (baseline proven, fresh staging and prod stamped), ``parts`` holds
200 rows on both. Each test writes its revisions the normal way into the project copy
(removed at the end, so the package's other tests keep their single head), runs
``upgrade_<env>`` jobs for real, and reads the environments back: a refusal leaves the
version rows and the rows of ``parts`` as they were.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from abparts_ops.core.db import make_engine
from abparts_ops.core.schema.introspect import take_snapshot
from abparts_ops.core.watch.reference import assess_snapshot
from abparts_ops.core.watch.states import EnvironmentState
from abparts_ops.defs.upgrade_assets import UpgradeConfig, upgrade_op
from abparts_ops_tests.core.history.projects import Rev, write_rev
from abparts_ops_tests.defs.environments.conftest import (
    Pipeline,
    failure_description,
    failure_metadata,
    read_revisions,
)
from abparts_ops_tests.sql import run_sql

ROWS = (
    "INSERT INTO parts (part_number, name) "
    "SELECT 'P-' || g, 'part ' || g FROM generate_series(1, 200) g"
)


def _values(metadata: Any) -> dict[str, Any]:
    return {k: getattr(v, "value", v) for k, v in metadata.items()}


def _count(url: str, sql: str) -> int:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return int(conn.exec_driver_sql(sql).scalar() or 0)
    finally:
        engine.dispose()


class Story:
    """One test's environments, with rows, and the revisions it writes."""

    def __init__(self, pipeline: Pipeline, urls: dict[str, str]) -> None:
        self.pipeline = pipeline
        self.urls = urls
        self.written: list[Path] = []
        self.head = pipeline.baseline_revision

    def revision(self, rev: str, body: str, message: str = "a revision") -> None:
        """Write revision ``rev`` on top of the current head (the normal Alembic way)."""
        path = write_rev(
            self.pipeline.layout.versions_dir,
            Rev(rev, self.head, body, message=message, filename=f"{rev}_test.py"),
        )
        self.written.append(path)
        self.head = rev

    def upgrade(self, env: str, **config: Any) -> dg.ExecuteInProcessResult:
        """Run ``upgrade_<env>`` with ``config`` (UpgradeConfig fields)."""
        return self.pipeline.defs.resolve_job_def(f"upgrade_{env}").execute_in_process(
            instance=self.pipeline.instance,
            run_config=dg.RunConfig(ops={upgrade_op(env): UpgradeConfig(**config)}),
            raise_on_error=False,
        )

    def parts(self, env: str) -> tuple[Any, int, str]:
        """Version rows, row count and a hash of every row of ``parts`` on ``env``."""
        url = self.urls[env]
        digest = _count(
            url, "SELECT ('x' || substr(md5(string_agg(p::text, ',' ORDER BY part_number)), 1, "
            "15))::bit(60)::bigint FROM parts p",
        )
        return read_revisions(url), _count(url, "SELECT count(*) FROM parts"), str(digest)


@pytest.fixture
def story(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[Story]:
    """Fresh staging and prod, stamped, each with 200 parts."""
    monkeypatch.setenv("ABPARTS_OPS_CACHE", str(tmp_path / "cache"))
    urls = pipeline.fresh_environments(monkeypatch, names=("staging", "prod"))
    for env, extra in (("staging", {}), ("prod", {"confirm": "prod"})):
        assert pipeline.stamp(env, dry_run=False, **extra).success
        run_sql(urls[env], ROWS)
    made = Story(pipeline, urls)
    try:
        yield made
    finally:
        for path in made.written:
            path.unlink(missing_ok=True)


def test_a_check_the_rows_violate_is_refused_in_the_rehearsal(story: Story) -> None:
    """The copy has staging's rows: the CHECK fails there, naming the revision and the
    constraint; staging is not touched."""
    story.revision(
        "c0ffee000001",
        "op.create_check_constraint('ck_parts_short_name', 'parts', 'char_length(name) < 7')",
    )
    before = story.parts("staging")
    refused = story.upgrade("staging", dry_run=False)
    assert not refused.success
    description = failure_description(refused)
    assert "revision c0ffee000001" in description and "failed in the rehearsal" in description
    assert 'check constraint "ck_parts_short_name"' in description
    assert "is violated by some row" in description
    assert story.parts("staging") == before


def test_a_revision_that_commits_midway_then_fails_on_the_rows_is_refused(story: Story) -> None:
    """``COMMIT`` midway: the rehearsal runs it again as a step of its own, where its
    second half fails on the rows; staging is untouched (the half before the COMMIT
    never reached it)."""
    story.revision(
        "c0ffee000002",
        "op.add_column('parts', sa.Column('colour', sa.Text()))\n"
        "op.execute('COMMIT')\n"
        "op.execute(\"ALTER TABLE parts ALTER COLUMN description SET NOT NULL\")",
    )
    before = story.parts("staging")
    schema_before = take_snapshot(story.urls["staging"], source="staging").fingerprint
    refused = story.upgrade("staging", dry_run=False)
    assert not refused.success
    description = failure_description(refused)
    assert "revision c0ffee000002" in description
    assert 'column "description" of relation "parts" contains null values' in description
    assert story.parts("staging") == before
    assert take_snapshot(story.urls["staging"], source="staging").fingerprint == schema_before


def test_a_delete_on_prod_is_refused_with_its_count_then_applied_when_acknowledged(
    story: Story,
) -> None:
    """``data-loss``: prod (protected: error-level findings block) is refused with the
    numbers; acknowledged, it is applied and the record keeps the counts."""
    story.revision(
        "c0ffee000003",
        "op.execute(\"DELETE FROM parts WHERE substr(part_number, 3)::int > 89\")",
    )
    before = story.parts("prod")
    dry = story.upgrade("prod")
    assert dry.success
    [observation] = [
        e.asset_observation_data.asset_observation for e in dry.get_asset_observation_events()
    ]
    meta = _values(observation.metadata)
    assert "c0ffee000003 deletes 111 of 200 rows of parts" in meta["findings"]
    assert meta["blocking_rules"] == "data-loss"

    refused = story.upgrade("prod", dry_run=False, confirm="prod")
    assert not refused.success
    description = failure_description(refused)
    assert "(data-loss)" in description and "acknowledge: [data-loss]" in description
    assert "deletes 111 of 200 rows of parts" in failure_metadata(refused)["findings"]
    assert story.parts("prod") == before

    done = story.upgrade("prod", dry_run=False, confirm="prod", acknowledge=["data-loss"])
    assert done.success
    [event] = done.get_asset_materialization_events()
    meta = _values(event.materialization.metadata)
    assert meta["acknowledged"] == "data-loss"
    assert "c0ffee000003 deletes 111 of 200 rows of parts" in meta["findings"]
    assert "| `c0ffee000003` | parts | 0 | 0 | 111 |" in meta["rows_and_locks"]
    assert story.parts("prod")[1] == 89


def test_a_revision_that_cannot_render_offline_hides_no_later_rename(story: Story) -> None:
    """The second revision reads the database (it cannot render offline); the third
    renames a column. The lint reads what each really ran: the rename is named on prod
    and blocks there; acknowledged, it applies."""
    story.revision(
        "c0ffee000004",
        "if op.get_bind().exec_driver_sql('SELECT count(*) FROM parts').scalar() >= 0:\n"
        "    op.execute(\"COMMENT ON TABLE parts IS 'the catalogue'\")",
    )
    story.revision(
        "c0ffee000005",
        "op.alter_column('parts', 'manufacturer', new_column_name='maker')",
    )
    refused = story.upgrade("prod", dry_run=False, confirm="prod")
    assert not refused.success
    findings = failure_metadata(refused)["findings"]
    assert "`renaming-column` | c0ffee000005" in findings
    assert "offline-sql-unavailable" not in findings
    done = story.upgrade(
        "prod", dry_run=False, confirm="prod", acknowledge=["renaming-column"]
    )
    assert done.success and read_revisions(story.urls["prod"]) == ("c0ffee000005",)


def test_a_concurrent_index_build_is_applied_as_a_step_of_its_own(story: Story) -> None:
    """``CREATE INDEX CONCURRENTLY`` in an ``autocommit_block``: staging gets it, valid,
    in its own step; staging is in sync and the record says which step ran alone."""
    story.revision(
        "c0ffee000006",
        "with op.get_context().autocommit_block():\n"
        "    op.create_index('ix_parts_manufacturer', 'parts', ['manufacturer'],\n"
        "                    postgresql_concurrently=True)",
    )
    done = story.upgrade("staging", dry_run=False)
    assert done.success, failure_description(done)
    [event] = done.get_asset_materialization_events()
    meta = _values(event.materialization.metadata)
    assert "c0ffee000006 (step(s) of their own, autocommit)" in meta["transaction"]
    url = story.urls["staging"]
    assert read_revisions(url) == ("c0ffee000006",)
    valid = _count(
        url,
        "SELECT count(*) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
        "WHERE c.relname = 'ix_parts_manufacturer' AND i.indisvalid AND i.indisready",
    )
    assert valid == 1
    assert story.pipeline.run("refresh_history").success
    from abparts_ops.core.history.expected_cache import default_cache_dir, load_or_build_expected
    from abparts_ops.core.history.project import load_project

    settings = story.pipeline.settings
    scratch = story.pipeline.admin_url
    project = load_project(ini_path=story.pipeline.layout.alembic_ini)
    expected, _ = load_or_build_expected(
        scratch, project, exclude=settings.exclude, cache_dir=default_cache_dir()
    )
    now = take_snapshot(url, exclude=settings.exclude, source="staging")
    assessment = assess_snapshot("staging", ("c0ffee000006",), now, expected)
    assert assessment.state is EnvironmentState.IN_SYNC, assessment.reason
