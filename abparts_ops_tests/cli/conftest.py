"""Fixtures of the command-line tests: the demo, a real Dagster instance, a real reset.

Once per package: a copy of the demo Alembic project in a temporary folder with a
configuration of its own (URLs in variables only this package uses), the demo
environments on the test server, a ``DAGSTER_HOME`` holding the repository's
``dagster.yaml`` (SQLite storage: the instance a UI would show), and one
``abparts-ops reset`` launched through :func:`abparts_ops.cli.main`, as a person would.
Tests get fresh environments (clones of the demo template) with :meth:`World.fresh`.
"""

from __future__ import annotations

import contextlib
import io
import json
import shutil
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from abparts_ops.cli import main
from abparts_ops.core.db import drop_database, make_engine
from abparts_ops.core.history.migrate import current_revisions
from abparts_ops.core.settings import CONFIG_ENV
from abparts_ops.embedded.demo import (
    DemoLayout,
    build_environments,
    build_template,
    demo_database_name,
    prepare_demo_project,
)
from abparts_ops_tests.core.history.projects import Rev, write_rev
from abparts_ops_tests.demo_config import demo_config_yaml, demo_variables

REPO = Path(__file__).resolve().parents[2]
USER = "cli-tester"
VARIABLES = demo_variables("CLI")
CONFIG_YAML = demo_config_yaml("CLI")
SPEC_KEYS = {"name", "state", "revision", "expected_revision", "pending", "summary", "diff"}
"""The keys README promises in every entry of ``{"environments": [...]}``."""



def read_revisions(url: str) -> tuple[str, ...] | None:
    """The version rows of the database at ``url``."""
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return current_revisions(conn)
    finally:
        engine.dispose()


def cli(*words: str) -> tuple[int, Any]:
    """Run ``abparts-ops WORDS --json`` in this process; the exit code and the document.

    Everything the command prints on stdout must be that one JSON document.
    """
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main([*words, "--json"])
    text = out.getvalue()
    try:
        return code, json.loads(text)
    except json.JSONDecodeError as exc:
        raise AssertionError(f"stdout is not one JSON document: {text[:2000]!r}") from exc


@dataclass
class World:
    """The demo project, its instance and its environments, after a real reset."""

    admin_url: str
    layout: DemoLayout
    dagster_home: Path
    urls: dict[str, str]
    reset: dict[str, Any]
    dropped: list[str] = field(default_factory=list)

    @property
    def baseline(self) -> str:
        """The revision the reset wrote (the head, until a test adds one)."""
        return str(self.reset["baseline"]["revision"])

    def fresh(self, monkeypatch: pytest.MonkeyPatch, names: Sequence[str]) -> dict[str, str]:
        """New clones of the demo template for ``names``; their variables point at them."""
        prefix = f"clit{uuid.uuid4().hex[:8]}_"
        urls = build_environments(self.admin_url, self.layout, names=names, prefix=prefix)
        self.dropped.extend(demo_database_name(name, prefix=prefix) for name in names)
        for name, url in urls.items():
            monkeypatch.setenv(VARIABLES[name], url)
        return urls

    @contextlib.contextmanager
    def instance(self) -> Iterator[dg.DagsterInstance]:
        """The instance of ``DAGSTER_HOME``, opened as the UI's webserver would."""
        with dg.DagsterInstance.from_config(str(self.dagster_home)) as instance:
            yield instance

    def run(self, run_id: str) -> dg.DagsterRun:
        """The run ``run_id`` as the instance recorded it."""
        with self.instance() as instance:
            run = instance.get_run_by_id(run_id)
        assert run is not None, f"run {run_id} is not in the instance"
        return run

    @contextlib.contextmanager
    def revision(
        self, rev: str, *, up: str, down: str | None = None, message: str = "a new revision",
        down_sql: str = "pass",
    ) -> Iterator[Path]:
        """A revision file in the project copy for the block (then removed again)."""
        path = write_rev(
            self.layout.versions_dir,
            Rev(rev, down or self.baseline, up, down_sql, message=message,
                filename=f"{rev}_cli_test.py"),
        )
        try:
            yield path
        finally:
            path.unlink(missing_ok=True)


@pytest.fixture(scope="package")
def world(admin_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """The demo, a DAGSTER_HOME and a reset launched by ``abparts-ops reset``."""
    home = tmp_path_factory.mktemp("cli_world")
    layout = prepare_demo_project(home)
    config = layout.root / "abparts_ops_clitest.yaml"
    config.write_text(CONFIG_YAML, encoding="utf-8")
    dagster_home = home / "dagster_home"
    dagster_home.mkdir()
    shutil.copy(REPO / "dagster.yaml", dagster_home / "dagster.yaml")
    build_template(admin_url, layout)
    prefix = f"clit{uuid.uuid4().hex[:8]}_"
    names = ("dev", "staging", "prod")
    patch = pytest.MonkeyPatch()
    dropped = [demo_database_name(name, prefix=prefix) for name in names]
    try:
        urls = build_environments(admin_url, layout, names=names, prefix=prefix)
        for name, url in urls.items():
            patch.setenv(VARIABLES[name], url)
        patch.setenv(VARIABLES["scratch"], admin_url)
        patch.setenv(CONFIG_ENV, str(config))
        patch.setenv("DAGSTER_HOME", str(dagster_home))
        patch.setenv("ABPARTS_OPS_CACHE", str(home / "cache"))
        patch.setenv("ABPARTS_OPS_USER", USER)
        patch.delenv("ABPARTS_OPS_LOG", raising=False)
        code, reset = cli("reset")
        assert code == 0, reset
        yield World(admin_url, layout, dagster_home, dict(urls), reset, dropped)
    finally:
        patch.undo()
        for name in dropped:
            drop_database(admin_url, name)
