"""Benchmark: one ``schema_drift_sensor`` tick over 10, 100, 500 and 1,000 environments.

Usage::

    .venv/bin/python benchmarks/bench_sensor_tick.py [--sizes 10,100,500,1000] [--repeat 3]
                                                      [--workers 16] [--drop]

Every environment is a database holding the demo ABParts schema (62 tables, the demo's
old head), cloned from the demo template on the dedicated embedded server under
``.abparts_ops/bench`` (never the demo's or the tests'). The databases
(``bench_drift_env_NNN``) are *reused* across runs; ``--drop`` drops them at the end.
The server runs with ``max_connections=300``: keep ``--workers`` well below it.

A tick is the real sensor, evaluated as the daemon does (``build_sensor_context`` on a
temporary instance holding an ``expected_schemas`` materialization, whose ``index``
metadata is the reference: the demo history's expected schemas, built once on the bench
server and cached): one event-log read, one probe per environment, concurrently, then
the classification by :mod:`abparts_ops.core.watch.reference`, observations and cursor. Two
kinds of tick are timed: the *first* tick (empty cursor: every probe runs the full
fingerprint query) and a *steady* tick (the cursor of the tick before, as the daemon
passes it: every probe checks its catalog token, and reuses the fingerprint when no
catalog changed). The targets apply to the steady tick, which is every tick but the first
after the sensor starts and the ones right after a schema change.
Measured in the same run, at the same concurrency: ``SELECT 1`` over a new connection per
environment (the same ``connect_dbapi`` path the probe uses, through the same
:func:`~abparts_ops.core.watch.drift.probe_all`), so the table shows what the probe's catalog
query costs beyond a bare round trip. Medians of ``--repeat`` runs.

CPU is measured too (this process, and the server's backends through the postmaster's
``cutime``/``cstime``): per environment, and as the tick's lower bound on idle cores
(CPU seconds / cores). Wall times move with whatever else runs on the machine; CPU barely
does. Also printed: the same costs one at a time (new connection + ``SELECT 1``; one probe; the
catalog query alone on a warm connection) and the load average, since other processes on
the machine skew every figure.

Targets (2 cores): 100 environments < 3 s, 500 < 15 s, 1,000 < 15 s per steady tick.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import dagster as dg  # noqa: E402
from cpu_meter import CpuMeter  # noqa: E402

from abparts_ops.core.db import (  # noqa: E402
    connect,
    connect_dbapi,
    create_database,
    drop_database,
    make_engine,
    with_database,
)
from abparts_ops.core.history.expected import load_or_build_expected  # noqa: E402
from abparts_ops.core.history.project import load_project  # noqa: E402
from abparts_ops.core.schema.catalog_sql import PROBE_SQL  # noqa: E402
from abparts_ops.core.schema.exclusions import compile_patterns  # noqa: E402
from abparts_ops.core.schema.introspect import exclusion_patterns  # noqa: E402
from abparts_ops.core.settings import load_settings  # noqa: E402
from abparts_ops.core.watch.drift import DriftCursor, ProbeTarget, probe_all  # noqa: E402
from abparts_ops.core.watch.probe import ProbeResult, probe  # noqa: E402
from abparts_ops.core.watch.states import EnvironmentState  # noqa: E402
from abparts_ops.defs.resources import AlembicResource, SchemaPolicyResource  # noqa: E402
from abparts_ops.defs.sensors import build_schema_drift_sensor  # noqa: E402
from abparts_ops.embedded.demo import (  # noqa: E402
    DEFAULT_TEMPLATE,
    build_template,
    prepare_demo_project,
)
from abparts_ops.embedded.server import EmbeddedPostgres  # noqa: E402

BENCH_HOME = REPO / ".abparts_ops" / "bench"
PREFIX = "bench_drift_env_"
EXCLUDE = ("knowledge_documents", "document_chunks")
TARGETS = {100: 3.0, 500: 15.0, 1000: 15.0}


def env_name(index: int) -> str:
    """Environment name of database ``index`` (``env000`` is the source)."""
    return f"env{index:03d}"


def database_name(index: int) -> str:
    """Database name of environment ``index`` on the bench server."""
    return f"{PREFIX}{index:03d}"


def url_variable(index: int) -> str:
    """Variable holding environment ``index``'s URL (set in this process only)."""
    return f"ABPT_BENCH_ENV{index:03d}_URL"


def existing_databases(admin_url: str) -> set[str]:
    """Names of the bench environment databases already on the server."""
    engine = make_engine(admin_url, label="bench server")
    try:
        with connect(engine, label="bench server") as conn:
            rows = conn.exec_driver_sql(
                "SELECT datname FROM pg_database WHERE datname LIKE %(p)s", {"p": PREFIX + "%"}
            ).all()
    finally:
        engine.dispose()
    return {str(row[0]) for row in rows}


def ensure_environments(admin_url: str, count: int) -> list[str]:
    """URLs of ``count`` environment databases, creating the missing ones from the template."""
    have = existing_databases(admin_url)
    missing = [i for i in range(count) if database_name(i) not in have]
    if missing:
        print(f"creating {len(missing)} environment databases from the template ...", flush=True)
        started = time.perf_counter()
        for n, index in enumerate(missing, 1):
            create_database(admin_url, database_name(index), template=DEFAULT_TEMPLATE)
            if n % 50 == 0:
                print(f"  {n}/{len(missing)} ({time.perf_counter() - started:.0f} s)", flush=True)
    return [with_database(admin_url, database_name(i)) for i in range(count)]


def write_config(root: Path, count: int) -> Path:
    """A configuration file naming ``count`` environments; returns its path."""
    lines = [
        "alembic:",
        "  config: app/alembic.ini",
        f"source: {env_name(0)}",
        f"exclude: [{', '.join(EXCLUDE)}]",
        "environments:",
    ]
    lines += [f"  {env_name(i)}: {{url_env: {url_variable(i)}}}" for i in range(count)]
    path = root / f"bench_sensor_{count}.yaml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def select_one(url: str, *, environment: str, timeout_s: float = 10, **_: Any) -> ProbeResult:
    """The baseline: a new connection (same path as the probe) and ``SELECT 1``."""
    started = time.perf_counter()
    connection = connect_dbapi(url, label=environment, connect_timeout=max(1, int(timeout_s)))
    try:
        with connection.cursor() as cur:
            cur.execute("SELECT 1")
            cur.fetchone()
    finally:
        connection.close()
    return ProbeResult(environment, "", None, 0, (time.perf_counter() - started) * 1000)


def serial_floor(url: str, repeat: int = 15) -> dict[str, float]:
    """Medians (ms), one at a time: new connection + SELECT 1; one full probe; one probe
    whose catalog token is unchanged; the full query alone on a warm connection."""
    connect_ms = [select_one(url, environment="floor").elapsed_ms for _ in range(repeat)]
    full = [probe(url, environment="floor", exclude=EXCLUDE) for _ in range(repeat)]
    known = full[-1].known()
    cached = [
        probe(url, environment="floor", exclude=EXCLUDE, known=known) for _ in range(repeat)
    ]
    assert all(result.reused for result in cached), "the catalog token moved between probes"
    engine = make_engine(url, label="floor")
    params = {
        "schema": "public",
        "excl": compile_patterns(exclusion_patterns(EXCLUDE)),
        "version_table": '"public"."alembic_version"',
        "privileges": False,
    }
    query_ms = []
    try:
        with connect(engine, label="floor") as conn:
            raw = conn.connection.dbapi_connection
            assert raw is not None
            with raw.cursor() as cur:
                cur.execute("SET search_path TO public, pg_catalog; SET jit = off")
                for _ in range(repeat + 1):
                    started = time.perf_counter()
                    cur.execute(PROBE_SQL, params)
                    cur.fetchall()
                    query_ms.append((time.perf_counter() - started) * 1000)
    finally:
        engine.dispose()
    return {
        "connect_select1": statistics.median(connect_ms),
        "probe": statistics.median(r.elapsed_ms for r in full),
        "probe_cached": statistics.median(r.elapsed_ms for r in cached),
        "query_warm": statistics.median(query_ms[1:]),
    }


def timed(fn: Callable[[], Any], repeat: int, cpu: CpuMeter) -> tuple[float, float, float, Any]:
    """Medians of ``repeat`` calls: wall s, client CPU s, server CPU s; the last result."""
    walls, clients, servers, last = [], [], [], None
    for _ in range(repeat):
        time.sleep(0.3)  # let the previous call's backends exit and be reaped
        client0, server0 = cpu.client_s(), cpu.server_s()
        started = time.perf_counter()
        last = fn()
        walls.append(time.perf_counter() - started)
        clients.append(cpu.client_s() - client0)
        time.sleep(0.3)
        servers.append(cpu.server_s() - server0)
    return (
        statistics.median(walls),
        statistics.median(clients),
        statistics.median(servers),
        last,
    )


def main() -> None:
    """Build (or reuse) the environments, tick, measure, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10,100,500,1000")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--workers", type=int, default=16)
    parser.add_argument("--drop", action="store_true", help="drop the databases at the end")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    if args.workers >= 250:
        parser.error("--workers must stay well below the server's max_connections (300)")

    server = EmbeddedPostgres(BENCH_HOME)
    admin_url = server.start().url("postgres")
    cpu = CpuMeter(server)
    # a copy of the demo project of our own: other benchmarks may reset theirs
    layout = prepare_demo_project(BENCH_HOME / "sensor_tick")
    build_template(admin_url, layout)
    urls = ensure_environments(admin_url, max(sizes))
    for index, url in enumerate(urls):
        os.environ[url_variable(index)] = url
    reference = probe(urls[0], environment=env_name(0), exclude=EXCLUDE)
    print(
        f"server: embedded PostgreSQL under {BENCH_HOME}; {os.cpu_count()} CPUs; "
        f"{reference.table_count} tables per environment; workers {args.workers}; "
        f"median of {args.repeat}",
        flush=True,
    )

    expected, reused = load_or_build_expected(
        admin_url,
        load_project(ini_path=layout.alembic_ini),
        exclude=EXCLUDE,
        cache_dir=BENCH_HOME / "expected_cache",
    )
    head = expected.heads[0]
    assert expected.probe_fingerprint(head) == reference.fingerprint, "template is not the head"
    print(
        f"expected schemas: {len(expected.order)} revisions, head {head} "
        f"({'reused from the cache' if reused else 'built'})",
        flush=True,
    )
    floor = serial_floor(urls[0])
    rows = []
    with dg.instance_for_test() as instance:
        instance.report_runless_asset_event(
            dg.AssetMaterialization(
                "expected_schemas",
                metadata={"index": dg.MetadataValue.json(expected.index().to_dict())},
            )
        )
        for size in sizes:
            settings = load_settings(write_config(layout.root, size))
            sensor = build_schema_drift_sensor(settings, demo=True, max_workers=args.workers)
            resources = {
                "alembic": AlembicResource(ini_path=str(layout.alembic_ini)),
                "policy": SchemaPolicyResource(
                    source=env_name(0), exclude=list(EXCLUDE), reference_path="unused.sql"
                ),
            }

            def tick(
                cursor: str | None = None,
                sensor: dg.SensorDefinition = sensor,
                resources: Any = resources,
            ) -> Any:
                with dg.build_sensor_context(
                    instance=instance, resources=resources, cursor=cursor
                ) as ctx:
                    return sensor.evaluate_tick(ctx)

            tick()  # warm: Alembic heads cached, as on every tick but the first
            first_s, first_client, first_server, first = timed(tick, args.repeat, cpu)
            # With more environments than one tick's budget can probe in full (about 650
            # here), the first tick leaves some without a token; the ticks after it catch
            # up. Steady state is the cursor once every environment holds its token.
            steady_cursor = first.cursor
            for _ in range(3):
                memories = DriftCursor.decode(steady_cursor).environments.values()
                if all(memory.token for memory in memories):
                    break
                steady_cursor = tick(steady_cursor).cursor
            tick_s, tick_client, tick_server, data = timed(
                lambda cursor=steady_cursor: tick(cursor), args.repeat, cpu
            )
            reused = sum(
                1
                for event in data.asset_events
                if event.metadata.get("catalogs_unchanged") is not None
                and event.metadata["catalogs_unchanged"].value == 1
            )
            targets = [ProbeTarget(env_name(i), urls[i]) for i in range(size)]
            select_s, select_client, select_server, outcomes = timed(
                lambda targets=targets: probe_all(
                    targets, max_workers=args.workers, probe_fn=select_one
                ),
                args.repeat,
                cpu,
            )
            statuses = [
                memory.status for memory in DriftCursor.decode(data.cursor).environments.values()
            ]
            in_sync = statuses.count(EnvironmentState.IN_SYNC)
            failed = sum(1 for o in outcomes if not o.ok)
            rows.append(
                {
                    "envs": size,
                    "first_s": first_s,
                    "first_cpu_per_env_ms": (first_client + first_server) * 1000 / size,
                    "reused": reused,
                    "tick_s": tick_s,
                    "per_env_ms": tick_s * 1000 / size,
                    "select1_s": select_s,
                    "select1_per_env_ms": select_s * 1000 / size,
                    "ratio": tick_s / select_s if select_s else float("nan"),
                    "cpu_per_env_ms": (tick_client + tick_server) * 1000 / size,
                    "server_cpu_per_env_ms": tick_server * 1000 / size,
                    "select1_cpu_per_env_ms": (select_client + select_server) * 1000 / size,
                    "idle_s": (tick_client + tick_server) / (os.cpu_count() or 1),
                    "in_sync": in_sync,
                    "errors": failed,
                    "target": TARGETS.get(size),
                }
            )
            print(f"  {size} environments done", flush=True)

    print()
    print(
        "| envs | first tick (s) | CPU per env: first (ms) | steady tick (s) | per env (ms) | "
        "fingerprints reused | SELECT 1 (s) | SELECT 1 per env (ms) | steady / SELECT 1 | "
        "CPU per env: steady (ms) | of which server | CPU per env: SELECT 1 (ms) | "
        "steady on idle cores (s) | in sync | target | met |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|:---:|")
    for r in rows:
        target = f"< {r['target']:g} s" if r["target"] else "-"
        met = "-" if not r["target"] else ("yes" if r["tick_s"] < r["target"] else "NO")
        print(
            f"| {r['envs']} | {r['first_s']:.2f} | {r['first_cpu_per_env_ms']:.1f} | "
            f"{r['tick_s']:.2f} | {r['per_env_ms']:.1f} | {r['reused']}/{r['envs']} | "
            f"{r['select1_s']:.2f} | {r['select1_per_env_ms']:.1f} | {r['ratio']:.1f}x | "
            f"{r['cpu_per_env_ms']:.1f} | {r['server_cpu_per_env_ms']:.1f} | "
            f"{r['select1_cpu_per_env_ms']:.1f} | {r['idle_s']:.2f} | "
            f"{r['in_sync']}/{r['envs']} | {target} | {met} |"
        )

    print()
    print(
        "one at a time (medians): new connection + SELECT 1 "
        f"{floor['connect_select1']:.1f} ms; one full probe (new connection + catalog "
        f"query) {floor['probe']:.1f} ms; one probe with an unchanged catalog token "
        f"{floor['probe_cached']:.1f} ms; the full catalog query alone on a warm connection "
        f"{floor['query_warm']:.1f} ms"
    )
    load = os.getloadavg()
    print(f"load average during the run: {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f}")

    if args.drop:
        for index in range(max(sizes)):
            drop_database(admin_url, database_name(index))
        print(f"dropped {max(sizes)} databases")


if __name__ == "__main__":
    main()
