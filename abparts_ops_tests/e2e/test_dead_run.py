"""A run killed in the middle of an upgrade costs seconds: its lock goes, the queue moves on.

`dagster dev` (webserver, daemon, code server) runs with the repository's
``dagster.yaml`` in a temporary ``DAGSTER_HOME``, against a small project of the test's
own: ``r001`` applied on staging, ``r002`` pending. ``r002`` adds a column (ACCESS
EXCLUSIVE on ``parts``) and then sleeps ten minutes, only on staging (the rehearsal and
the expected schemas run it on other databases) and only while a "ticket" file is left
(one is taken per sleep). Twice, a real upgrade of staging is killed with SIGKILL while
it sleeps in the apply transaction, with a run waiting in the queue behind it (stamps and
upgrades run one at a time: run tag ``abparts_ops/stamp=true``, limit 1):

1. launched through the queue: its worker is a subprocess of the code server, which
   notices the death itself; the stamp queued behind it leaves the queue and runs;
2. run by ``dagster job execute``: no code server watches that process; run monitoring
   (the daemon, with ``LocalRunLauncher``'s health check) marks it failed; the upgrade
   queued behind it runs and applies ``r002``.

Each time, within seconds: the server cancelled the dead client's statement and released
the lock (``client_connection_check_interval``), the run is FAILURE, nothing was written.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa
from dagster import DagsterEventType, DagsterInstance, DagsterRunStatus

from abparts_ops.core.db import connect, make_engine
from abparts_ops.core.history.migrate import upgrade
from abparts_ops.core.history.project import load_project
from abparts_ops.defs.names import STAMP_POOL
from abparts_ops.defs.upgrade_assets import upgrade_op
from abparts_ops_tests.core.history.projects import Rev, write_project
from abparts_ops_tests.e2e.conftest import (
    REPO,
    VENV_BIN,
    IsolatedDemo,
    ManagedProcess,
    dagster_dev,
    managed_process,
    run_config_for,
)
from abparts_ops_tests.e2e.graphql import FINISHED, DagsterUIClient, wait_for
from abparts_ops_tests.readme import code_blocks, readme_section
from abparts_ops_tests.sql import version_rows

pytestmark = pytest.mark.e2e

CONFIG = """\
alembic: {config: project/alembic.ini}
source: staging
scratch: {url_env: ABPT_DEAD_SCRATCH_URL}
environments:
  staging: {url_env: ABPT_DEAD_STAGING_URL}
"""
R001 = Rev(
    "r001",
    None,
    "op.create_table('parts', sa.Column('id', sa.BigInteger, primary_key=True))",
    "op.drop_table('parts')",
)
SLEEPY_UPGRADE = """\
op.add_column('parts', sa.Column('colour', sa.Text))
if not op.get_context().as_sql:
    bind = op.get_bind()
    tickets = sorted(os.listdir({tickets!r}))
    if tickets and bind.exec_driver_sql('SELECT current_database()').scalar() == {database!r}:
        os.remove(os.path.join({tickets!r}, tickets[0]))
        bind.exec_driver_sql('SELECT pg_sleep(600)')
"""

LOCKS_QUERY = code_blocks(readme_section("If a run is stuck"), "sql")[0]
"""README's query of the locks abparts_ops sessions hold: used as the test's own probe."""
DEADLINE_S = 30.0
"""After the kill: the lock gone, the run FAILURE, the next run out of the queue."""
DEQUEUE_S = 6.0
"""Longer than the daemon's dequeue interval (5 s): a run still QUEUED after it is held."""


def _database(url: str) -> str:
    return str(sa.make_url(url).database)


def _rows(url: str, sql: str) -> list[tuple]:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return [tuple(row) for row in conn.exec_driver_sql(sql).all()]
    finally:
        engine.dispose()


def _seconds_until(what: str, probe: Callable[[], bool], since: float) -> float:
    """Wait (at most DEADLINE_S) until ``probe()``; return the seconds since ``since``."""
    wait_for(what, lambda: True if probe() else None, DEADLINE_S, interval=0.2)
    return time.monotonic() - since


def _worker_pid(instance: DagsterInstance, run_id: str) -> int:
    """The run worker: the process that started the upgrade's step (in-process executor)."""
    [event] = instance.all_logs(run_id, of_type=DagsterEventType.STEP_START)
    assert event.dagster_event is not None and event.dagster_event.pid
    return int(event.dagster_event.pid)


def _why_failed(instance: DagsterInstance, run_id: str) -> str:
    events = instance.all_logs(
        run_id, of_type={DagsterEventType.RUN_FAILURE, DagsterEventType.ENGINE_EVENT}
    )
    return "\n".join(event.message or "" for event in events)


def _project(tmp_path: Path, staging: str) -> Path:
    """The project (r002 sleeps twice on staging), staging at r001; the config file."""
    tickets = tmp_path / "sleeps"
    tickets.mkdir()
    for n in (1, 2):
        (tickets / f"ticket{n}").write_text("one ten-minute sleep of r002\n", encoding="utf-8")
    r002 = Rev(
        "r002",
        "r001",
        SLEEPY_UPGRADE.format(tickets=str(tickets), database=_database(staging)),
        "op.drop_column('parts', 'colour')",
        extra="import os",
    )
    ini = write_project(tmp_path / "project", [R001, r002])
    engine = make_engine(staging)
    try:
        with connect(engine) as conn:
            upgrade(conn, load_project(ini_path=ini), "r001")
    finally:
        engine.dispose()
    config = tmp_path / "abparts_ops.yaml"
    config.write_text(CONFIG, encoding="utf-8")
    return config


def test_a_killed_upgrade_frees_its_lock_and_the_queue_within_seconds(
    tmp_path: Path, db_factory, admin_url: str
) -> None:
    staging = db_factory("dead_run")
    config = _project(tmp_path, staging)
    real = {"ops": {upgrade_op("staging"): {"config": {"dry_run": False}}}}
    (tmp_path / "real.json").write_text(json.dumps(real), encoding="utf-8")
    home = IsolatedDemo(tmp_path / "home", tmp_path / "dagster_home", tmp_path / "logs")
    for folder in (home.home, home.dagster_home, home.logs):
        folder.mkdir()
    (home.dagster_home / "dagster.yaml").write_bytes((REPO / "dagster.yaml").read_bytes())
    env = {
        "ABPARTS_OPS_CONFIG": str(config),
        "ABPARTS_OPS_CACHE": str(tmp_path / "cache"),
        "ABPT_DEAD_STAGING_URL": staging,
        "ABPT_DEAD_SCRATCH_URL": admin_url,
    }

    def held() -> list[tuple]:
        """README's lock query on staging: (mode, table) of every lock abparts_ops holds."""
        return [(row[4], row[5]) for row in _rows(staging, LOCKS_QUERY)]

    def locked() -> bool:
        return ("AccessExclusiveLock", "parts") in held()

    def status(run_id: str) -> DagsterRunStatus:
        return ui.run_status(run_id)

    started = time.monotonic()
    timings: dict[str, float] = {}
    with contextlib.ExitStack() as stack:
        process, port = stack.enter_context(dagster_dev(home, **env))
        ui = DagsterUIClient("127.0.0.1", port)
        ui.wait_until_up(120, process.alive)
        contents = ui.repository("abparts_ops", ui.wait_for_location("abparts_ops", 120))
        # Opened once dagster dev has created the (SQLite) storage: the runs' event logs.
        instance = stack.enter_context(DagsterInstance.from_config(str(home.dagster_home)))
        timings["dagster dev up"] = time.monotonic() - started

        # 1. Launched through the queue; a stamp (dry run) waits behind it.
        config_1 = run_config_for(ui, contents, "upgrade_staging", real)
        upgrade_1 = ui.launch(contents, "upgrade_staging", config_1)
        wait_for("the apply to lock parts", lambda: locked() or None, 90, interval=0.2)
        stamp = ui.launch(contents, "stamp_staging", run_config_for(ui, contents, "stamp_staging"))
        time.sleep(DEQUEUE_S)
        assert (status(upgrade_1), status(stamp)) == (
            DagsterRunStatus.STARTED, DagsterRunStatus.QUEUED
        )
        os.kill(_worker_pid(instance, upgrade_1), signal.SIGKILL)
        killed = time.monotonic()
        timings["1: lock released"] = _seconds_until("no lock left", lambda: not held(), killed)
        timings["1: run FAILURE"] = _seconds_until(
            "the run to fail", lambda: status(upgrade_1) == DagsterRunStatus.FAILURE, killed
        )
        timings["1: stamp dequeued"] = _seconds_until(
            "the stamp to leave the queue", lambda: status(stamp) != DagsterRunStatus.QUEUED, killed
        )
        # It ends (here it fails: this instance never ran the reset, there is no
        # expected_schemas to stamp with); what matters is that it ran.
        assert ui.wait_for_run(stamp, 90) in FINISHED
        timings["1: stamp finished"] = time.monotonic() - killed
        why = _why_failed(instance, upgrade_1)
        assert "SIGKILL" in why or "is gone" in why, why
        assert version_rows(staging) == ("r001",)  # rolled back: nothing written

        # 2. `dagster job execute`: no code server watches it; an upgrade waits behind it.
        cli_args = [str(VENV_BIN / "dagster"), "job", "execute", "-m", "abparts_ops.definitions",
                    "-j", "upgrade_staging", "-c", str(tmp_path / "real.json")]
        cli: ManagedProcess = stack.enter_context(
            managed_process("job-execute", cli_args, home.env(**env), home.logs)
        )
        wait_for("the CLI's apply to lock parts", lambda: locked() or None, 90, interval=0.2)
        [upgrade_2] = [run["runId"] for run in ui.runs("upgrade_staging")
                       if run["status"] == DagsterRunStatus.STARTED.value]
        upgrade_3 = ui.launch(contents, "upgrade_staging", config_1)
        time.sleep(DEQUEUE_S)
        assert status(upgrade_3) == DagsterRunStatus.QUEUED
        assert _worker_pid(instance, upgrade_2) == cli.popen.pid
        os.kill(cli.popen.pid, signal.SIGKILL)
        killed = time.monotonic()
        timings["2: lock released"] = _seconds_until("no lock left", lambda: not held(), killed)
        timings["2: run FAILURE"] = _seconds_until(
            "run monitoring to fail the run",
            lambda: status(upgrade_2) == DagsterRunStatus.FAILURE,
            killed,
        )
        timings["2: upgrade dequeued"] = _seconds_until(
            "the upgrade to leave the queue",
            lambda: status(upgrade_3) != DagsterRunStatus.QUEUED,
            killed,
        )
        assert ui.wait_for_run(upgrade_3, 90) == DagsterRunStatus.SUCCESS, ui.run_errors(upgrade_3)
        timings["2: upgrade succeeded"] = time.monotonic() - killed
        why = _why_failed(instance, upgrade_2)
        assert "Detected run worker status FAILED" in why and "is gone" in why, why
        assert not instance.event_log_storage.get_concurrency_info(STAMP_POOL).claimed_slots
    timings["total"] = time.monotonic() - started
    print("timings (s):", {key: round(value, 1) for key, value in timings.items()})
    assert version_rows(staging) == ("r002",)
