"""Fixtures of the environment tests: the demo, its baseline, and a Dagster instance.

Once per package: a copy of the demo Alembic project in a temporary folder, a
configuration file of our own next to it (URLs in variables only this package uses), the
demo template on the test server, a source (``dev``) environment, one Dagster instance
and a real ``reset_baseline`` run (the baseline written into the copy and proven).
Tests then get fresh ``staging``/``prod`` databases (clones of the template, prod at a
revision the history does not know) through :func:`Pipeline.fresh_environments`.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import dagster as dg
import pytest

from abparts_ops.core.db import drop_database, make_engine
from abparts_ops.core.history.migrate import current_revisions
from abparts_ops.core.rollout.identity import database_identity
from abparts_ops.core.settings import Settings, load_settings
from abparts_ops.definitions import build_definitions
from abparts_ops.defs.environment_assets import StampConfig
from abparts_ops.embedded.demo import (
    DemoLayout,
    build_environments,
    build_template,
    demo_database_name,
    prepare_demo_project,
)
from abparts_ops_tests.demo_config import demo_config_yaml, demo_variables

VARIABLES = demo_variables("ENVTEST")
CONFIG_YAML = demo_config_yaml("ENVTEST")


def stamp_op(environment: str) -> str:
    """Op name of ``<env>/alembic_stamp`` (for run config)."""
    return f"{environment}__alembic_stamp"


def read_revisions(url: str) -> tuple[str, ...] | None:
    """The version rows of the database at ``url``."""
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return current_revisions(conn)
    finally:
        engine.dispose()


@dataclass
class Pipeline:
    """The demo project, its definitions and instance, with the baseline materialized."""

    admin_url: str
    layout: DemoLayout
    settings: Settings
    defs: dg.Definitions
    instance: dg.DagsterInstance
    baseline_run_id: str
    urls: dict[str, str]
    dropped: list[str] = field(default_factory=list)
    replaced: dict[str, str] = field(default_factory=dict)
    """Protected environment -> identity key of the fresh database now behind its name."""

    @property
    def baseline_revision(self) -> str:
        """The revision the reset wrote (the single head of the project copy)."""
        event = self.instance.get_latest_materialization_event(dg.AssetKey("baseline_revision"))
        assert event is not None and event.asset_materialization is not None
        return str(event.asset_materialization.metadata["revision"].value)

    def run(
        self,
        job: str,
        *,
        run_config: Any = None,
        tags: dict[str, str] | None = None,
        asset_selection: Sequence[dg.AssetKey] | None = None,
    ) -> dg.ExecuteInProcessResult:
        """Execute job ``job`` in process on the instance; failures are returned, not raised."""
        job_def = (
            self.defs.resolve_implicit_global_asset_job_def()
            if job == "__ASSET_JOB"
            else self.defs.resolve_job_def(job)
        )
        return job_def.execute_in_process(
            instance=self.instance,
            run_config=run_config,
            tags=tags,
            asset_selection=asset_selection,
            raise_on_error=False,
        )

    def stamp(
        self, environment: str, tags: dict[str, str] | None = None, **config: Any
    ) -> dg.ExecuteInProcessResult:
        """Run the ``stamp_<env>`` job with ``config`` (StampConfig fields).

        A protected environment whose database :meth:`fresh_environments` replaced on
        purpose is stamped acknowledging its new identity, as an operator would after
        moving it; pass ``acknowledge_identity`` (even "") to test the refusal itself.
        """
        if environment in self.replaced:
            config.setdefault("acknowledge_identity", self.replaced[environment])
        run_config = dg.RunConfig(ops={stamp_op(environment): StampConfig(**config)})
        return self.run(f"stamp_{environment}", run_config=run_config, tags=tags)

    def verify(self) -> dg.ExecuteInProcessResult:
        """Run ``verify_environments``."""
        return self.run("verify_environments")

    def fresh_environments(
        self, monkeypatch: pytest.MonkeyPatch, names: Sequence[str] = ("staging", "prod")
    ) -> dict[str, str]:
        """New clones of the template for ``names``; their variables point at them."""
        prefix = f"envt{uuid.uuid4().hex[:8]}_"
        urls = build_environments(self.admin_url, self.layout, names=names, prefix=prefix)
        self.dropped.extend(demo_database_name(name, prefix=prefix) for name in names)
        for name, url in urls.items():
            monkeypatch.setenv(VARIABLES[name], url)
            if self.settings.environments[name].protected:
                self.replaced[name] = database_identity(url).key
        return urls


def check_results(result: dg.ExecuteInProcessResult) -> dict[tuple[str, str], Any]:
    """The check evaluations of a run, keyed by (environment, check name)."""
    return {
        (evaluation.asset_key.path[0], evaluation.check_name): evaluation
        for evaluation in result.get_asset_check_evaluations()
    }


def failure_description(result: dg.ExecuteInProcessResult) -> str:
    """The description of the (single) step failure of a failed run."""
    failures = [event for event in result.all_events if event.is_step_failure]
    assert failures, "the run has no step failure"
    data = failures[0].step_failure_data
    assert data.user_failure_data is not None, data.error
    return str(data.user_failure_data.description)


def failure_metadata(result: dg.ExecuteInProcessResult) -> dict[str, Any]:
    """The metadata of the (single) step failure of a failed run, values unwrapped."""
    failures = [event for event in result.all_events if event.is_step_failure]
    data = failures[0].step_failure_data
    assert data.user_failure_data is not None
    return {k: getattr(v, "value", v) for k, v in data.user_failure_data.metadata.items()}


@pytest.fixture(scope="package")
def pipeline(admin_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pipeline]:
    """The demo with its baseline materialized and proven, on a temporary instance."""
    home = tmp_path_factory.mktemp("environments_demo")
    layout = prepare_demo_project(home)
    config_path = layout.root / "abparts_ops_envtest.yaml"
    config_path.write_text(CONFIG_YAML, encoding="utf-8")
    build_template(admin_url, layout)
    prefix = f"envt{uuid.uuid4().hex[:8]}_"
    names = ("dev", "staging", "prod")
    urls = build_environments(admin_url, layout, names=names, prefix=prefix)
    patch = pytest.MonkeyPatch()
    dropped = [demo_database_name(name, prefix=prefix) for name in names]
    try:
        for name, url in urls.items():
            patch.setenv(VARIABLES[name], url)
        patch.setenv(VARIABLES["scratch"], admin_url)
        patch.setenv("ABPARTS_OPS_CACHE", str(home / "cache"))
        settings = load_settings(config_path)
        defs = build_definitions(settings)
        dagster_home = home / "dagster_home"
        dagster_home.mkdir()
        # In-memory run/event storage (SQLite files cost ~1 s per run on a busy disk);
        # outputs (the fs IO manager) and compute logs go to ``dagster_home``.
        with dg.DagsterInstance.ephemeral(tempdir=str(dagster_home)) as instance:
            result = defs.resolve_job_def("reset_baseline").execute_in_process(
                instance=instance, raise_on_error=False
            )
            pipeline = Pipeline(
                admin_url=admin_url,
                layout=layout,
                settings=settings,
                defs=defs,
                instance=instance,
                baseline_run_id=result.run_id,
                urls=dict(urls),
                dropped=dropped,
            )
            if not result.success:
                failed = [
                    f"{e.check_name}: {e.description}"
                    for e in result.get_asset_check_evaluations()
                    if not e.passed
                ] or [
                    f"{e.step_key}: {e.step_failure_data.error}"
                    for e in result.all_events
                    if e.is_step_failure
                ]
                pytest.fail(f"reset_baseline failed (not this package's code): {failed}")
            yield pipeline
    finally:
        patch.undo()
        for name in dropped:  # the same list Pipeline.fresh_environments extends
            drop_database(admin_url, name)


@pytest.fixture
def envs(pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Fresh staging and prod databases for one test (dropped at the end of the package).

    Tests that only read use the package's own ``staging``/``prod`` (never stamped).
    """
    return pipeline.fresh_environments(monkeypatch)


@pytest.fixture
def staging_env(pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh staging database only (prod stays the package's, never stamped)."""
    return pipeline.fresh_environments(monkeypatch, names=("staging",))["staging"]
