"""Benchmark: the expected schemas of a 20-revision history vs a plain ``upgrade head``.

Usage::

    .venv/bin/python benchmarks/bench_expected_schemas.py [--revisions 20] [--base-tables 40]
                                                         [--repeat 3]

A linear history is generated in a temporary Alembic project: a first revision creating
``--base-tables`` tables (as a baseline would), then revisions that each add a table with
a foreign key, a column and an index. Measured in the same run (medians of
``--repeat``):

(a) ``alembic.command.upgrade(cfg, "head")`` on an empty database (the project's
    ``env.py`` takes the shared connection from ``config.attributes``), the reference;
(b) ``build_expected_schemas`` of the same history, cold: its own scratch database,
    every revision applied and snapshotted;
(c) ``load_or_build_expected`` warm: the cache of (b) read back (its manifest; the
    snapshots are read, and checked, when a reader asks for one: the head's is read).

Then one new revision on top (issue 19, the incremental case), same run:

(d) ``refresh_expected`` of the history plus one revision, the cache holding the
    20-revision build (and the template database it kept): only the new revision built;
(e) the unit it is measured against: upgrading that one revision on a database already
    at the previous head, plus one snapshot;
(f) the cold build of the same 21 revisions (``build_expected_schemas``).

It prints each figure and the ratios b/a, c/a, d/e and d/f; targets d/e <= 3 and
d/f <= 0.35 (exit status 1 when one is missed). Everything runs on the dedicated
embedded server under ``.abparts_ops/bench``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from alembic import command  # noqa: E402
from alembic.config import Config  # noqa: E402

from abparts_ops.core.db import connect, create_database, drop_database, make_engine  # noqa: E402
from abparts_ops.core.history.expected_build import build_expected_schemas  # noqa: E402
from abparts_ops.core.history.expected_cache import (  # noqa: E402
    load_or_build_expected,
    refresh_expected,
)
from abparts_ops.core.history.migrate import upgrade  # noqa: E402
from abparts_ops.core.history.project import load_project  # noqa: E402
from abparts_ops.core.schema.introspect import snapshot_connection  # noqa: E402
from abparts_ops.embedded.server import EmbeddedPostgres  # noqa: E402

BENCH_HOME = REPO / ".abparts_ops" / "bench"

ENV_PY = """\
from alembic import context

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=None, transaction_per_migration=True)
with context.begin_transaction():
    context.run_migrations()
"""

HEADER = '''"""{message}

Revision ID: {rev}
Revises: {down}
"""
from alembic import op
import sqlalchemy as sa

revision = {rev!r}
down_revision = {down!r}
branch_labels = None
depends_on = None

'''


def _table(name: str, ref: str | None) -> str:
    fk = f", sa.Column('{ref}_id', sa.Integer, sa.ForeignKey('{ref}.id'))" if ref else ""
    return (
        f"    op.create_table('{name}', sa.Column('id', sa.Integer, primary_key=True), "
        "sa.Column('name', sa.String(120), nullable=False), "
        "sa.Column('notes', sa.Text), "
        "sa.Column('amount', sa.Numeric(12, 2), server_default='0'), "
        "sa.Column('active', sa.Boolean, server_default=sa.true()), "
        "sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.func.now())"
        f"{fk})\n"
    )


def _revision(i: int, base_tables: int) -> tuple[str, str]:
    """The id and text of revision ``i`` (1: the baseline) of the generated history."""
    rev = f"bench{i:07d}"
    down = f"bench{i - 1:07d}" if i > 1 else None
    if i == 1:
        body = "".join(
            _table(f"base_{t:03d}", f"base_{t - 1:03d}" if t > 1 else None)
            for t in range(1, base_tables + 1)
        )
        message = f"baseline: {base_tables} tables"
    else:
        previous = f"base_{base_tables:03d}" if i == 2 else f"feature_{i - 1:03d}"
        body = (
            _table(f"feature_{i:03d}", previous)
            + f"    op.add_column('{previous}', sa.Column('extra_{i}', sa.Text))\n"
            + f"    op.create_index('ix_feature_{i:03d}_name', 'feature_{i:03d}', ['name'])\n"
        )
        message = f"feature {i}: a table, a column, an index"
    text = HEADER.format(message=message, rev=rev, down=down)
    text += f"\ndef upgrade():\n{body}\n\ndef downgrade():\n    pass\n"
    return rev, text


def add_revision(root: Path, i: int, base_tables: int) -> Path:
    """Write revision ``i`` of the generated history into ``root``'s versions folder."""
    rev, text = _revision(i, base_tables)
    path = root / "migrations" / "versions" / f"{rev}_step.py"
    path.write_text(text, encoding="utf-8")
    return path


def write_history(root: Path, revisions: int, base_tables: int) -> Path:
    """Write a linear history of ``revisions`` revisions under ``root``; return its ini."""
    script = root / "migrations"
    versions = script / "versions"
    versions.mkdir(parents=True)
    (script / "env.py").write_text(ENV_PY, encoding="utf-8")
    (script / "script.py.mako").write_text("", encoding="utf-8")
    for i in range(1, revisions + 1):
        add_revision(root, i, base_tables)
    ini = root / "alembic.ini"
    ini.write_text(
        "[alembic]\nscript_location = %(here)s/migrations\npath_separator = os\n",
        encoding="utf-8",
    )
    return ini


def one_revision_and_snapshot(admin_url: str, project, previous: str, new: str) -> float:
    """Seconds of upgrading ``new`` on a database at ``previous``, plus one snapshot."""
    name = f"bench_exp_one_{uuid.uuid4().hex[:8]}"
    url = create_database(admin_url, name)
    try:
        engine = make_engine(url)
        try:
            with connect(engine) as conn:
                upgrade(conn, project, previous)  # not counted
                started = time.perf_counter()
                upgrade(conn, project, new)
                snapshot_connection(conn, source=f"expected at {new}", require_tables=False)
                return time.perf_counter() - started
        finally:
            engine.dispose()
    finally:
        drop_database(admin_url, name)


def plain_upgrade(admin_url: str, ini: Path) -> float:
    """Seconds of ``command.upgrade(cfg, "head")`` on a new, empty database."""
    name = f"bench_exp_plain_{uuid.uuid4().hex[:8]}"
    url = create_database(admin_url, name)
    try:
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
    finally:
        drop_database(admin_url, name)


def main() -> None:
    """Generate the history, time (a), (b) and (c), print them and the ratios."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--revisions", type=int, default=20)
    parser.add_argument("--base-tables", type=int, default=40)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    admin_url = EmbeddedPostgres(BENCH_HOME).start().url("postgres")
    with tempfile.TemporaryDirectory(prefix="abparts_bench_expected_") as tmp:
        root = Path(tmp)
        ini = write_history(root, args.revisions, args.base_tables)
        project = load_project(ini)
        plain: list[float] = []
        cold: list[float] = []
        warm: list[float] = []
        incremental: list[float] = []
        unit: list[float] = []
        cold_more: list[float] = []
        expected = None
        previous, new = f"bench{args.revisions:07d}", f"bench{args.revisions + 1:07d}"
        for i in range(args.repeat):
            plain.append(plain_upgrade(admin_url, ini))
            started = time.perf_counter()
            expected = build_expected_schemas(admin_url, project)
            cold.append(time.perf_counter() - started)
            cache = root / f"cache_{i}"
            _built, reused = load_or_build_expected(admin_url, project, cache_dir=cache)
            assert not reused
            started = time.perf_counter()
            again, reused = load_or_build_expected(admin_url, project, cache_dir=cache)
            again.snapshot(previous)  # a reader reads (and checks) the snapshot it needs
            warm.append(time.perf_counter() - started)
            assert reused and again == expected

            path = add_revision(root, args.revisions + 1, args.base_tables)
            try:
                started = time.perf_counter()
                refresh = refresh_expected(admin_url, project, cache_dir=cache)
                incremental.append(time.perf_counter() - started)
                assert refresh.built == (new,) and refresh.applied == (new,), refresh
                assert refresh.seeds == (f"template at {previous}",), refresh.seeds
                unit.append(one_revision_and_snapshot(admin_url, project, previous, new))
                started = time.perf_counter()
                full = build_expected_schemas(admin_url, project)
                cold_more.append(time.perf_counter() - started)
                assert refresh.expected == full
            finally:
                path.unlink()
        assert expected is not None
        head = expected.snapshot(expected.heads[0])
        assert head is not None
        size = sum(p.stat().st_size for p in (root / "cache_0").rglob("*.json"))
        manifest = sum(p.stat().st_size for p in (root / "cache_0").glob("manifest-*.json"))
    a, b, c, d, e, f = (
        statistics.median(v) for v in (plain, cold, warm, incremental, unit, cold_more)
    )
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(
        f"expected schemas of a {args.revisions}-revision linear history "
        f"({len(head.kind('table'))} tables at the head; median of {args.repeat}; "
        f"load average {load})"
    )
    print(f"  (a) alembic command.upgrade head on an empty database: {a * 1000:8.0f} ms")
    print(f"  (b) build_expected_schemas, cold (scratch db + {args.revisions} snapshots): "
          f"{b * 1000:8.0f} ms   b/a = {b / a:.2f}x")
    print(f"  (c) load_or_build_expected, warm (manifest {manifest / 1024:.1f} KiB, "
          f"cache {size / 1024:.0f} KiB, one snapshot read): "
          f"{c * 1000:8.0f} ms   c/a = {c / a:.3f}x")
    index = json.dumps(expected.index().to_dict(), separators=(",", ":"))
    print(f"  index (Dagster metadata, read by the sensor): {len(index)} bytes")
    print(f"one new revision on top ({args.revisions + 1} revisions):")
    print(f"  (d) refresh_expected, incremental (template taken over + 1 upgrade + 1 snapshot): "
          f"{d * 1000:8.0f} ms")
    print(f"  (e) upgrading that revision on a database at the previous head + 1 snapshot: "
          f"{e * 1000:8.0f} ms   d/e = {d / e:.2f}x (target <= 3)")
    print(f"  (f) build_expected_schemas, cold, {args.revisions + 1} revisions: "
          f"{f * 1000:8.0f} ms   d/f = {d / f:.2f}x (target <= 0.35)")
    ok = d / e <= 3 and d / f <= 0.35
    print("targets: " + ("met" if ok else "MISSED"))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
