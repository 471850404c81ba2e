"""Benchmark: the guarded upgrade of one revision on the demo with rows vs ``alembic upgrade``.

Usage::

    .venv/bin/python benchmarks/bench_upgrade.py [--repeat 3] [--no-schema-only]

Setup (not timed): a copy of the demo project, demo environments cloned from the demo
template (the ABParts schema, 62 tables), each loaded with the same deterministic,
realistic rows (:data:`ROWS_SQL`: 10,000 each in ``parts``, ``inventory``,
``machines``, ``machine_hours``, ``transactions`` and ``customer_order_items``; 2,000
``customer_orders``, 500 ``users``, 100 ``warehouses``, 50 ``organizations``, 20
``part_categories``; every foreign key, NOT NULL and CHECK respected) then ``VACUUM
ANALYZE``; the reset done with the core functions (dev's snapshot rendered as a
baseline, the old files archived, every environment stamped with ``alembic stamp
--purge``), one new revision written the normal way (a nullable column and an index on
``parts``) and the expected schemas of the new history built once (the cache the
``expected_schemas`` asset keeps warm).

Timed in the same run, each repetition on its own fresh environments (median of
``--repeat``):

(a) ``alembic.command.upgrade(cfg, "head")`` of ``dev`` through the demo's own ``env.py``
    with a shared connection: the reference;
(b) ``guarded_upgrade`` of ``staging`` (same rows), dry_run=False, default policy: its
    size fits ``rehearsal.max_bytes`` (1 GiB), so the rehearsal runs on a copy WITH ITS
    ROWS (``pg_dump --format=custom --compress=0 | pg_restore``), then lint, apply under
    the lock, verify; ``rehearsal.copy.seconds`` is (c);
(d) by hand, ``pg_dump -Fc <staging> | pg_restore --dbname=<fresh empty database>`` on the
    same server with the same binaries (``find_pg_dump`` of the server's version), done
    before (b) so it copies the same database; creating the empty database is not
    timed. For context (not a target) the same pipeline with the rehearsal's own flags;
(e) (unless ``--no-schema-only``) ``guarded_upgrade`` of a third environment with the
    same rows and ``rehearsal.max_bytes=0``: the schema-only rehearsal of before, with
    its read-only pre-checks on the environment.

Targets (the exit status is 1 when one is missed): (b) - (a) < 5 s; (c) < 2 x (d);
with (e), (e) - (a) <= 10 s (the earlier target). For the breakdown, the benchmark
wraps the rehearsal's ``database_size``, ``scratch_database`` and ``copy_with_rows``
with timers (wall, and for the copy the CPU of its pg_dump and pg_restore); the hand
pipelines also show the CPU of the server's backends (the postmaster's ``cutime +
cstime``). The load average is printed with the table. Everything runs on the dedicated embedded
server under ``.abparts_ops/bench``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from alembic import command  # noqa: E402
from alembic.config import Config  # noqa: E402

from abparts_ops.core.db import (  # noqa: E402
    connect,
    create_database,
    drop_database,
    make_engine,
)
from abparts_ops.core.history.expected_build import build_expected_schemas  # noqa: E402
from abparts_ops.core.history.project import load_project  # noqa: E402
from abparts_ops.core.reset.baseline_files import apply_baseline, plan_baseline  # noqa: E402
from abparts_ops.core.rollout import rehearsal as rehearsal_module  # noqa: E402
from abparts_ops.core.rollout.rehearsal_copy import RehearsalCopy  # noqa: E402
from abparts_ops.core.rollout.upgrade import UpgradePolicy, guarded_upgrade  # noqa: E402
from abparts_ops.core.schema.dump import find_pg_dump, libpq_connection  # noqa: E402
from abparts_ops.core.schema.introspect import take_snapshot  # noqa: E402
from abparts_ops.embedded.demo import (  # noqa: E402
    build_environments,
    build_template,
    demo_database_name,
    prepare_demo_project,
)
from abparts_ops.embedded.server import EmbeddedPostgres  # noqa: E402

BENCH_HOME = REPO / ".abparts_ops" / "bench"
EXCLUDE = ("knowledge_documents", "document_chunks")
OVERHEAD_TARGET_S = 5.0
COPY_RATIO_TARGET = 2.0
SCHEMA_ONLY_TARGET_S = 10.0
NEW_REVISION = "c0ffee000001"
REVISION_TEXT = '''"""add parts.bench_colour

Revision ID: {rev}
Revises: {down}
"""
from alembic import op
import sqlalchemy as sa

revision = {rev!r}
down_revision = {down!r}
branch_labels = None
depends_on = None


def upgrade():
    op.add_column("parts", sa.Column("bench_colour", sa.Text(), nullable=True))
    op.create_index("ix_parts_bench_colour", "parts", ["bench_colour"])


def downgrade():
    op.drop_index("ix_parts_bench_colour", table_name="parts")
    op.drop_column("parts", "bench_colour")
'''

#: Row counts :data:`ROWS_SQL` leaves, checked after every load (and on the hand copy).
ROW_COUNTS = {
    "organizations": 50, "users": 500, "warehouses": 100, "part_categories": 20,
    "parts": 10_000, "inventory": 10_000, "machines": 10_000, "machine_hours": 10_000,
    "transactions": 10_000, "customer_orders": 2_000, "customer_order_items": 10_000,
}

#: The rows every environment gets (deterministic: ids are md5 of a name, no random()).
ROWS_SQL = """
-- organizations: Oraseas EE, BossAqua, 40 customers, 8 suppliers
INSERT INTO organizations (id, name, organization_type, parent_organization_id, address,
                           contact_info, country)
SELECT md5('org:' || g)::uuid,
       CASE WHEN g = 1 THEN 'Oraseas EE'
            WHEN g = 2 THEN 'BossAqua Manufacturing'
            WHEN g <= 42 THEN 'Customer ' || lpad(g::text, 3, '0') || ' Water Services'
            ELSE 'Supplier ' || lpad(g::text, 3, '0') || ' Industrial Supply' END,
       (CASE WHEN g = 1 THEN 'oraseas_ee' WHEN g = 2 THEN 'bossaqua'
             WHEN g <= 42 THEN 'customer' ELSE 'supplier' END)::organization_type,
       CASE WHEN g BETWEEN 3 AND 42 THEN md5('org:1')::uuid END,
       g || ' Harbour Road, Industrial Zone ' || (g % 7 + 1),
       'orders+' || g || '@example.com, +30 210 555 ' || lpad(g::text, 4, '0'),
       (ARRAY['GR', 'CY', 'DE', 'FR', 'IT', 'ES', 'NL', 'SE'])[1 + g % 8]
FROM generate_series(1, 50) g;

-- users: 10 per organization (user g belongs to organization 1 + (g - 1) % 50)
INSERT INTO users (id, username, password_hash, email, name, role, organization_id,
                   last_login, preferred_language)
SELECT md5('user:' || g)::uuid, 'user' || lpad(g::text, 4, '0'),
       '$2b$12$' || md5('salt:' || g) || substr(md5('pw:' || g), 1, 21),
       'user' || g || '@example.com', 'User ' || g,
       (CASE WHEN g <= 2 THEN 'super_admin' WHEN g <= 100 THEN 'admin'
             ELSE 'user' END)::user_role,
       md5('org:' || (1 + (g - 1) % 50))::uuid,
       timestamptz '2026-11-01 08:00+00' + g * interval '37 minutes',
       (ARRAY['en', 'el', 'ar', 'es'])[1 + g % 4]
FROM generate_series(1, 500) g;

-- warehouses: 2 per organization, managed by a user of that organization
INSERT INTO warehouses (id, organization_id, name, location, description, manager_user_id,
                        capacity_m3)
SELECT md5('wh:' || g)::uuid, md5('org:' || (1 + (g - 1) % 50))::uuid,
       CASE WHEN g <= 50 THEN 'Main warehouse' ELSE 'Service van stock' END,
       'Bay ' || g || ', Industrial Zone ' || (g % 7 + 1),
       'Stock of spare parts for the AutoBoss fleet, site ' || g,
       md5('user:' || g)::uuid, 40 + (g * 13) % 400
FROM generate_series(1, 100) g;

INSERT INTO part_categories (id, name, description, sort_order)
SELECT md5('cat:' || g)::uuid,
       (ARRAY['Filters', 'Seals', 'Valves', 'Pumps', 'Membranes', 'Belts', 'Bearings',
              'Nozzles', 'Sensors', 'Hoses', 'Chemicals', 'Brushes', 'Electrical',
              'Fasteners', 'Gaskets', 'Motors', 'Controllers', 'Tanks', 'Fittings',
              'Tools'])[g],
       'Category ' || g || ' of AutoBoss spare parts', g
FROM generate_series(1, 20) g;

-- parts: every 50th superseded by its predecessor (a deferred self-reference)
INSERT INTO parts (id, part_number, name, description, part_type, is_proprietary,
                   unit_of_measure, manufacturer, manufacturer_part_number,
                   manufacturer_delivery_time_days, local_supplier_delivery_time_days,
                   image_urls, category_id, superseded_by_id, minimum_order_quantity,
                   is_active)
SELECT md5('part:' || g)::uuid, 'AB-' || lpad(g::text, 6, '0'),
       kind || ' ' || (10 + g % 90) || ' mm',
       'Replacement ' || lower(kind)
         || ' for AutoBoss V3.1B and V4.0 washers; check the serial plate before ordering. '
         || 'Batch ' || (g % 317) || ', revision ' || chr(65 + g % 26) || '.',
       (CASE WHEN g % 5 = 0 THEN 'bulk_material' ELSE 'consumable' END)::part_type,
       g % 3 = 0,
       CASE WHEN g % 5 = 0 THEN 'liters' ELSE 'pieces' END,
       (ARRAY['BossAqua', 'Grundfos', 'Parker', 'SKF', 'Bosch', 'Danfoss'])[1 + g % 6],
       'MPN-' || upper(substr(md5('mpn:' || g), 1, 10)),
       7 + g % 60, CASE WHEN g % 4 = 0 THEN NULL ELSE 1 + g % 10 END,
       ARRAY['https://cdn.example.com/parts/AB-' || lpad(g::text, 6, '0') || '/front.jpg',
             'https://cdn.example.com/parts/AB-' || lpad(g::text, 6, '0') || '/side.jpg'],
       md5('cat:' || (1 + g % 20))::uuid,
       CASE WHEN g % 50 = 0 THEN md5('part:' || (g - 1))::uuid END,
       1 + g % 4, g % 40 <> 0
FROM generate_series(1, 10000) g,
     LATERAL (SELECT (ARRAY['Filter cartridge', 'O-ring seal', 'Pressure valve',
                            'Pump impeller', 'RO membrane', 'Drive belt', 'Ball bearing',
                            'Spray nozzle', 'Flow sensor',
                            'High-pressure hose'])[1 + g % 10] AS kind) k;

-- inventory: each part stocked in one warehouse (100 parts per warehouse)
INSERT INTO inventory (id, warehouse_id, part_id, current_stock, minimum_stock_recommendation,
                       reorder_threshold_set_by, unit_of_measure, bin_location,
                       last_recount_date)
SELECT md5('inv:' || g)::uuid, md5('wh:' || (1 + (g - 1) % 100))::uuid,
       md5('part:' || g)::uuid, (g * 7) % 500, g % 50, 'system',
       CASE WHEN g % 5 = 0 THEN 'liters' ELSE 'pieces' END,
       'A' || (g % 30) || '-' || (g % 12),
       timestamptz '2026-10-01 00:00+00' + (g % 60) * interval '1 day'
FROM generate_series(1, 10000) g;

-- machines: 250 per customer organization
INSERT INTO machines (id, customer_organization_id, model_type, name, serial_number, status,
                      purchase_date, warranty_expiry_date, installation_location,
                      last_maintenance_date, next_maintenance_date, notes, attributes)
SELECT md5('machine:' || g)::uuid, md5('org:' || (3 + (g - 1) % 40))::uuid,
       CASE WHEN g % 3 = 0 THEN 'V4.0' ELSE 'V3.1B' END,
       'AutoBoss ' || g, 'SN-' || lpad(g::text, 8, '0'),
       (CASE WHEN g % 25 = 0 THEN 'maintenance' WHEN g % 97 = 0 THEN 'decommissioned'
             ELSE 'active' END)::machine_status,
       date '2020-01-01' + g % 2000, date '2022-01-01' + g % 2000,
       'Wash bay ' || (1 + g % 6) || ', station ' || g,
       timestamptz '2026-06-01 00:00+00' + (g % 150) * interval '1 day',
       timestamptz '2027-01-01 00:00+00' + (g % 150) * interval '1 day',
       CASE WHEN g % 10 = 0 THEN 'Customer reports pressure drops after long runs.' END,
       jsonb_build_object('voltage', 400, 'phases', 3, 'pump', 'P' || (g % 4),
                          'firmware', '2.' || (g % 9) || '.' || (g % 13))
FROM generate_series(1, 10000) g;

-- machine hours: one reading per machine, by a user of the machine's organization
INSERT INTO machine_hours (id, machine_id, recorded_by_user_id, hours_value, recorded_date,
                           reading_source, notes, is_verified)
SELECT md5('hours:' || g)::uuid, md5('machine:' || g)::uuid,
       md5('user:' || (3 + (g - 1) % 40))::uuid, (g * 37) % 12000 + 0.5,
       timestamptz '2026-11-01 00:00+00' + (g % 30) * interval '1 day',
       CASE WHEN g % 4 = 0 THEN 'telemetry' ELSE 'manual' END,
       CASE WHEN g % 20 = 0 THEN 'Read from the display at the weekly check.' END,
       g % 3 = 0
FROM generate_series(1, 10000) g;

-- transactions: stock movements (creation, transfer, consumption, adjustment, return)
INSERT INTO transactions (id, transaction_type, part_id, from_warehouse_id, to_warehouse_id,
                          machine_id, quantity, unit_of_measure, performed_by_user_id,
                          transaction_date, notes, reference_number)
SELECT md5('tx:' || g)::uuid,
       (ARRAY['creation', 'transfer', 'consumption', 'adjustment',
              'return'])[1 + g % 5]::transaction_type,
       md5('part:' || (1 + (g * 7) % 10000))::uuid,
       CASE WHEN g % 5 IN (1, 2) THEN md5('wh:' || (1 + g % 100))::uuid END,
       CASE WHEN g % 5 IN (0, 1, 4) THEN md5('wh:' || (1 + (g + 1) % 100))::uuid END,
       CASE WHEN g % 5 = 2 THEN md5('machine:' || (1 + g % 10000))::uuid END,
       1 + g % 20, CASE WHEN g % 5 = 0 THEN 'liters' ELSE 'pieces' END,
       md5('user:' || (1 + g % 500))::uuid,
       timestamptz '2026-01-01 00:00+00' + g * interval '47 minutes',
       CASE WHEN g % 9 = 0 THEN 'Counted twice, see the stocktake.' END,
       'REF-' || lpad(g::text, 7, '0')
FROM generate_series(1, 10000) g;

-- customer orders: 2,000 orders of 5 lines each
INSERT INTO customer_orders (id, customer_organization_id, oraseas_organization_id,
                             order_date, expected_delivery_date, status,
                             ordered_by_user_id, total_amount, notes)
SELECT md5('co:' || g)::uuid, md5('org:' || (3 + (g - 1) % 40))::uuid, md5('org:1')::uuid,
       timestamptz '2026-01-01 00:00+00' + g * interval '3 hours',
       date '2026-01-10' + g / 8,
       (ARRAY['pending', 'processing', 'shipped', 'delivered',
              'cancelled'])[1 + g % 5]::order_status,
       md5('user:' || (3 + (g - 1) % 40))::uuid, (g * 131) % 5000 + 0.99,
       CASE WHEN g % 7 = 0 THEN 'Deliver to the back gate before noon.' END
FROM generate_series(1, 2000) g;

INSERT INTO customer_order_items (id, customer_order_id, part_id, line_number, quantity,
                                  unit_price, notes)
SELECT md5('coi:' || g)::uuid, md5('co:' || (1 + (g - 1) % 2000))::uuid,
       md5('part:' || (1 + (g * 13) % 10000))::uuid, 1 + (g - 1) / 2000, 1 + g % 12,
       (g * 17) % 900 + 0.5, CASE WHEN g % 11 = 0 THEN 'Urgent' END
FROM generate_series(1, 10000) g;
"""


def run_script(url: str, sql: str, *, autocommit: bool = False) -> None:
    """Run ``sql`` (several statements, ``%`` signs and all) through the raw DBAPI cursor."""
    engine = make_engine(url)
    try:
        fairy = engine.raw_connection()
        try:
            raw: Any = fairy.dbapi_connection
            raw.autocommit = autocommit
            with raw.cursor() as cur:
                cur.execute(sql)
            if not autocommit:
                raw.commit()
        finally:
            fairy.close()
    finally:
        engine.dispose()


def row_counts(url: str) -> dict[str, int]:
    """Exact row counts of the tables in :data:`ROW_COUNTS`."""
    engine = make_engine(url)
    try:
        with connect(engine) as conn:
            return {
                table: int(conn.exec_driver_sql(f'SELECT count(*) FROM "{table}"').scalar() or 0)
                for table in ROW_COUNTS
            }
    finally:
        engine.dispose()


def load_rows(url: str) -> None:
    """Load :data:`ROWS_SQL` in one transaction, ``VACUUM ANALYZE``, check the counts."""
    run_script(url, ROWS_SQL)
    run_script(url, "VACUUM ANALYZE", autocommit=True)
    counts = row_counts(url)
    if counts != ROW_COUNTS:
        raise SystemExit(f"row load gave {counts}, expected {ROW_COUNTS}")


def server_facts(url: str) -> tuple[str, int]:
    """The server's version and the database's ``pg_database_size``."""
    engine = make_engine(url)
    try:
        with connect(engine) as conn:
            version = str(conn.exec_driver_sql("SHOW server_version").scalar())
            size = int(
                conn.exec_driver_sql("SELECT pg_database_size(current_database())").scalar() or 0
            )
            return version, size
    finally:
        engine.dispose()


class Cpu:
    """CPU seconds of waited-for children (pg_dump, pg_restore: ``.client``) and, with a
    ``postmaster_pid``, of the server's exited backends (its ``cutime + cstime``:
    ``.server``; the block then ends with a 50 ms sleep for the last one to be reaped)."""

    def __init__(self, postmaster_pid: int | None = None) -> None:
        self.pid = postmaster_pid
        self.tick = os.sysconf("SC_CLK_TCK")
        self.client = self.server = 0.0

    def _server(self) -> float:
        if self.pid is None:
            return 0.0
        with open(f"/proc/{self.pid}/stat", encoding="ascii") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
        return (int(fields[13]) + int(fields[14])) / self.tick  # cutime, cstime

    @staticmethod
    def _children() -> float:
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        return usage.ru_utime + usage.ru_stime

    def __enter__(self) -> Cpu:
        self._c0, self._s0 = self._children(), self._server()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.pid is not None:
            time.sleep(0.05)  # let the postmaster reap the last backends
        self.client = self._children() - self._c0
        self.server = self._server() - self._s0


class Probes:
    """Timers around the rehearsal's own steps (``database_size``, ``scratch_database``,
    ``copy_with_rows``, with the CPU of its pg_dump and pg_restore), installed on
    :mod:`abparts_ops.core.rollout.rehearsal`; they add no wait to what they time."""

    def __init__(self) -> None:
        self.seconds: dict[str, list[float]] = defaultdict(list)
        self.cpu: dict[str, list[float]] = defaultdict(list)

    def reset(self) -> None:
        self.seconds.clear()
        self.cpu.clear()

    def install(self) -> None:
        module: Any = rehearsal_module
        size, scratch, copy = module.database_size, module.scratch_database, module.copy_with_rows

        def timed_size(*args: Any, **kwargs: Any) -> int:
            started = time.perf_counter()
            try:
                return size(*args, **kwargs)
            finally:
                self.seconds["size query"].append(time.perf_counter() - started)

        @contextlib.contextmanager
        def timed_scratch(*args: Any, **kwargs: Any) -> Iterator[str]:
            started = time.perf_counter()
            with scratch(*args, **kwargs) as url:
                self.seconds["scratch create"].append(time.perf_counter() - started)
                yield url
                started = time.perf_counter()
            self.seconds["scratch drop"].append(time.perf_counter() - started)

        def timed_copy(*args: Any, **kwargs: Any) -> None:
            with Cpu() as cpu:
                started = time.perf_counter()
                copy(*args, **kwargs)
                self.seconds["copy_with_rows"].append(time.perf_counter() - started)
            self.cpu["copy_with_rows"].append(cpu.client)

        module.database_size = timed_size
        module.scratch_database = timed_scratch
        module.copy_with_rows = timed_copy


def hand_copy(
    tools: tuple[Path, Path],
    source_url: str,
    admin_url: str,
    postmaster_pid: int,
    *,
    dump_flags: list[str],
    restore_flags: list[str],
) -> tuple[float, float, float]:
    """Seconds and CPU seconds (pg_dump + pg_restore, the server's backends) of
    ``pg_dump <flags> source | pg_restore <flags> --dbname=new`` into a fresh empty database
    on the same server (created and dropped, not timed)."""
    pg_dump, pg_restore = tools
    name = f"bhand{uuid.uuid4().hex[:10]}"
    target_url = create_database(admin_url, name)
    try:
        with libpq_connection(source_url, label="source") as (source, source_env), \
                libpq_connection(target_url, label="copy") as (target, target_env):
            with Cpu(postmaster_pid) as cpu:
                started = time.perf_counter()
                dumper = subprocess.Popen(
                    [str(pg_dump), *dump_flags, *source], stdout=subprocess.PIPE,
                    env=source_env,
                )
                restorer = subprocess.Popen(
                    [str(pg_restore), *restore_flags, *target], stdin=dumper.stdout,
                    env=target_env,
                )
                assert dumper.stdout is not None
                dumper.stdout.close()
                restored, dumped = restorer.wait(), dumper.wait()
                seconds = time.perf_counter() - started
        if restored or dumped:
            raise SystemExit(f"hand copy failed: pg_dump {dumped}, pg_restore {restored}")
        if row_counts(target_url)["parts"] != ROW_COUNTS["parts"]:
            raise SystemExit("hand copy: parts rows missing in the copy")
        return seconds, cpu.client, cpu.server
    finally:
        drop_database(admin_url, name)


def plain_upgrade(url: str, ini: Path) -> float:
    """Seconds of ``command.upgrade(cfg, "head")`` on ``url`` (shared connection)."""
    engine = make_engine(url)
    try:
        started = time.perf_counter()
        with connect(engine) as conn:
            cfg = Config(str(ini))
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")
            conn.commit()
        return time.perf_counter() - started
    finally:
        engine.dispose()


def stamp(url: str, ini: Path, revision: str) -> None:
    """``alembic stamp --purge <revision>`` of ``url`` (the reset's last step)."""
    engine = make_engine(url)
    try:
        with connect(engine) as conn:
            cfg = Config(str(ini))
            cfg.attributes["connection"] = conn
            command.stamp(cfg, revision, purge=True)
            conn.commit()
    finally:
        engine.dispose()


def med(values: list[float]) -> float:
    """Median (0.0 of nothing)."""
    return statistics.median(values) if values else 0.0


def main() -> int:
    """Set the demo up with rows, time (a)-(e), print the table and the targets."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--no-schema-only", action="store_true",
        help="skip (e), the guarded upgrade with a schema-only rehearsal",
    )
    args = parser.parse_args()
    server = EmbeddedPostgres(BENCH_HOME)
    admin_url = server.start().url("postgres")
    postmaster = int((server.data_dir / "postmaster.pid").read_text().split()[0])
    names = ("dev", "staging") if args.no_schema_only else ("dev", "staging", "qa")
    load_start = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    dropped: list[str] = []
    t: dict[str, list[float]] = defaultdict(list)
    phases: list[dict[str, float]] = []
    schema_phases: list[dict[str, float]] = []
    probes = Probes()
    probes.install()
    copy_probes: dict[str, list[float]] = defaultdict(list)
    with tempfile.TemporaryDirectory(prefix="abparts_bench_upgrade_") as tmp:
        layout = prepare_demo_project(Path(tmp))
        build_template(admin_url, layout)
        project = load_project(ini_path=layout.alembic_ini)
        try:
            started = time.perf_counter()
            envs = []
            for _ in range(args.repeat):
                prefix = f"bupg{uuid.uuid4().hex[:8]}_"
                urls = build_environments(admin_url, layout, names=names, prefix=prefix)
                dropped += [demo_database_name(n, prefix=prefix) for n in names]
                for url in urls.values():
                    load_rows(url)
                envs.append(urls)
            loaded = time.perf_counter() - started
            version, size = server_facts(envs[0]["staging"])
            found = find_pg_dump(version)
            if found is None:
                raise SystemExit(f"no pg_dump of the server's version {version}")
            tools = (found[0], found[0].with_name("pg_restore"))
            source = take_snapshot(envs[0]["dev"], exclude=EXCLUDE, source="dev")
            plan = plan_baseline(source, layout.versions_dir, now=datetime.now(UTC))
            apply_baseline(plan, layout.versions_dir)
            for urls in envs:
                for url in urls.values():
                    stamp(url, layout.alembic_ini, plan.revision)
            (layout.versions_dir / f"{NEW_REVISION}_add_parts_bench_colour.py").write_text(
                REVISION_TEXT.format(rev=NEW_REVISION, down=plan.revision), encoding="utf-8"
            )
            started = time.perf_counter()
            expected = build_expected_schemas(admin_url, project, exclude=EXCLUDE)
            expected_cold = time.perf_counter() - started

            def guarded(url: str, env: str, policy: UpgradePolicy | None) -> Any:
                started = time.perf_counter()
                result = guarded_upgrade(
                    url, environment=env, project=project, expected=expected,
                    scratch_url=admin_url, exclude=EXCLUDE, dry_run=False, policy=policy,
                )
                seconds = time.perf_counter() - started
                assert result.action == "upgraded" and result.after == (NEW_REVISION,)
                return result, seconds

            for urls in envs:
                # (d) by hand, as a person would, then with the rehearsal's own flags
                seconds, client, server_cpu = hand_copy(
                    tools, urls["staging"], admin_url, postmaster,
                    dump_flags=["-Fc", "--no-password"], restore_flags=["--no-password"],
                )
                t["hand"].append(seconds)
                t["hand cpu"].append(client)
                t["hand server cpu"].append(server_cpu)
                seconds, client, server_cpu = hand_copy(
                    tools, urls["staging"], admin_url, postmaster,
                    dump_flags=["--format=custom", "--compress=0", "--no-owner",
                                "--no-privileges", "--no-password"],
                    restore_flags=["--no-owner", "--no-privileges", "--exit-on-error",
                                   "--no-password"],
                )
                t["hand flags"].append(seconds)
                t["hand flags cpu"].append(client)
                t["hand flags server cpu"].append(server_cpu)
                t["plain"].append(plain_upgrade(urls["dev"], layout.alembic_ini))
                probes.reset()
                result, seconds = guarded(urls["staging"], "staging", None)
                copy = result.rehearsal.copy
                assert copy is not None and copy.mode == "rows", copy
                t["guarded"].append(seconds)
                t["copy"].append(copy.seconds)
                t["copy bytes"].append(float(copy.database_bytes))
                t["rehearsal"].append(result.rehearsal.seconds)
                for key, values in probes.seconds.items():
                    copy_probes[key].append(sum(values))
                for key, values in probes.cpu.items():
                    copy_probes[f"{key} cpu"].append(sum(values))
                phases.append(result.timings)
                if "qa" in urls:
                    policy = UpgradePolicy(rehearsal=RehearsalCopy(max_bytes=0))
                    result, seconds = guarded(urls["qa"], "qa", policy)
                    copy = result.rehearsal.copy
                    assert copy is not None and copy.mode == "schema", copy
                    t["schema only"].append(seconds)
                    schema_phases.append(result.timings)
        finally:
            for name in dropped:
                drop_database(admin_url, name)
    return report(
        args, t, phases, schema_phases, copy_probes,
        facts={"tables": len(source.kind("table")), "size": size, "version": version,
               "tools": str(tools[0].parent), "loaded": loaded,
               "expected cold": expected_cold, "load start": load_start},
    )


def report(
    args: argparse.Namespace,
    t: dict[str, list[float]],
    phases: list[dict[str, float]],
    schema_phases: list[dict[str, float]],
    probes: dict[str, list[float]],
    *,
    facts: dict[str, Any],
) -> int:
    """Print the table of medians and the targets; the exit status."""
    a, b, c, d = med(t["plain"]), med(t["guarded"]), med(t["copy"]), med(t["hand"])
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(
        f"guarded upgrade of one revision on the demo with rows ({facts['tables']} compared "
        f"tables, 10,000 rows in parts, inventory, machines, machine_hours, transactions, "
        f"customer_order_items; pg_database_size {facts['size'] / 1e6:.1f} MB; PostgreSQL "
        f"{facts['version']}, {facts['tools']}); median of {args.repeat}; "
        f"{os.cpu_count()} cores; load average {load} (at the start {facts['load start']})"
    )
    rows: list[tuple[str, float, str]] = [
        ("(a) alembic command.upgrade head (plain)", a, ""),
        ("(b) guarded_upgrade, rehearsal with rows", b, ""),
    ]
    for phase in ("check", "rehearsal", "prechecks", "lint", "apply", "verify"):
        rows.append((f"      {phase}", med([p.get(phase, 0.0) for p in phases]), ""))
    rows.append(("(c) of which rehearsal.copy.seconds", c, ""))
    for key in ("size query", "copy_with_rows"):
        rows.append((f"      {key}", med(probes.get(key, [])), ""))
    cpu = med(probes.get("copy_with_rows cpu", []))
    rows.append(("      CPU of its pg_dump + pg_restore", cpu, ""))
    for key in ("scratch create", "scratch drop"):
        rows.append((f"    (not in (c)) {key}", med(probes.get(key, [])), ""))
    rows += [
        ("(d) by hand: pg_dump -Fc | pg_restore", d, ""),
        ("      CPU of pg_dump + pg_restore", med(t["hand cpu"]), ""),
        ("      CPU of the server's backends", med(t["hand server cpu"]), ""),
        ("(d') by hand with the rehearsal's flags (context)", med(t["hand flags"]), ""),
        ("      CPU of pg_dump + pg_restore", med(t["hand flags cpu"]), ""),
        ("      CPU of the server's backends", med(t["hand flags server cpu"]), ""),
    ]
    overhead_ok = b - a < OVERHEAD_TARGET_S
    ratio = c / d if d else float("inf")
    ratio_ok = ratio < COPY_RATIO_TARGET
    ok = overhead_ok and ratio_ok
    width = max(len(r[0]) for r in rows)
    print(f"  {'what':<{width}}  {'median s':>9}")
    for label, value, _ in rows:
        print(f"  {label:<{width}}  {value:9.3f}")
    print(f"  (1) overhead (b) - (a): {b - a:.2f} s   target < {OVERHEAD_TARGET_S:g} s: "
          f"{'met' if overhead_ok else 'MISSED'}")
    print(f"  (2) copy / hand (c)/(d): {ratio:.2f}x   target < {COPY_RATIO_TARGET:g}x: "
          f"{'met' if ratio_ok else 'MISSED'}   ((c)/(d') {c / med(t['hand flags']):.2f}x)")
    if t["schema only"]:
        e = med(t["schema only"])
        old_ok = e - a <= SCHEMA_ONLY_TARGET_S
        ok = ok and old_ok
        detail = ", ".join(
            f"{phase} {med([p.get(phase, 0.0) for p in schema_phases]):.2f}"
            for phase in ("check", "rehearsal", "prechecks", "lint", "apply", "verify")
        )
        print(f"  (e) guarded_upgrade, schema-only rehearsal (max_bytes=0): {e:.2f} s ({detail});"
              f" (e) - (a) {e - a:.2f} s   earlier target <= {SCHEMA_ONLY_TARGET_S:g} s: "
              f"{'met' if old_ok else 'MISSED'}")
    print(f"  runs: (a) {', '.join(f'{x:.2f}' for x in t['plain'])}; "
          f"(b) {', '.join(f'{x:.2f}' for x in t['guarded'])}; "
          f"(c) {', '.join(f'{x:.3f}' for x in t['copy'])}; "
          f"(d) {', '.join(f'{x:.3f}' for x in t['hand'])}")
    print(f"  (not timed) rows loaded in {facts['loaded']:.1f} s; expected schemas of the new "
          f"history, cold: {facts['expected cold']:.2f} s")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
