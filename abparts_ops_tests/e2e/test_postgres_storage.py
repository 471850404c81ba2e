"""The documented dagster-postgres variant (`deploy/dagster.postgres.yaml`), tested.

`dagster dev` runs with the instance configuration copied verbatim from
``deploy/dagster.postgres.yaml``, its storage in a database of its own on the embedded
PostgreSQL (a dedicated role, everything passed through ``DAGSTER_PG_*`` variables). The
same pipeline as in the demo runs through the GraphQL API (reset, stamp staging, verify);
then the test reads Dagster's tables in PostgreSQL directly and finds those runs, their
materializations and check evaluations there, and no SQLite storage in DAGSTER_HOME.
"""

from __future__ import annotations

import contextlib
import re
import secrets
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
import yaml
from dagster import DagsterRunStatus

from abparts_ops.core.rollout.locking import LOCK_NAMESPACE
from abparts_ops.embedded.demo import demo_database_name
from abparts_ops_tests.e2e.conftest import (
    REPO,
    IsolatedDemo,
    assert_success,
    dagster_dev,
    launch_and_wait,
    run_config_for,
    stop_sensors,
)
from abparts_ops_tests.e2e.graphql import DagsterUIClient, RepositoryContents, wait_for

pytestmark = pytest.mark.e2e

DEPLOY_CONFIG = REPO / "deploy" / "dagster.postgres.yaml"
STORAGE_DB = "dagster_storage"
STORAGE_ROLE = "dagster_storage"
STAMP_TAG = "abparts_ops/stamp"


def _storage_database(demo: IsolatedDemo) -> dict[str, str]:
    """A role and a database for Dagster's storage; the DAGSTER_PG_* variables to use it."""
    info = demo.server().start()
    password = secrets.token_urlsafe(18)
    engine = sa.create_engine(info.url("postgres"), isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql(
                f"CREATE ROLE {STORAGE_ROLE} LOGIN PASSWORD %(pw)s", {"pw": password}
            )
            conn.exec_driver_sql(f"CREATE DATABASE {STORAGE_DB} OWNER {STORAGE_ROLE}")
    finally:
        engine.dispose()
    return {
        "DAGSTER_PG_HOST": info.host,
        "DAGSTER_PG_PORT": str(info.port),
        "DAGSTER_PG_USER": STORAGE_ROLE,
        "DAGSTER_PG_PASSWORD": password,
        "DAGSTER_PG_DB": STORAGE_DB,
    }


def _storage_url(pg_env: dict[str, str]) -> sa.URL:
    return sa.URL.create(
        "postgresql+psycopg2",
        username=pg_env["DAGSTER_PG_USER"],
        password=pg_env["DAGSTER_PG_PASSWORD"],
        host=pg_env["DAGSTER_PG_HOST"],
        port=int(pg_env["DAGSTER_PG_PORT"]),
        database=pg_env["DAGSTER_PG_DB"],
    )


def _run_limits(config: dict) -> dict:
    """The run queue's limits, from either form (``concurrency.runs`` or run_coordinator)."""
    if "concurrency" in config and "runs" in config["concurrency"]:
        runs = config["concurrency"]["runs"]
    else:
        runs = config["run_coordinator"]["config"]
    return {
        "max_concurrent_runs": runs.get("max_concurrent_runs"),
        "tag_concurrency_limits": runs.get("tag_concurrency_limits"),
    }


def test_deploy_config_queues_runs_like_the_default_one(tmp_path: Path) -> None:
    """The deployment variant is valid and limits runs exactly like the default dagster.yaml.

    It also gives pools a default limit of 1, so that a stamp materialized from the asset
    graph (no run tag) is serialised too; the stamp assets' pool is the only pool.
    """
    from dagster._core.instance.config import dagster_instance_config

    default = yaml.safe_load((REPO / "dagster.yaml").read_text())
    deploy = yaml.safe_load(DEPLOY_CONFIG.read_text())
    shutil.copy(DEPLOY_CONFIG, tmp_path / "dagster.yaml")
    dagster_instance_config(str(tmp_path))  # raises on any schema error

    assert _run_limits(deploy) == _run_limits(default)
    assert {"key": STAMP_TAG, "value": "true", "limit": 1} in (
        _run_limits(deploy)["tag_concurrency_limits"]
    )
    assert deploy["concurrency"]["pools"]["default_limit"] == 1
    assert deploy["telemetry"] == {"enabled": False}
    postgres_db = deploy["storage"]["postgres"]["postgres_db"]
    settings = {"hostname", "port", "username", "password", "db_name"}
    assert settings <= set(postgres_db)
    assert all(set(postgres_db[key]) == {"env"} for key in settings), (
        "every connection setting of the storage must come from an environment variable"
    )
    assert postgres_db.get("scheme") == "postgresql+psycopg2", (
        "name the psycopg2 driver: SQLAlchemy 2.1 maps postgresql:// to psycopg 3"
    )


_LAUNCHER_BLOCK = re.compile(
    r"<!-- validated-run-launcher: (?P<cls>[\w.]+) -->\s*```yaml\n(?P<yaml>.*?)```", re.S
)


def test_run_launcher_examples_in_deploy_readme_are_valid() -> None:
    """The Docker and Kubernetes examples of deploy/README.md match the launchers' schemas.

    Checked against the installed dagster-docker / dagster-k8s (the releases matching
    Dagster); skipped when a package is missing. Nothing is launched.
    """
    from dagster._config import validate_config
    from dagster._config.field_utils import convert_potential_field

    blocks = list(_LAUNCHER_BLOCK.finditer((REPO / "deploy" / "README.md").read_text()))
    assert {b["cls"] for b in blocks} == {
        "dagster_docker.DockerRunLauncher",
        "dagster_k8s.K8sRunLauncher",
    }
    for block in blocks:
        module_name, class_name = block["cls"].rsplit(".", 1)
        module = pytest.importorskip(module_name)
        fragment = yaml.safe_load(block["yaml"])["run_launcher"]
        assert (fragment["module"], fragment["class"]) == (module_name, class_name)
        launcher = getattr(module, class_name)
        config_type = convert_potential_field(launcher.config_type()).config_type
        result = validate_config(config_type, fragment["config"])
        assert result.success, (
            f"{block['cls']} example: {[error.message for error in result.errors]}"
        )


HOLD_S = 20
"""How long the test keeps a stamp blocked while the other stamps try to start."""


def _overlap(a: tuple[float, float], b: tuple[float, float]) -> bool:
    return a[0] < b[1] and b[0] < a[1]


@contextlib.contextmanager
def _stamp_lock_held(demo: IsolatedDemo, environment: str) -> Iterator[None]:
    """Hold the advisory lock a stamp of ``environment`` takes, from outside Dagster."""
    url = demo.server().info().url(demo_database_name(environment))
    engine = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    key = f"{LOCK_NAMESPACE}:public.alembic_version"
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT pg_advisory_lock(hashtextextended(:k, 0))"), {"k": key})
            try:
                yield
            finally:
                conn.execute(
                    sa.text("SELECT pg_advisory_unlock(hashtextextended(:k, 0))"), {"k": key}
                )
    finally:
        engine.dispose()


def _step(ui: DagsterUIClient, run_id: str, step_key: str) -> dict:
    return next((s for s in ui.run(run_id)["stepStats"] if s["stepKey"] == step_key), {})


def _launch(
    ui: DagsterUIClient,
    contents: RepositoryContents,
    job_name: str,
    config: dict,
    asset_selection: list[str] | None = None,
) -> str:
    run_config = run_config_for(ui, contents, job_name, config, asset_selection)
    return ui.launch(contents, job_name, run_config=run_config, asset_selection=asset_selection)


def _assert_stamps_one_at_a_time(
    ui: DagsterUIClient, contents: RepositoryContents, demo: IsolatedDemo
) -> None:
    """Stamps never run at the same time, however they are launched.

    The test holds staging's stamp lock, so a dry-run ``stamp_staging`` (A) sits in its
    stamp step. Meanwhile ``stamp_prod`` (B, run tag ``abparts_ops/stamp=true``) must stay
    QUEUED: held by the run queue's tag limit (and, with pools configured, also by the
    queue's check that a run's first step can get a pool slot: removing the tag limit
    alone still passes, by design). A stamp of prod materialized from the asset graph
    (C: implicit asset job, no run tag) must not get to run its stamp step: the pool
    ``abparts_ops_stamp`` (default limit 1) holds it, in the queue or before the step
    (removing the pool limit makes this fail: checked when this test was written). Once
    the lock is released all three succeed, one stamp step after another.
    """
    ops = {
        env: contents.asset_ops.get(f"{env}/alembic_stamp", f"{env}__alembic_stamp")
        for env in ("staging", "prod")
    }

    def dry(env: str, **extra: object) -> dict:
        return {"ops": {ops[env]: {"config": {"dry_run": True, **extra}}}}

    with _stamp_lock_held(demo, "staging"):
        a = _launch(ui, contents, "stamp_staging", dry("staging", lock_timeout_s=HOLD_S + 100))
        wait_for(
            "stamp_staging to wait for the stamp lock held by the test",
            lambda: True if _step(ui, a, ops["staging"]).get("status") == "IN_PROGRESS" else None,
            120,
            describe=lambda: f"run {a}: {ui.run_status(a).value} {_step(ui, a, ops['staging'])}",
        )
        b = _launch(ui, contents, "stamp_prod", dry("prod"))
        c = _launch(ui, contents, "__ASSET_JOB", dry("prod"), ["prod/alembic_stamp"])
        deadline = time.monotonic() + HOLD_S
        while time.monotonic() < deadline:
            assert ui.run_status(a) == DagsterRunStatus.STARTED, (
                f"stamp_staging {a} did not wait for the advisory lock held by the test"
            )
            assert ui.run_status(b) == DagsterRunStatus.QUEUED, (
                f"stamp_prod {b} left the queue while stamp_staging {a} was running: neither "
                f"the run queue's {STAMP_TAG} limit nor the stamp pool held it"
            )
            assert _step(ui, c, ops["prod"]).get("status") is None, (
                f"the stamp step of {c} (asset graph, no run tag) started while another stamp "
                f"was running: the pool abparts_ops_stamp is not limited to 1"
            )
            time.sleep(1)
    for run_id, what in ((a, "stamp_staging"), (b, "stamp_prod"), (c, "asset-graph stamp")):
        assert_success(ui, run_id, f"{what} after the lock was released", 180)

    runs = {r: ui.run(r) for r in (a, b, c)}
    assert not _overlap(
        (runs[a]["startTime"], runs[a]["endTime"]), (runs[b]["startTime"], runs[b]["endTime"])
    ), "stamp_staging and stamp_prod ran at the same time"
    steps = [
        _step(ui, a, ops["staging"]),
        _step(ui, b, ops["prod"]),
        _step(ui, c, ops["prod"]),
    ]
    windows = [(s["startTime"], s["endTime"]) for s in steps]
    for i, j in ((0, 1), (0, 2), (1, 2)):
        assert not _overlap(windows[i], windows[j]), f"stamp steps overlapped: {windows}"


def test_pipeline_runs_with_postgres_storage(isolated_demo: IsolatedDemo) -> None:
    pg_env = _storage_database(isolated_demo)
    shutil.copy(DEPLOY_CONFIG, isolated_demo.dagster_home / "dagster.yaml")
    run_ids: dict[str, str] = {}
    with dagster_dev(isolated_demo, **pg_env) as (dev, port):
        ui = DagsterUIClient("127.0.0.1", port)
        ui.wait_until_up(180, dev.alive)
        repository = ui.wait_for_location("abparts_ops", 120)
        contents = ui.repository("abparts_ops", repository)
        stop_sensors(ui, contents)
        run_ids["reset"] = launch_and_wait(
            ui, contents, "reset_baseline", 180, job_name="reset_baseline"
        )
        stamp_op = contents.asset_ops.get("staging/alembic_stamp", "staging__alembic_stamp")
        run_ids["stamp"] = launch_and_wait(
            ui,
            contents,
            "stamp_staging",
            120,
            job_name="stamp_staging",
            run_config={"ops": {stamp_op: {"config": {"dry_run": False}}}},
        )
        run_ids["verify"] = launch_and_wait(
            ui, contents, "verify_environments", 120, job_name="verify_environments"
        )
        stamp_tags = {t["key"]: t["value"] for t in ui.run(run_ids["stamp"])["tags"]}
        assert stamp_tags.get(STAMP_TAG) == "true", (
            f"the stamp run carries no {STAMP_TAG}=true tag, so the queue's limit of one "
            f"stamp at a time does not apply to it; its tags: {stamp_tags}"
        )
        _assert_stamps_one_at_a_time(ui, contents, isolated_demo)

    engine = sa.create_engine(_storage_url(pg_env))
    try:
        with engine.connect() as conn:
            runs = dict(
                conn.exec_driver_sql(
                    "SELECT run_id, status FROM runs WHERE run_id = ANY(%(ids)s)",
                    {"ids": list(run_ids.values())},
                ).all()
            )
            materialized = {
                row[0]
                for row in conn.exec_driver_sql(
                    "SELECT DISTINCT asset_key FROM event_logs "
                    "WHERE dagster_event_type = 'ASSET_MATERIALIZATION' AND run_id = ANY(%(ids)s)",
                    {"ids": list(run_ids.values())},
                )
            }
            check_rows = conn.exec_driver_sql(
                "SELECT count(*) FROM event_logs "
                "WHERE dagster_event_type = 'ASSET_CHECK_EVALUATION' AND run_id = %(id)s",
                {"id": run_ids["verify"]},
            ).scalar_one()
            event_count = conn.exec_driver_sql("SELECT count(*) FROM event_logs").scalar_one()
    finally:
        engine.dispose()

    assert runs == {run_id: "SUCCESS" for run_id in run_ids.values()}, runs
    for key in ('["baseline_revision"]', '["reference_dump"]', '["staging", "alembic_stamp"]'):
        assert key in materialized, f"no materialization of {key} in PostgreSQL: {materialized}"
    assert check_rows > 0, "verify_environments stored no check evaluation in PostgreSQL"
    assert event_count > 50
    sqlite_files = sorted(str(p) for p in Path(isolated_demo.dagster_home).rglob("*.db"))
    assert not sqlite_files, f"SQLite storage created despite postgres storage: {sqlite_files}"
