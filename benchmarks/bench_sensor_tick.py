"""Benchmark: ``schema_drift_sensor`` ticks over 100 and 1,000 environments (issue 19.5).

Usage::

    .venv/bin/python benchmarks/bench_sensor_tick.py [--sizes 100,1000] [--repeat 3]
                                                      [--workers 16] [--no-pgbouncer] [--drop]
                                                      [--pool-mode transaction|session]

Every environment is a database holding the demo ABParts schema (60 tables, the demo's
old head), cloned from the demo template on the dedicated embedded server under
``.abparts_ops/bench`` (never the demo's or the tests'). The databases
(``bench_drift_env_NNN``) are *reused* across runs; ``--drop`` drops them at the end.

A tick is the real sensor, evaluated as the daemon does (``build_sensor_context`` on a
temporary instance holding an ``expected_schemas`` materialization, whose ``index``
metadata is the reference), with the instance's probe-order memory. Measured:

1. **The first two ticks** (``--repeat`` times, each from an empty cursor and no
   probe-order memory): how many environments tick 1 left unprobed within its 50 s
   budget, and how many were still never probed after tick 2 (target: none).
2. **The steady tick** (the cursor of the tick before, every environment holding its
   catalog token) against ``SELECT 1`` over a new connection per environment (the same
   ``connect_dbapi`` path, through the same :func:`~abparts_ops.core.watch.drift.probe_all`, same
   concurrency, same server, same run). Target: at most 2x.
3. **The same through a real PgBouncer** (unless ``--no-pgbouncer``, or it is not
   installed): Debian's ``pgbouncer`` in front of the bench server, ``--pool-mode``
   transaction (default) or session pooling, one pool per database, the sensor
   unchanged (only the URLs point at PgBouncer). Its steady tick is compared with the
   same direct ``SELECT 1`` (and, for the record, with ``SELECT 1`` through PgBouncer).
   The bench server is restarted with enough ``max_connections`` for one warm server
   connection per database.
4. **Where the time per probe goes**: per probe, the connection (TCP, SCRAM, backend
   start) and the statements, at the tick's concurrency and one at a time; CPU per
   environment of this process, of the server's backends (through the postmaster's
   ``cutime``/``cstime``) and of PgBouncer; the sensor's own work outside the probes
   (tick minus a bare ``probe_all`` of the same targets); and the client's SCRAM key
   derivation (PBKDF2, 4,096 rounds) alone.

Medians of ``--repeat`` runs. Wall times move with whatever else runs on the machine
(the load average is printed); CPU barely does.
"""
from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import statistics
import sys
import time
from collections.abc import Callable, Iterator, Sequence
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
from abparts_ops.core.history.expected_cache import load_or_build_expected  # noqa: E402
from abparts_ops.core.history.project import load_project  # noqa: E402
from abparts_ops.core.settings import load_settings  # noqa: E402
from abparts_ops.core.watch.drift import (  # noqa: E402
    PROBED,
    DriftCursor,
    ProbeOutcome,
    ProbeTarget,
    decode_probe_statuses,
    probe_all,
)
from abparts_ops.core.watch.probe import ProbeResult, probe  # noqa: E402
from abparts_ops.core.watch.states import EnvironmentState  # noqa: E402
from abparts_ops.defs.drift_tick import PROBE_ORDER_KEY  # noqa: E402
from abparts_ops.defs.resources import AlembicResource, SchemaPolicyResource  # noqa: E402
from abparts_ops.defs.sensors import build_schema_drift_sensor  # noqa: E402
from abparts_ops.embedded.demo import (  # noqa: E402
    DEFAULT_TEMPLATE,
    build_template,
    prepare_demo_project,
)
from abparts_ops.embedded.pgbouncer import (  # noqa: E402
    PgBouncerInfo,
    find_pgbouncer,
    run_pgbouncer,
)
from abparts_ops.embedded.server import EmbeddedPostgres  # noqa: E402

BENCH_HOME = REPO / ".abparts_ops" / "bench"
PREFIX = "bench_drift_env_"
EXCLUDE = ("knowledge_documents", "document_chunks")
TARGET_RATIO = 2.0


def env_name(index: int) -> str:
    """Environment name of database ``index`` (``env000`` is the source)."""
    return f"env{index:03d}"


def database_name(index: int) -> str:
    """Database name of environment ``index`` on the bench server."""
    return f"{PREFIX}{index:03d}"


def url_variable(index: int, via: str = "") -> str:
    """Variable holding environment ``index``'s URL (set in this process only)."""
    return f"ABPT_BENCH{via}_ENV{index:03d}_URL"


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


def write_config(root: Path, count: int, via: str = "") -> Path:
    """A configuration file naming ``count`` environments; returns its path."""
    lines = [
        "alembic:",
        "  config: app/alembic.ini",
        f"source: {env_name(0)}",
        f"exclude: [{', '.join(EXCLUDE)}]",
        "environments:",
    ]
    lines += [f"  {env_name(i)}: {{url_env: {url_variable(i, via)}}}" for i in range(count)]
    path = root / f"bench_sensor_{count}{via.lower()}.yaml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def select_one(url: str, *, environment: str, timeout_s: float = 10, **_: Any) -> ProbeResult:
    """The baseline: a new connection (same path as the probe) and ``SELECT 1``."""
    started = time.perf_counter()
    connection = connect_dbapi(url, label=environment, connect_timeout=max(1, int(timeout_s)))
    connected = time.perf_counter()
    try:
        with connection.cursor() as cur:
            cur.execute("SELECT 1")
            cur.fetchone()
        queried = time.perf_counter()
    finally:
        connection.close()
    return ProbeResult(
        environment, "", None, 0, (time.perf_counter() - started) * 1000,
        connect_ms=(connected - started) * 1000, query_ms=(queried - connected) * 1000,
    )


class PooledCpuMeter(CpuMeter):
    """:class:`cpu_meter.CpuMeter`, plus the backends still open and PgBouncer's own CPU.

    Backends kept open by PgBouncer are never reaped, so they are read one by one
    (``pg_stat_activity``'s pids, ``/proc/<pid>/stat``).
    """

    def __init__(self, server: EmbeddedPostgres, admin_url: str) -> None:
        super().__init__(server)
        self.admin_url = admin_url
        self.pgbouncer_pid: int | None = None

    def server_s(self) -> float:
        """CPU seconds of the server's backends: exited ones, plus those still open."""
        connection = connect_dbapi(self.admin_url, label="bench server")
        try:
            with connection.cursor() as cur:
                cur.execute(
                    "SELECT pid FROM pg_stat_activity WHERE backend_type = 'client backend' "
                    "AND pid <> pg_backend_pid()"
                )
                pids = [int(row[0]) for row in cur.fetchall()]
        finally:
            connection.close()
        return super().server_s() + sum(self.proc_s(pid) for pid in pids)

    def pgbouncer_s(self) -> float:
        """CPU seconds of the running PgBouncer (0 when none)."""
        return self.proc_s(self.pgbouncer_pid) if self.pgbouncer_pid else 0.0


def timed(
    fn: Callable[[], Any], repeat: int, cpu: PooledCpuMeter
) -> tuple[float, dict[str, float], Any]:
    """Medians of ``repeat`` calls: wall s and CPU s (client, server, pgbouncer); last result."""
    walls: list[float] = []
    cpus: dict[str, list[float]] = {"client": [], "server": [], "pgbouncer": []}
    last = None
    for _ in range(repeat):
        time.sleep(0.3)  # let the previous call's backends exit and be reaped
        before = (cpu.client_s(), cpu.server_s(), cpu.pgbouncer_s())
        started = time.perf_counter()
        last = fn()
        walls.append(time.perf_counter() - started)
        client = cpu.client_s() - before[0]
        time.sleep(0.3)
        cpus["client"].append(client)
        cpus["server"].append(cpu.server_s() - before[1])
        cpus["pgbouncer"].append(cpu.pgbouncer_s() - before[2])
    return statistics.median(walls), {k: statistics.median(v) for k, v in cpus.items()}, last


def median_of(outcomes: Sequence[ProbeOutcome], attribute: str) -> float:
    """Median of one ProbeResult timing over the outcomes that answered."""
    values = [getattr(o.result, attribute) for o in outcomes if o.result is not None]
    return statistics.median(values) if values else float("nan")


def scram_client_ms(repeat: int = 20) -> float:
    """What a SCRAM-SHA-256 client spends deriving its key (PBKDF2, 4,096 rounds), ms."""
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        hashlib.pbkdf2_hmac("sha256", b"x" * 32, b"s" * 16, 4096)
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


class Bench:
    """The sensor, the instance and the targets of one size, direct or through PgBouncer."""

    def __init__(
        self, instance: dg.DagsterInstance, layout: Any, size: int, workers: int, via: str
    ) -> None:
        settings = load_settings(write_config(layout.root, size, via))
        self.sensor = build_schema_drift_sensor(settings, demo=True, max_workers=workers)
        self.resources = {
            "alembic": AlembicResource(settings=settings),
            "policy": SchemaPolicyResource(settings=settings),
        }
        self.instance = instance
        self.size = size
        self.workers = workers
        self.via = via

    def tick(self, cursor: str | None = None) -> Any:
        """One tick, as the daemon evaluates it."""
        with dg.build_sensor_context(
            instance=self.instance, resources=self.resources, cursor=cursor
        ) as ctx:
            return self.sensor.evaluate_tick(ctx)

    def statuses(self) -> dict[str, str]:
        """The probe-order memory the last tick left (environment -> how its probe went)."""
        text = self.instance.run_storage.get_cursor_values({PROBE_ORDER_KEY}).get(
            PROBE_ORDER_KEY
        )
        return decode_probe_statuses(text)

    def forget_order(self) -> None:
        """Clear the probe-order memory (as before the sensor's very first tick)."""
        self.instance.run_storage.set_cursor_values({PROBE_ORDER_KEY: ""})

    def targets(self, cursor: str | None = None) -> list[ProbeTarget]:
        """The sensor's targets (with the cursor's tokens), for a bare ``probe_all``."""
        memory = DriftCursor.decode(cursor)
        return [
            ProbeTarget(
                env_name(i),
                os.environ[url_variable(i, self.via)],
                exclude=EXCLUDE,
                known=memory.known(env_name(i)),
            )
            for i in range(self.size)
        ]


def two_ticks(bench: Bench, repeat: int) -> list[dict[str, float]]:
    """Tick 1 from nothing, then tick 2: what each left unprobed, ``repeat`` times."""
    rows = []
    for _ in range(repeat):
        bench.forget_order()
        started = time.perf_counter()
        first = bench.tick()
        first_s = time.perf_counter() - started
        after_first = bench.statuses()
        probed = {env for env, status in after_first.items() if status == PROBED}
        started = time.perf_counter()
        bench.tick(first.cursor)
        second_s = time.perf_counter() - started
        probed |= {env for env, status in bench.statuses().items() if status == PROBED}
        rows.append(
            {
                "first_s": first_s,
                "first_missed": bench.size - len({e for e, s in after_first.items()
                                                  if s == PROBED}),
                "second_s": second_s,
                "missed": bench.size - len(probed),
            }
        )
        print(
            f"  {bench.size} envs: tick 1 {first_s:.1f} s, {rows[-1]['first_missed']:.0f} not "
            f"probed; tick 2 {second_s:.1f} s; never probed after two ticks: "
            f"{rows[-1]['missed']:.0f}",
            flush=True,
        )
    return rows


def steady_cursor(bench: Bench, cursor: str | None) -> str | None:
    """Tick until every environment holds its catalog token (at most 4 ticks)."""
    for _ in range(4):
        memories = DriftCursor.decode(cursor).environments
        if len(memories) == bench.size and all(m.token for m in memories.values()):
            break
        cursor = bench.tick(cursor).cursor
    return cursor


def steady(bench: Bench, cursor: str | None, repeat: int, cpu: PooledCpuMeter) -> dict[str, Any]:
    """Time the steady tick and a bare probe_all of the same targets."""
    tick_s, tick_cpu, data = timed(lambda: bench.tick(cursor), repeat, cpu)
    reused = sum(
        1
        for event in data.asset_events
        if event.metadata.get("catalogs_unchanged") is not None
        and event.metadata["catalogs_unchanged"].value == 1
    )
    statuses = [m.status for m in DriftCursor.decode(data.cursor).environments.values()]
    targets = bench.targets(cursor)
    probes_s, probes_cpu, outcomes = timed(
        lambda: probe_all(targets, max_workers=bench.workers), repeat, cpu
    )
    return {
        "tick_s": tick_s,
        "tick_cpu": tick_cpu,
        "reused": reused,
        "in_sync": statuses.count(EnvironmentState.IN_SYNC.value),
        "probes_s": probes_s,
        "probes_cpu": probes_cpu,
        "connect_ms": median_of(outcomes, "connect_ms"),
        "query_ms": median_of(outcomes, "query_ms"),
        "probe_ms": median_of(outcomes, "elapsed_ms"),
        "errors": sum(1 for o in outcomes if not o.ok),
    }


def baseline(bench: Bench, repeat: int, cpu: PooledCpuMeter) -> dict[str, Any]:
    """``SELECT 1`` over a new connection per environment, at the tick's concurrency."""
    targets = bench.targets()
    wall, cpus, outcomes = timed(
        lambda: probe_all(targets, max_workers=bench.workers, probe_fn=select_one), repeat, cpu
    )
    return {
        "s": wall,
        "cpu": cpus,
        "connect_ms": median_of(outcomes, "connect_ms"),
        "query_ms": median_of(outcomes, "query_ms"),
        "errors": sum(1 for o in outcomes if not o.ok),
    }


def serial(url: str, repeat: int = 15) -> dict[str, float]:
    """One at a time (medians, ms): connection, SELECT 1, the steady probe, the full probe."""
    ones = [select_one(url, environment="floor") for _ in range(repeat)]
    full = [probe(url, environment="floor", exclude=EXCLUDE) for _ in range(repeat)]
    known = full[-1].known()
    cached = [probe(url, environment="floor", exclude=EXCLUDE, known=known) for _ in range(repeat)]
    assert all(result.reused for result in cached), "the catalog token moved between probes"
    med = statistics.median
    return {
        "connect": med(r.connect_ms for r in ones),
        "select1": med(r.query_ms for r in ones),
        "steady_connect": med(r.connect_ms for r in cached),
        "steady_query": med(r.query_ms for r in cached),
        "full_connect": med(r.connect_ms for r in full),
        "full_query": med(r.query_ms for r in full),
    }


@contextlib.contextmanager
def bouncer(
    admin_url: str, enabled: bool, sizes: Sequence[int], pool_mode: str
) -> Iterator[PgBouncerInfo | None]:
    """PgBouncer in front of the bench server (None when disabled or not installed)."""
    if not enabled:
        yield None
        return
    if find_pgbouncer() is None:
        print("pgbouncer is not installed (apt-get install pgbouncer): PgBouncer rows skipped")
        yield None
        return
    with run_pgbouncer(
        admin_url, BENCH_HOME / "pgbouncer", pool_mode=pool_mode, pool_size=2
    ) as info:
        for index in range(max(sizes)):
            os.environ[url_variable(index, "PGB")] = info.url(database_name(index))
        yield info


def per_env(seconds: float, size: int) -> float:
    """Seconds for ``size`` environments as milliseconds per environment."""
    return seconds * 1000 / size


def cpu_text(cpus: dict[str, float], size: int) -> str:
    """CPU per environment: client + server (+ PgBouncer), in ms."""
    text = f"{per_env(cpus['client'], size):.1f} + {per_env(cpus['server'], size):.1f}"
    if cpus.get("pgbouncer"):
        text += f" + {per_env(cpus['pgbouncer'], size):.1f}"
    return text


def start_server(pgbouncer: bool, sizes: Sequence[int]) -> tuple[EmbeddedPostgres, str]:
    """The bench server, restarted with a connection per database when PgBouncer is used."""
    server = EmbeddedPostgres(BENCH_HOME)
    needed = max(300, max(sizes) + 100) if pgbouncer and find_pgbouncer() else 300
    admin_url = server.start(max_connections=needed).url("postgres")
    connection = connect_dbapi(admin_url, label="bench server")
    try:
        with connection.cursor() as cur:
            cur.execute("SHOW max_connections")
            current = int(cur.fetchone()[0])
    finally:
        connection.close()
    if current < needed:
        server.stop()
        admin_url = server.start(max_connections=needed).url("postgres")
    return server, admin_url


def main() -> None:
    """Build (or reuse) the environments, tick, measure, print the tables."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="100,1000")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--workers", type=int, default=16)
    parser.add_argument("--no-pgbouncer", action="store_true", help="direct connections only")
    parser.add_argument("--pool-mode", default="transaction", choices=("transaction", "session"))
    parser.add_argument("--drop", action="store_true", help="drop the databases at the end")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    if args.workers >= 250:
        parser.error("--workers must stay well below the server's max_connections")

    server, admin_url = start_server(not args.no_pgbouncer, sizes)
    cpu = PooledCpuMeter(server, admin_url)
    # a copy of the demo project of our own: other benchmarks may reset theirs
    layout = prepare_demo_project(BENCH_HOME / "sensor_tick")
    build_template(admin_url, layout)
    urls = ensure_environments(admin_url, max(sizes))
    for index, url in enumerate(urls):
        os.environ[url_variable(index)] = url
    reference = probe(urls[0], environment=env_name(0), exclude=EXCLUDE)
    load = os.getloadavg()
    print(
        f"server: embedded PostgreSQL under {BENCH_HOME} (SCRAM-SHA-256 over TCP); "
        f"{os.cpu_count()} CPUs; {reference.table_count} tables per environment; workers "
        f"{args.workers}; median of {args.repeat}; load average at start {load[0]:.1f} / "
        f"{load[1]:.1f} / {load[2]:.1f}",
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
    floor = serial(urls[0])
    first_rows: list[tuple[int, list[dict[str, float]]]] = []
    rows: list[dict[str, Any]] = []
    with (
        dg.instance_for_test() as instance,
        bouncer(admin_url, not args.no_pgbouncer, sizes, args.pool_mode) as pgb,
    ):
        instance.report_runless_asset_event(
            dg.AssetMaterialization(
                "expected_schemas",
                metadata={"index": dg.MetadataValue.json(expected.index().to_dict())},
            )
        )
        if pgb is not None:
            cpu.pgbouncer_pid = pgb.pid
            floor_pgb = serial(os.environ[url_variable(0, "PGB")])
        for size in sizes:
            bench = Bench(instance, layout, size, args.workers, "")
            bench.tick(steady_cursor(bench, None))  # warm: Alembic heads cached, pages cached
            first_rows.append((size, two_ticks(bench, args.repeat)))
            cursor = steady_cursor(bench, bench.tick().cursor)
            row: dict[str, Any] = {"envs": size, "direct": steady(bench, cursor, args.repeat, cpu)}
            row["select1"] = baseline(bench, args.repeat, cpu)
            if pgb is not None:
                via = Bench(instance, layout, size, args.workers, "PGB")
                via.tick(cursor)  # warm: one server connection per database in the pools
                row["pgb"] = steady(via, cursor, args.repeat, cpu)
                row["pgb_select1"] = baseline(via, args.repeat, cpu)
            rows.append(row)
            print(f"  {size} environments done", flush=True)
    load = os.getloadavg()

    print()
    print("First ticks: tick 1 from an empty cursor and no probe-order memory, then tick 2")
    print("| envs | tick 1 (s) | not probed by tick 1 | tick 2 (s) | never probed after 2 ticks |")
    print("|---:|---:|---:|---:|---:|")
    for size, runs in first_rows:

        def joined(key: str, fmt: str, runs: list[dict[str, float]] = runs) -> str:
            return " / ".join(format(run[key], fmt) for run in runs)

        print(
            f"| {size} | {joined('first_s', '.1f')} | {joined('first_missed', '.0f')} | "
            f"{joined('second_s', '.1f')} | {joined('missed', '.0f')} |"
        )

    print()
    print(f"Steady tick vs SELECT 1 per environment (new connection each), same run; target "
          f"<= {TARGET_RATIO:g}x. CPU per env = client + server (+ PgBouncer), ms")
    print(
        "| envs | path | steady tick (s) | per env (ms) | fingerprints reused | in sync | "
        "SELECT 1 direct (s) | steady / SELECT 1 direct | met | CPU per env: tick | "
        "CPU per env: SELECT 1 direct | CPU: steady / SELECT 1 direct | SELECT 1 same path (s) "
        "| steady / SELECT 1 same path |"
    )
    print("|---:|:---|---:|---:|---:|---:|---:|---:|:---:|---:|---:|---:|---:|---:|")
    for r in rows:
        size, direct_one = r["envs"], r["select1"]
        for path, key, same in (("direct", "direct", "select1"),
                                (f"PgBouncer ({args.pool_mode})", "pgb", "pgb_select1")):
            if key not in r:
                continue
            s = r[key]
            ratio = s["tick_s"] / direct_one["s"]
            print(
                f"| {size} | {path} | {s['tick_s']:.2f} | {per_env(s['tick_s'], size):.1f} | "
                f"{s['reused']}/{size} | {s['in_sync']}/{size} | {direct_one['s']:.2f} | "
                f"{ratio:.2f}x | {'yes' if ratio <= TARGET_RATIO else 'NO'} | "
                f"{cpu_text(s['tick_cpu'], size)} | {cpu_text(direct_one['cpu'], size)} | "
                f"{sum(s['tick_cpu'].values()) / sum(direct_one['cpu'].values()):.2f}x | "
                f"{r[same]['s']:.2f} | {s['tick_s'] / r[same]['s']:.2f}x |"
            )

    print()
    print(f"Where the time per probe goes (steady, {args.workers} at a time; medians per probe,"
          " ms; CPU per env, ms)")
    print(
        "| envs | path | connect (TCP, SCRAM, backend start) | statements | probe | "
        "SELECT 1: connect | SELECT 1: statement | bare probe_all (s) | sensor's own work "
        "(tick - probe_all, ms per env) | CPU per env: probes | CPU: SELECT 1 |"
    )
    print("|---:|:---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        size = r["envs"]
        for path, key, one in (("direct", "direct", "select1"),
                               (f"PgBouncer ({args.pool_mode})", "pgb", "pgb_select1")):
            if key not in r:
                continue
            s, o = r[key], r[one]
            print(
                f"| {size} | {path} | {s['connect_ms']:.1f} | {s['query_ms']:.1f} | "
                f"{s['probe_ms']:.1f} | {o['connect_ms']:.1f} | {o['query_ms']:.2f} | "
                f"{s['probes_s']:.2f} | {per_env(s['tick_s'] - s['probes_s'], size):.1f} | "
                f"{cpu_text(s['probes_cpu'], size)} | {cpu_text(o['cpu'], size)} |"
            )
    print()
    print(
        f"one at a time, direct (medians, ms): connect {floor['connect']:.1f}, SELECT 1 "
        f"{floor['select1']:.2f}; steady probe: connect {floor['steady_connect']:.1f} + "
        f"statement {floor['steady_query']:.1f}; full probe (first tick, or catalogs "
        f"changed): connect {floor['full_connect']:.1f} + statement {floor['full_query']:.1f}"
    )
    if rows and "pgb" in rows[0]:
        print(
            f"one at a time, through PgBouncer: connect {floor_pgb['connect']:.1f}, SELECT 1 "
            f"{floor_pgb['select1']:.2f}; steady probe: connect "
            f"{floor_pgb['steady_connect']:.1f} + statement {floor_pgb['steady_query']:.1f}"
        )
    print(f"SCRAM-SHA-256 client key derivation alone (PBKDF2-SHA256, 4,096 rounds, in "
          f"Python's hashlib): {scram_client_ms():.1f} ms per connection")
    print(f"load average at the end: {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f}")

    if args.drop:
        for index in range(max(sizes)):
            drop_database(admin_url, database_name(index))
        print(f"dropped {max(sizes)} databases")


if __name__ == "__main__":
    main()
