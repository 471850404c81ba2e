"""Benchmark: the whole ``reset_baseline`` job on the demo, and the round trip at scale.

Usage::

    .venv/bin/python benchmarks/bench_reset_baseline.py [--tables 1000] [--skip-job]

1. The ``reset_baseline`` job (snapshot, reference dump, history, baseline, every proof)
   on a fresh copy of the demo project, in process on a real Dagster instance. Target:
   under 20 s on 2 cores. Reference measured in the same run: the bare minimum a person
   does by hand, ``pg_dump --schema-only`` of dev piped into ``psql -f`` on an empty db.
2. The round trip (upgrade an empty database with the generated baseline, snapshot it,
   diff against the source) on a generated schema of ``--tables`` tables. Target: at
   most 3x the time ``psql -f`` takes to load that schema's ``pg_dump``, same run.

Everything runs on a dedicated embedded server under ``.abparts_ops/bench``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import dagster as dg  # noqa: E402
from schema_generator import generate_schema_sql  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from abparts_ops.core.db import (  # noqa: E402
    connect,
    create_database,
    drop_database,
    make_engine,
)
from abparts_ops.core.migrations.baseline_render import render_baseline  # noqa: E402
from abparts_ops.core.migrations.migrate import upgrade  # noqa: E402
from abparts_ops.core.migrations.project import AlembicProject  # noqa: E402
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


def bench_round_trip(admin_url: str, tables: int) -> None:
    """Time the round trip of a generated schema against loading its pg_dump."""
    source = f"bench_rt_source_{tables}"
    drop_database(admin_url, source)
    source_url = create_database(admin_url, source)
    load_sql(source_url, generate_schema_sql(tables))
    snapshot = take_snapshot(source_url, source="generated")
    dump = dump_schema(source_url)

    reference_db = f"bench_rt_psql_{tables}"
    drop_database(admin_url, reference_db)
    psql_seconds = load_sql(create_database(admin_url, reference_db), dump)
    drop_database(admin_url, reference_db)

    with tempfile.TemporaryDirectory() as tmp:
        versions = Path(tmp) / "versions"
        versions.mkdir()
        render_started = time.perf_counter()
        source_text = render_baseline(snapshot, revision="bench0000001", created=datetime.now())
        render_seconds = time.perf_counter() - render_started
        (versions / "bench0000001_baseline_schema_bench.py").write_text(source_text)
        project = AlembicProject(ini_path=None, script_location=Path(tmp),
                                 versions_dirs=(versions,))
        target = f"bench_rt_target_{tables}"
        drop_database(admin_url, target)
        target_url = create_database(admin_url, target)
        started = time.perf_counter()
        engine = make_engine(target_url)
        with connect(engine) as conn:
            upgrade(conn, project, "heads")
        engine.dispose()
        built = take_snapshot(target_url, source="baseline")
        diff = diff_snapshots(snapshot, built)
        seconds = time.perf_counter() - started
        drop_database(admin_url, target)
    drop_database(admin_url, source)
    print(f"round trip on {tables} generated tables")
    print(f"  render baseline: {render_seconds:.2f} s ({len(source_text.splitlines())} lines)")
    print(f"  upgrade + snapshot + diff: {seconds:.2f} s (diff empty={diff.is_empty})")
    print(f"  reference, psql -f of its pg_dump: {psql_seconds:.2f} s")
    ratio = seconds / psql_seconds
    print(f"  ratio: {ratio:.2f}x   target <= 3x -> " + ("met" if ratio <= 3 else "NOT met"))


def main() -> None:
    """Run both benchmarks and print their figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tables", type=int, default=1000)
    parser.add_argument("--skip-job", action="store_true")
    args = parser.parse_args()
    admin_url = EmbeddedPostgres(BENCH_HOME).start().url("postgres")
    if not args.skip_job:
        bench_job(admin_url)
    bench_round_trip(admin_url, args.tables)


if __name__ == "__main__":
    main()
