"""Benchmark: the ``reset_baseline`` job, the round trip at scale, memory and import cost.

Usage::

    .venv/bin/python benchmarks/bench_reset_baseline.py [--tables 1000] [--repeat 6]
        [--memory 1000,5000] [--skip-job] [--skip-round-trip]

1. The ``reset_baseline`` job (snapshot, reference dump, history, baseline, every proof)
   on a fresh copy of the demo project, in process on a real Dagster instance. Target:
   under 20 s on 2 cores. Reference measured in the same run: the bare minimum a person
   does by hand, ``pg_dump --schema-only`` of dev piped into ``psql -f`` on an empty db.
2. The round trip (upgrade an empty database with the generated baseline, snapshot it,
   diff against the source) on a generated schema of ``--tables`` tables, against
   ``psql -f`` of the same schema's ``pg_dump`` into an empty database: both ``--repeat``
   times, interleaved, in the same run (medians). The upgrade is split into the time the
   statements spent in ``cursor.execute`` (the server, and the wire) and the rest (Alembic
   and SQLAlchemy building and compiling them). Also printed: the snapshot of the source
   with and without its dependencies, the render of the baseline and its size. Issue 18's
   target: at most 2x.
3. ``--memory`` sizes: the peak memory (VmHWM) of a fresh process running the real
   ``reset_baseline`` job in process on the generated schema (its source environment;
   a one-revision Alembic project of its own), and the cost of a fresh process that loads
   the history holding the baseline that job wrote (Alembic's ``ScriptDirectory``, every
   revision imported): seconds and memory on top of the imports of Alembic and
   SQLAlchemy. Issue 18's targets at 5,000 tables: job < 500 MB, history < 150 MB, < 1 s.

Everything runs on a dedicated embedded server under ``.abparts_ops/bench``; the generated
source databases are the ones ``bench_snapshot.py`` caches (``bench_<n>_g<v>_s<seed>``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import dagster as dg  # noqa: E402
import sqlalchemy as sa  # noqa: E402
from bench_snapshot import ensure_database  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from abparts_ops.core.db import (  # noqa: E402
    connect,
    create_database,
    drop_database,
    make_engine,
)
from abparts_ops.core.history.migrate import upgrade  # noqa: E402
from abparts_ops.core.history.project import AlembicProject  # noqa: E402
from abparts_ops.core.reset.baseline_render import (  # noqa: E402
    COMPACT_TABLES,
    render_baseline,
)
from abparts_ops.core.schema.diff import diff_snapshots  # noqa: E402
from abparts_ops.core.schema.introspect import take_snapshot  # noqa: E402
from abparts_ops.core.settings import load_settings  # noqa: E402
from abparts_ops.embedded.server import EmbeddedPostgres  # noqa: E402

BENCH_HOME = REPO / ".abparts_ops" / "bench"


def _pg_env(url: str) -> tuple[list[str], dict[str, str]]:
    parsed = make_url(url)
    env = {**os.environ, "PGPASSWORD": parsed.password or ""}
    args = ["-h", parsed.host or "127.0.0.1", "-p", str(parsed.port or 5432),
            "-U", parsed.username or "", "-d", parsed.database or ""]
    return args, env


def dump_schema(url: str) -> str:
    """``pg_dump --schema-only`` of ``url`` (password through the environment)."""
    args, env = _pg_env(url)
    return subprocess.run(["pg_dump", "--schema-only", "--no-owner", "--no-privileges", *args],
                          check=True, capture_output=True, text=True, env=env).stdout


def load_sql(url: str, sql: str) -> float:
    """Seconds ``psql -f`` takes to run ``sql`` on ``url``."""
    args, env = _pg_env(url)
    with tempfile.NamedTemporaryFile("w", suffix=".sql", delete=False) as handle:
        handle.write(sql)
    try:
        started = time.perf_counter()
        subprocess.run(["psql", "-q", "-v", "ON_ERROR_STOP=1", "-f", handle.name, *args],
                       check=True, capture_output=True, text=True, env=env)
        return time.perf_counter() - started
    finally:
        os.unlink(handle.name)


def bench_job(admin_url: str) -> None:
    """Time reset_baseline on a fresh demo copy against a hand-made dump-and-load."""
    from abparts_ops.definitions import build_definitions
    from abparts_ops.embedded.demo import ensure_demo, prepare_demo_project

    home = BENCH_HOME
    os.environ["ABPARTS_OPS_HOME"] = str(home)
    ensure_demo(home)
    layout = prepare_demo_project(home, fresh=True)
    settings = load_settings(layout.config_path)
    dev_url = settings.environments["dev"].url()

    target = "bench_manual_reset"
    drop_database(admin_url, target)
    manual_started = time.perf_counter()
    dump = dump_schema(dev_url)
    load_sql(create_database(admin_url, target), dump)
    manual = time.perf_counter() - manual_started
    drop_database(admin_url, target)

    job = build_definitions(settings, demo=False).get_job_def("reset_baseline")
    started = time.perf_counter()
    result = job.execute_in_process(instance=dg.DagsterInstance.ephemeral(),
                                    raise_on_error=False)
    seconds = time.perf_counter() - started
    checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    print("reset_baseline job on the demo")
    print(f"  job: {seconds:.2f} s (success={result.success}, checks={checks})")
    print(f"  reference, pg_dump | psql -f by hand: {manual:.2f} s")
    print(f"  ratio job/manual: {seconds / manual:.1f}x   target: job < 20 s -> "
          + ("met" if seconds < 20 and result.success else "NOT met"))


class StatementClock:
    """Counts the statements an engine runs and the seconds spent in ``cursor.execute``."""

    def __init__(self, engine: sa.Engine) -> None:
        self.statements = 0
        self.seconds = 0.0
        self._started: list[float] = []
        sa.event.listen(engine, "before_cursor_execute", self._before)
        sa.event.listen(engine, "after_cursor_execute", self._after)

    def _before(self, *_args: Any) -> None:
        self._started.append(time.perf_counter())

    def _after(self, *_args: Any) -> None:
        self.seconds += time.perf_counter() - self._started.pop()
        self.statements += 1


def _round_trip_once(admin_url: str, tables: int, project: AlembicProject,
                     snapshot: Any) -> dict[str, Any]:
    target = f"bench_rt_target_{tables}"
    drop_database(admin_url, target)
    target_url = create_database(admin_url, target)
    try:
        started = time.perf_counter()
        engine = make_engine(target_url)
        clock = StatementClock(engine)
        with connect(engine) as conn:
            upgrade(conn, project, "heads")
        engine.dispose()
        upgraded = time.perf_counter()
        built = take_snapshot(target_url, source="baseline", dependencies=False)
        snapped = time.perf_counter()
        diff = diff_snapshots(snapshot, built)
        ended = time.perf_counter()
    finally:
        drop_database(admin_url, target)
    return {
        "total": ended - started, "upgrade": upgraded - started,
        "execute": clock.seconds, "statements": clock.statements,
        "snapshot": snapped - upgraded, "diff": ended - snapped, "empty": diff.is_empty,
    }


def bench_round_trip(admin_url: str, tables: int, repeat: int) -> None:
    """Time the round trip of a generated schema against loading its pg_dump, for both
    renderings of the baseline (the one ``render_baseline`` picks at this size, and the
    other), interleaved in the same run."""
    info = EmbeddedPostgres(BENCH_HOME).info()
    source_url, _loaded = ensure_database(info, tables, rebuild=False)
    started = time.perf_counter()
    take_snapshot(source_url, source="generated", dependencies=False)
    plain_seconds = time.perf_counter() - started
    started = time.perf_counter()
    snapshot = take_snapshot(source_url, source="generated")
    with_deps_seconds = time.perf_counter() - started
    dump = dump_schema(source_url)
    default = len(snapshot.kind("table")) > COMPACT_TABLES
    renderings = {"compact" if default else "operations": default,
                  "operations" if default else "compact": not default}

    with tempfile.TemporaryDirectory() as tmp:
        projects, texts, render_seconds = {}, {}, {}
        for name, compact in renderings.items():
            versions = Path(tmp) / name / "versions"
            versions.mkdir(parents=True)
            render_started = time.perf_counter()
            texts[name] = render_baseline(snapshot, revision="bench0000001",
                                          created=datetime.now(), compact=compact)
            render_seconds[name] = time.perf_counter() - render_started
            (versions / "bench0000001_baseline_schema_bench.py").write_text(texts[name])
            projects[name] = AlembicProject(ini_path=None, script_location=Path(tmp) / name,
                                            versions_dirs=(versions,))
        trips: dict[str, list[dict[str, Any]]] = {name: [] for name in renderings}
        loads = []
        for i in range(repeat):
            reference_db = f"bench_rt_psql_{tables}"
            drop_database(admin_url, reference_db)
            loads.append(load_sql(create_database(admin_url, reference_db), dump))
            drop_database(admin_url, reference_db)
            for name in renderings:
                trips[name].append(_round_trip_once(admin_url, tables, projects[name],
                                                    snapshot))
            print(f"  run {i + 1}/{repeat}: psql -f {loads[-1]:.2f} s, "
                  + ", ".join(f"{name} {trips[name][-1]['total']:.2f} s" for name in trips),
                  flush=True)

    psql_seconds = statistics.median(loads)
    print(f"round trip on {tables} generated tables (median of {repeat}, same run)")
    print(f"  snapshot of the source: {plain_seconds:.2f} s, with its dependencies: "
          f"{with_deps_seconds:.2f} s ({len(snapshot.dependencies or ())} dependencies)")
    print(f"  reference, psql -f of its pg_dump: {psql_seconds:.2f} s")
    for name, runs in trips.items():
        def med(key: str, runs: list[dict[str, Any]] = runs) -> float:
            return statistics.median(t[key] for t in runs)

        text = texts[name]
        chosen = " (render_baseline's choice at this size)" if name == next(iter(trips)) else ""
        print(f"  {name} rendering{chosen}:")
        print(f"    render: {render_seconds[name]:.2f} s ({len(text.splitlines())} lines, "
              f"{len(text.encode()) / 1e6:.1f} MB)")
        print(f"    upgrade: {med('upgrade'):.2f} s, of which {med('execute'):.2f} s in "
              f"cursor.execute ({runs[0]['statements']} statements) and "
              f"{med('upgrade') - med('execute'):.2f} s in Alembic/SQLAlchemy")
        print(f"    snapshot of the upgraded db: {med('snapshot'):.2f} s, diff: "
              f"{med('diff'):.2f} s (empty={all(t['empty'] for t in runs)})")
        ratio = med("total") / psql_seconds
        print(f"    round trip (upgrade + snapshot + diff): {med('total'):.2f} s, "
              f"{ratio:.2f}x psql -f   target <= 2x -> " + ("met" if ratio <= 2 else "NOT met"))


#: Runs the real reset_baseline job in a fresh interpreter; prints its peak memory.
#: Peak RSS is the kernel's VmHWM of the child itself (see bench_snapshot.py).
CHILD_JOB = r"""
import json, sys, time
def hwm_kib():
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
import dagster as dg
from abparts_ops.core.settings import load_settings
from abparts_ops.definitions import build_definitions
before = hwm_kib()
started = time.perf_counter()
settings = load_settings(sys.argv[1])
job = build_definitions(settings, demo=False).get_job_def("reset_baseline")
result = job.execute_in_process(instance=dg.DagsterInstance.ephemeral(), raise_on_error=False)
failure = [str(e.event_specific_data.error.message)[:500] for e in result.all_events
           if e.event_type_value == "STEP_FAILURE"]
print(json.dumps({"before_kib": before, "peak_kib": hwm_kib(),
                  "seconds": time.perf_counter() - started, "success": result.success,
                  "failure": failure}))
"""

#: Runs reset_baseline as ``abparts-ops reset`` does (Dagster's ``execute_run`` on the
#: instance of DAGSTER_HOME, the in-process executor): the path of every real reset. Unlike
#: ``execute_in_process`` above, it does not keep every step's output in memory for the
#: result object (Dagster's output capture: the source snapshot, the dump text...).
CHILD_CLI = r"""
import contextlib, io, json, sys, time
def hwm_kib():
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
import dagster as dg
from abparts_ops.cli import main
from abparts_ops.definitions import build_definitions
before = hwm_kib()
started = time.perf_counter()
out = io.StringIO()
with contextlib.redirect_stdout(out):
    code = main(["reset", "--json"])
print(json.dumps({"before_kib": before, "peak_kib": hwm_kib(),
                  "seconds": time.perf_counter() - started, "success": code == 0,
                  "failure": [] if code == 0 else [out.getvalue()[-500:]]}))
"""

#: Loads a history in a fresh interpreter (after importing Alembic and SQLAlchemy).
CHILD_HISTORY = r"""
import json, sys, time
def status(key):
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith(key + ":"):
                return int(line.split()[1])
from alembic.config import Config
from alembic.script import ScriptDirectory
import sqlalchemy as sa
before = status("VmRSS")
started = time.perf_counter()
script = ScriptDirectory.from_config(Config(sys.argv[1]))
revisions = list(script.walk_revisions())
for rev in revisions:
    rev.module  # imported by walk_revisions: every revision file is executed
seconds = time.perf_counter() - started
print(json.dumps({"before_kib": before, "peak_kib": status("VmHWM"), "seconds": seconds,
                  "revisions": len(revisions)}))
"""

ALEMBIC_INI = "[alembic]\nscript_location = %(here)s/migrations\npath_separator = os\n"
ENV_PY = 'raise RuntimeError("env.py is never run by abparts_ops")\n'
OLD_REVISION = '''"""the old history"""
revision = "0ld000000001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade():
    pass


def downgrade():
    pass
'''
CONFIG = """\
alembic:
  config: app/alembic.ini
source: dev
scratch: {url_env: BENCH_RESET_SCRATCH_URL}
environments:
  dev: {url_env: BENCH_RESET_DEV_URL}
"""


def _child(code: str, args: list[str], env: dict[str, str]) -> dict[str, Any]:
    proc = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                          cwd=REPO, env={**os.environ, **env})
    if proc.returncode:
        raise SystemExit(f"child failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def bench_memory(admin_url: str, tables: int) -> None:
    """Peak memory of the reset_baseline job, and the cost of loading its history."""
    info = EmbeddedPostgres(BENCH_HOME).info()
    source_url, _loaded = ensure_database(info, tables, rebuild=False)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        migrations = root / "app" / "migrations"
        (migrations / "versions").mkdir(parents=True)
        (migrations / "env.py").write_text(ENV_PY)
        (migrations / "versions" / "0ld000000001_old.py").write_text(OLD_REVISION)
        (root / "app" / "alembic.ini").write_text(ALEMBIC_INI)
        (root / "abparts_ops.yaml").write_text(CONFIG)
        env = {
            "BENCH_RESET_DEV_URL": source_url,
            "BENCH_RESET_SCRATCH_URL": admin_url,
            "ABPARTS_OPS_HOME": str(root / "home"),
            "DAGSTER_HOME": str(root / "home"),
        }
        (root / "home").mkdir()
        job = _child(CHILD_JOB, [str(root / "abparts_ops.yaml")], env)
        written = sorted((migrations / "versions").glob("*_baseline_schema_*.py"))
        compiled = sorted((migrations / "versions" / "__pycache__").glob("*_baseline_*.pyc"))
        for path in compiled:  # the history's first load in a fresh checkout compiles it
            path.unlink()
        size = written[0].stat().st_size if written else 0
        lines = len(written[0].read_text().splitlines()) if written else 0
        history = _child(CHILD_HISTORY, [str(root / "app" / "alembic.ini")], {}) if written \
            else None
        cached = _child(CHILD_HISTORY, [str(root / "app" / "alembic.ini")], {}) if written \
            else None
        # the same reset again, as `abparts-ops reset` runs it, on a fresh copy of the project
        # (the old revision back, the baseline and the reference dump gone) and instance
        cli_root = root / "cli"
        (cli_root / "app" / "migrations" / "versions").mkdir(parents=True)
        (cli_root / "app" / "migrations" / "env.py").write_text(ENV_PY)
        (cli_root / "app" / "migrations" / "versions" / "0ld000000001_old.py").write_text(
            OLD_REVISION)
        (cli_root / "app" / "alembic.ini").write_text(ALEMBIC_INI)
        (cli_root / "abparts_ops.yaml").write_text(CONFIG)
        (cli_root / "home").mkdir()
        (cli_root / "home" / "dagster.yaml").write_text((REPO / "dagster.yaml").read_text())
        cli = _child(CHILD_CLI, [], {
            **env, "ABPARTS_OPS_HOME": str(cli_root / "home"),
            "DAGSTER_HOME": str(cli_root / "home"),
            "ABPARTS_OPS_CONFIG": str(cli_root / "abparts_ops.yaml"),
            "ABPARTS_OPS_LOG": str(cli_root / "home" / "reset.log"),
        })
    print(f"reset_baseline job on {tables} generated tables (a fresh process)")
    print(f"  job: {job['seconds']:.1f} s, success={job['success']}"
          + (f" ({job['failure'][0]})" if job["failure"] else ""))
    print(f"  peak memory, execute_in_process (Dagster keeps every output for the result): "
          f"{job['peak_kib'] / 1024:.0f} MiB (after imports {job['before_kib'] / 1024:.0f} MiB)")
    peak_mb = cli["peak_kib"] * 1024 / 1e6
    print(f"  as `abparts-ops reset` runs it (execute_run): {cli['seconds']:.1f} s, "
          f"success={cli['success']}, peak memory {cli['peak_kib'] / 1024:.0f} MiB = "
          f"{peak_mb:.0f} MB (after imports {cli['before_kib'] / 1024:.0f} MiB)   "
          "target < 500 MB -> " + ("met" if peak_mb < 500 and cli["success"] else "NOT met")
          + (f" ({cli['failure'][0]})" if cli["failure"] else ""))
    if history is not None:
        print(f"  baseline: {size / 1e6:.1f} MB, {lines} lines")
        extra = (history["peak_kib"] - history["before_kib"]) / 1024
        print(f"  loading the history ({history['revisions']} revision(s)), first time "
              "(compiled: a fresh checkout, no .pyc): "
              f"{history['seconds']:.2f} s, +{extra:.0f} MiB on top of Alembic and "
              f"SQLAlchemy ({history['before_kib'] / 1024:.0f} MiB)   target < 150 MB, < 1 s")
        assert cached is not None
        extra = (cached["peak_kib"] - cached["before_kib"]) / 1024
        print(f"  loading it again (its .pyc written): {cached['seconds']:.2f} s, "
              f"+{extra:.0f} MiB")


def main() -> None:
    """Run the benchmarks asked for and print their figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tables", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=6, help="round trips (median)")
    parser.add_argument("--memory", default="", help="sizes for the job's memory, e.g. 1000,5000")
    parser.add_argument("--skip-job", action="store_true")
    parser.add_argument("--skip-round-trip", action="store_true")
    args = parser.parse_args()
    BENCH_HOME.mkdir(parents=True, exist_ok=True)
    admin_url = EmbeddedPostgres(BENCH_HOME).start().url("postgres")
    print(f"load average: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores", flush=True)
    if not args.skip_job:
        bench_job(admin_url)
    if not args.skip_round_trip:
        bench_round_trip(admin_url, args.tables, args.repeat)
    for size in [int(s) for s in args.memory.split(",") if s.strip()]:
        bench_memory(admin_url, size)


if __name__ == "__main__":
    main()
