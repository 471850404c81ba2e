"""The guarded upgrade's test setup: a small project, an environment at ``r001``.

``r001`` creates two tables; ``r002`` is the pending revision under test. The expected
schemas are computed from the history on the test server. "Nothing written" is checked
by comparing the version rows and the whole snapshot before and after (:func:`state`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from abparts_ops.core.db import connect, make_engine
from abparts_ops.core.history.expected_build import build_expected_schemas
from abparts_ops.core.history.migrate import upgrade
from abparts_ops.core.history.project import AlembicProject, load_project
from abparts_ops.core.rollout.upgrade import UpgradeResult, guarded_upgrade
from abparts_ops.core.schema.introspect import take_snapshot
from abparts_ops_tests.core.history.projects import Rev, write_project
from abparts_ops_tests.sql import version_rows

R001_UP = """
op.create_table('parts', sa.Column('id', sa.BigInteger, primary_key=True),
                sa.Column('name', sa.Text, nullable=False),
                sa.Column('notes', sa.Text))
op.create_table('orders', sa.Column('id', sa.BigInteger, primary_key=True))
"""
R001_DOWN = "op.drop_table('orders')\nop.drop_table('parts')"
ADD_COLUMN = ("op.add_column('parts', sa.Column('colour', sa.Text, nullable=True))",
              "op.drop_column('parts', 'colour')")
# Sleeps on the environment only (its database is named env_*), not on the scratch
# databases of the expected schemas and of the rehearsal.
SLEEP_ON_ENV = (
    "op.execute(\"SELECT pg_sleep(CASE WHEN current_database() LIKE 'env%' "
    "THEN 30 ELSE 0 END)\")"
)


def state(url: str) -> tuple[tuple[str, ...] | None, str]:
    """Everything an upgrade could change: the version rows and the whole snapshot."""
    return version_rows(url), take_snapshot(url, source="state").to_json()


class Setup:
    """One test's project, environment and expected schemas."""

    def __init__(self, project: AlembicProject, env_url: str, scratch_url: str) -> None:
        self.project = project
        self.env_url = env_url
        self.scratch_url = scratch_url
        self.expected = build_expected_schemas(scratch_url, project)

    def run(self, **kwargs) -> UpgradeResult:
        """guarded_upgrade of the environment with this setup's defaults."""
        options = {
            "environment": "staging",
            "project": self.project,
            "expected": self.expected,
            "scratch_url": self.scratch_url,
            **kwargs,
        }
        return guarded_upgrade(self.env_url, **options)


@pytest.fixture
def make_setup(
    tmp_path: Path, db_factory: Callable[..., str], admin_url: str
) -> Callable[..., Setup]:
    """Write a project with ``r001`` + the given ``r002``, build the env at ``r001``."""

    def make(up: str, down: str = "pass", *, extra: list[Rev] | None = None) -> Setup:
        revs = [Rev("r001", None, R001_UP, R001_DOWN), Rev("r002", "r001", up, down)]
        ini = write_project(tmp_path / "project", revs + (extra or []))
        project = load_project(ini_path=ini)
        env_url = db_factory("env")
        engine = make_engine(env_url)
        try:
            with connect(engine) as conn:
                upgrade(conn, project, "r001")
        finally:
            engine.dispose()
        return Setup(project, env_url, admin_url)

    return make


