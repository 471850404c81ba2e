"""``abparts-ops demo`` and ``scripts/demo`` as a newcomer meets them.

``demo env`` is checked against the test server's own home (its demo databases are
built there once), ``demo stop`` on servers of its own under the repository's
git-ignored ``.abparts_ops`` (never the shared test server), and the port check of
``scripts/demo`` by running the script with its port taken.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest

from abparts_ops.cli import BAD_INPUT, OK, main
from abparts_ops.embedded.server import EmbeddedPostgres, embedded_servers
from abparts_ops_tests.cli.conftest import REPO, cli

TEST_HOME = REPO / ".abparts_ops" / "test"


def _clean_env(**extra: str) -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items()
        if not k.startswith(("ABPARTS_", "ABPT_", "DAGSTER_")) and k != "PGPASSWORD"
    }
    env.update(extra)
    return env


def test_demo_drift_on_an_unknown_environment_is_one_line(
    capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ABPARTS_OPS_CONFIG", raising=False)
    assert main(["demo", "drift", "--env", "nosuch"]) == BAD_INPUT
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.strip() == (
        "abparts-ops: demo drift: no demo environment 'nosuch' (the demo has dev, staging, "
        "prod)."
    )


def test_ui_port_refuses_a_taken_dagster_port(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        monkeypatch.setenv("DAGSTER_PORT", str(port))
        code, document = cli("demo", "ui-port")
        assert code == BAD_INPUT and f"port {port} (DAGSTER_PORT) is taken" in document["error"]
    code, document = cli("demo", "ui-port")  # the same port, free again
    assert code == OK and document == {"port": port}


def test_scripts_demo_checks_the_port_before_anything_runs(tmp_path: Path) -> None:
    log = REPO / ".abparts_ops" / "demo.log"
    before = log.stat().st_mtime if log.exists() else None
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [str(REPO / "scripts" / "demo")], cwd=tmp_path, capture_output=True, text=True,
            timeout=600, env=_clean_env(DAGSTER_PORT=str(port)),
        )
    assert done.returncode == BAD_INPUT, done.stdout + done.stderr
    assert f"port {port} (DAGSTER_PORT) is taken" in done.stderr
    assert "reset_baseline" not in done.stdout  # nothing ran
    assert (log.stat().st_mtime if log.exists() else None) == before


# The demo in the test server's own home, whose databases embedded/test_demo.py's
# ensure_demo test drops after: the two never run at the same time on two workers.
@pytest.mark.xdist_group("demo_in_the_test_home")
def test_demo_env_exports_urls_without_the_password() -> None:
    """Evaluated in a shell, the variables reach the demo databases through the passfile."""
    cli_cmd = f"{sys.executable} -m abparts_ops.cli"
    check = (
        "from abparts_ops.core.db import make_engine; import os\n"
        "e = make_engine(os.environ['ABPARTS_STAGING_URL'])\n"
        "with e.connect() as c: print(c.exec_driver_sql('SELECT current_database()').scalar())\n"
    )
    env = _clean_env(ABPARTS_OPS_HOME=str(TEST_HOME), PYTHONPATH=str(REPO))
    printed = subprocess.run(
        [sys.executable, "-m", "abparts_ops.cli", "demo", "env"], capture_output=True,
        text=True, timeout=600, env=env, cwd=REPO,
    )
    assert printed.returncode == 0, printed.stderr
    password = EmbeddedPostgres(TEST_HOME).info().password
    assert password not in printed.stdout and password not in printed.stderr
    names = [line.split("=")[0] for line in printed.stdout.splitlines()]
    assert names == [
        "export ABPARTS_OPS_CONFIG", "export DAGSTER_HOME", "export ABPARTS_DEV_URL",
        "export ABPARTS_STAGING_URL", "export ABPARTS_PROD_URL", "export ABPARTS_SCRATCH_URL",
    ]
    done = subprocess.run(
        ["bash", "-c", f'eval "$({cli_cmd} demo env)" && {sys.executable} -c "$CHECK"'],
        capture_output=True, text=True, timeout=600, env={**env, "CHECK": check}, cwd=REPO,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "abparts_staging"


@pytest.mark.db  # starts servers of its own
def test_demo_stop_stops_every_server_and_the_ui_it_started(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    home = REPO / ".abparts_ops" / f"demostop_{uuid.uuid4().hex[:8]}"
    demo_server, test_server = EmbeddedPostgres(home), EmbeddedPostgres(home / "test")
    ui = subprocess.Popen(  # stands in for `dagster dev` (its command line says so)
        [sys.executable, "-c", "import time; time.sleep(120)", "dagster", "dev"]
    )
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    # Reap the stand-in as soon as it exits, as the shell that ran scripts/demo would: a
    # child of this process left unreaped stays in /proc (a zombie), and `demo stop` would
    # wait its whole 30 s grace for a process that is already gone.
    reaper = threading.Thread(target=ui.wait, daemon=True)
    reaper.start()
    try:
        demo_server.start()
        test_server.start()
        assert {s.root for s in embedded_servers(home)} == {demo_server.root, test_server.root}
        (home / "dagster_home").mkdir(parents=True)
        pid_file = home / "dagster_home" / "dagster-dev.pid"
        pid_file.write_text(str(ui.pid))
        monkeypatch.setenv("ABPARTS_OPS_HOME", str(home))
        code, document = cli("demo", "stop")
        assert code == OK
        assert set(document["stopped"]) == {str(demo_server.root), str(test_server.root)}
        assert not demo_server.is_running() and not test_server.is_running()
        reaper.join(timeout=30)
        assert ui.wait(timeout=30) is not None and not pid_file.exists()
        code, status = cli("demo", "status")
        assert [s["running"] for s in status["servers"]] == [False, False]
        # a pid file naming a process that is not dagster dev: left alone
        pid_file.write_text(str(other.pid))
        cli("demo", "stop")
        time.sleep(0.5)
        assert other.poll() is None
    finally:
        for process in (ui, other):
            process.kill()
            process.wait()
        for server in (demo_server, test_server):
            server.stop()
        shutil.rmtree(home, ignore_errors=True)


def test_the_instance_turns_the_onboarding_dialog_off(tmp_path: Path) -> None:
    """dagster.yaml (copied by scripts/demo and the demo's DAGSTER_HOME) says ``nux: off``:
    the UI asks ``shouldShowNux`` and gets false."""
    import dagster as dg

    shutil.copy(REPO / "dagster.yaml", tmp_path / "dagster.yaml")
    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
        assert instance.nux_enabled is False


@pytest.mark.db  # scripts/demo starts a server of its own
def test_scripts_demo_catches_up_staging_left_behind_before_the_reset() -> None:
    """``scripts/demo --no-ui`` as a newcomer runs it, in a home of its own (its own
    embedded server): staging is left one revision behind dev before the reset, is
    ``behind_archive`` after it, is caught up and stamped in one ``stamp_staging`` run, and
    every environment ends ``in_sync``. A second run changes nothing."""
    import dagster as dg

    from abparts_ops.embedded.demo import (
        DEMO_DRIFT_REVISION,
        DEMO_ENVIRONMENTS,
        DEMO_OLD_HEAD,
        demo_database_name,
    )
    from abparts_ops_tests.cli.conftest import read_revisions

    home = REPO / ".abparts_ops" / f"demoscript_{uuid.uuid4().hex[:8]}"
    env = _clean_env(ABPARTS_OPS_HOME=str(home))
    try:
        done = subprocess.run(
            [str(REPO / "scripts" / "demo"), "--no-ui"], cwd=REPO, capture_output=True,
            text=True, timeout=900, env=env,
        )
        out = done.stdout
        assert done.returncode == OK, out[-3000:] + done.stderr[-3000:]
        password = EmbeddedPostgres(home).info().password
        assert password not in out and password not in done.stderr
        assert (
            f"staging left one revision behind dev: the old history's downgrade ran, "
            f"{DEMO_OLD_HEAD} -> {DEMO_DRIFT_REVISION}"
        ) in out
        reset_at = out.index("== reset_baseline")
        catch_up_at = out.index("== stamp_staging with the catch-up: staging is behind the reset")
        assert reset_at < catch_up_at
        after = out[catch_up_at:]
        assert after.splitlines()[1] == "staging: behind_archive"  # before the catch-up
        assert f"at archived revision {DEMO_DRIFT_REVISION}, 1 archived revision(s)" in after
        assert "stamp staging (apply): caught_up" in after
        assert f"caught up staging: {DEMO_DRIFT_REVISION} -> {DEMO_OLD_HEAD}" in after
        table = out[out.index("== every environment's state"):].splitlines()
        states = {line.split()[0]: line.split()[1] for line in table[3:] if line.strip()}
        assert states == {"dev": "in_sync", "staging": "in_sync", "prod": "in_sync"}

        server = EmbeddedPostgres(home).info()
        revisions = {
            read_revisions(server.url(demo_database_name(name))) for name in DEMO_ENVIRONMENTS
        }
        assert len(revisions) == 1  # staging too: caught up, then stamped
        [(baseline,)] = revisions
        assert baseline not in (DEMO_OLD_HEAD, DEMO_DRIFT_REVISION)
        with dg.DagsterInstance.from_config(str(home / "dagster_home")) as instance:
            [run] = instance.get_runs(dg.RunsFilter(job_name="stamp_staging"))
            assert run.status == dg.DagsterRunStatus.SUCCESS
            [event] = [
                e for e in instance.all_logs(run.run_id)
                if e.dagster_event is not None and e.dagster_event.is_step_materialization
            ]
            materialization = event.dagster_event.step_materialization_data.materialization
            meta = {k: getattr(v, "value", v) for k, v in materialization.metadata.items()}
        assert meta["action"] == "caught_up" and meta["catch_up"] is True

        again = subprocess.run(
            [str(REPO / "scripts" / "demo"), "--no-ui"], cwd=REPO, capture_output=True,
            text=True, timeout=900, env=env,
        )
        assert again.returncode == OK, again.stdout[-3000:] + again.stderr[-3000:]
        assert f"staging is at {baseline}, past the reset" in again.stdout
        assert "stamp staging (apply): noop" in again.stdout
        assert "catch-up" not in again.stdout
    finally:
        EmbeddedPostgres(home).stop()
        shutil.rmtree(home, ignore_errors=True)
