"""Benchmark: the guarded upgrade of one revision on the demo vs a plain ``alembic upgrade``.

Usage::

    .venv/bin/python benchmarks/bench_upgrade.py [--repeat 3]

Setup (not timed): a copy of the demo project, two demo environments cloned from the demo
template (the ABParts schema, 62 tables), the reset done with the core functions (dev's
snapshot rendered as a baseline, the old files archived, both environments stamped
with ``alembic stamp --purge``),
then one new revision written the normal way (a nullable column and an index on
``parts``) and the expected schemas of the new history built once (the cache the
``expected_schemas`` asset keeps warm).

Timed in the same run, each on its own fresh pair of environments (median of
``--repeat``):

(a) ``alembic.command.upgrade(cfg, "head")`` on one environment, through the demo's own
    ``env.py`` with a shared connection: the reference;
(b) ``guarded_upgrade`` of the other environment (schema check, rehearsal on a scratch
    copy of its ``pg_dump``, squawk lint, apply under the lock, verify), dry_run=False.

It prints both, the difference and the target: (b) - (a) <= 10 s on 2 cores; the exit
status is 1 when it is missed. Everything runs on the dedicated embedded server under
``.abparts_ops/bench``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from alembic import command  # noqa: E402
from alembic.config import Config  # noqa: E402

from abparts_ops.core.db import connect, drop_database, make_engine  # noqa: E402
from abparts_ops.core.migrations.baseline_files import apply_baseline, plan_baseline  # noqa: E402
from abparts_ops.core.migrations.expected import build_expected_schemas  # noqa: E402
from abparts_ops.core.migrations.project import load_project  # noqa: E402
from abparts_ops.core.migrations.upgrade import guarded_upgrade  # noqa: E402
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


def main() -> int:
    """Set the demo up, time (a) and (b), print them and the difference."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    admin_url = EmbeddedPostgres(BENCH_HOME).start().url("postgres")
    dropped: list[str] = []
    plain: list[float] = []
    guarded: list[float] = []
    phases: list[dict[str, float]] = []
    with tempfile.TemporaryDirectory(prefix="abparts_bench_upgrade_") as tmp:
        layout = prepare_demo_project(Path(tmp))
        build_template(admin_url, layout)
        project = load_project(ini_path=layout.alembic_ini)
        try:
            pairs = []
            for _ in range(args.repeat):
                prefix = f"bupg{uuid.uuid4().hex[:8]}_"
                urls = build_environments(
                    admin_url, layout, names=("dev", "staging"), prefix=prefix
                )
                dropped += [demo_database_name(n, prefix=prefix) for n in ("dev", "staging")]
                pairs.append(urls)
            source = take_snapshot(pairs[0]["dev"], exclude=EXCLUDE, source="dev")
            plan = plan_baseline(source, layout.versions_dir, now=datetime.now(UTC))
            apply_baseline(plan, layout.versions_dir)
            for urls in pairs:
                for url in urls.values():
                    stamp(url, layout.alembic_ini, plan.revision)
            (layout.versions_dir / f"{NEW_REVISION}_add_parts_bench_colour.py").write_text(
                REVISION_TEXT.format(rev=NEW_REVISION, down=plan.revision), encoding="utf-8"
            )
            started = time.perf_counter()
            expected = build_expected_schemas(admin_url, project, exclude=EXCLUDE)
            expected_cold = time.perf_counter() - started
            for urls in pairs:
                plain.append(plain_upgrade(urls["dev"], layout.alembic_ini))
                started = time.perf_counter()
                result = guarded_upgrade(
                    urls["staging"], environment="staging", project=project,
                    expected=expected, scratch_url=admin_url, exclude=EXCLUDE,
                    dry_run=False,
                )
                guarded.append(time.perf_counter() - started)
                assert result.action == "upgraded" and result.after == (NEW_REVISION,)
                phases.append(result.timings)
        finally:
            for name in dropped:
                drop_database(admin_url, name)
    a, b = statistics.median(plain), statistics.median(guarded)
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(
        f"guarded upgrade of one revision on the demo ({len(source.kind('table'))} compared "
        f"tables; median of {args.repeat}; {os.cpu_count()} cores; load average {load})"
    )
    print(f"  (a) alembic command.upgrade head (plain):            {a:7.2f} s")
    print(f"  (b) guarded_upgrade (check, rehearsal, lint, apply, verify): {b:7.2f} s")
    for phase in ("check", "rehearsal", "lint", "apply", "verify"):
        values = [p.get(phase, 0.0) for p in phases]
        print(f"        {phase:<10} {statistics.median(values):6.2f} s")
    print(f"  difference (b) - (a): {b - a:6.2f} s   target <= 10 s: "
          f"{'met' if b - a <= 10 else 'MISSED'}")
    print(f"  (not timed above) expected schemas of the new history, cold: {expected_cold:.2f} s")
    return 0 if b - a <= 10 else 1


if __name__ == "__main__":
    sys.exit(main())
