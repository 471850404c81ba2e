"""Benchmark: squawk lint of 47 pending revisions, each on its own (issue 17).

Usage::

    .venv/bin/python benchmarks/bench_lint.py [--revisions 47] [--repeat 3]

Setup (not timed): a project of ``--revisions`` revisions in a chain, a realistic mix
(tables with indexes and foreign keys, added columns, a data update with a bound value, a
type change, a column rename, and at the 5th revision one that reads the database through
``op.get_bind()`` and so cannot be rendered offline); the revisions are run once with
the runner on a fresh database of the benchmarks' embedded server, as the rehearsal
runs them, and their executed statements kept.

Timed (median of ``--repeat``):

(a) ``lint_executed`` of those statements (one squawk run for all the files);
(b) ``lint_pending``: the offline fallback, one ``--sql`` pass per revision, then one
    squawk run; its render alone is shown beside it.

Target: each under 2 s on 2 cores; the exit status is 1 when one is missed.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from abparts_ops.core.db import (  # noqa: E402
    connect,
    create_database,
    drop_database,
    make_engine,
    with_database,
)
from abparts_ops.core.history.project import load_project  # noqa: E402
from abparts_ops.core.rollout.lint import (  # noqa: E402
    OFFLINE_SQL_RULE,
    LintExclusion,
    executed_revisions,
    lint_executed,
    lint_pending,
    render_offline_revisions,
)
from abparts_ops.core.rollout.runner import RunProgress, run_revisions  # noqa: E402
from abparts_ops.embedded.server import EmbeddedPostgres  # noqa: E402

BENCH_HOME = REPO / ".abparts_ops" / "bench"
TARGET_S = 2.0
PREAMBLE = ["SET lock_timeout = '5000ms';", "SET statement_timeout = '900000ms';"]
EXCLUDED = [LintExclusion("prefer-robust-stmts", "one transaction")]

REVISION = '''"""revision {n}"""
from alembic import op
import sqlalchemy as sa

revision = {rev!r}
down_revision = {down!r}
branch_labels = None
depends_on = None


def upgrade():
{body}


def downgrade():
    pass
'''


def body_of(n: int) -> str:
    """The upgrade() body of revision ``n`` (1-based): a mix of what apps write."""
    table = f"t{n:03d}"
    if n == 5:
        return (
            "    n = op.get_bind().execute(sa.text('SELECT count(*) FROM t001')).scalar()\n"
            "    op.execute(f\"COMMENT ON TABLE t001 IS 'rows: {n}'\")"
        )
    if n == 30:
        return "    op.alter_column('t009', 'label', new_column_name='title')"
    kind = n % 4
    if kind == 1 or n <= 4:
        fk = (
            ",\n        sa.Column('parent_id', sa.BigInteger, sa.ForeignKey('t001.id'))"
            if n > 1 else ""
        )
        return (
            f"    op.create_table({table!r},\n"
            "        sa.Column('id', sa.BigInteger, primary_key=True),\n"
            "        sa.Column('label', sa.Text, nullable=False),\n"
            "        sa.Column('amount', sa.Numeric(12, 2)),\n"
            "        sa.Column('created_at', sa.DateTime(timezone=True),"
            " server_default=sa.text('now()'))" + fk + ")\n"
            f"    op.create_index('ix_{table}_label', {table!r}, ['label'])"
        )
    if kind == 2:
        return (
            f"    op.add_column('t001', sa.Column('c{n:03d}', sa.Text))\n"
            f"    op.execute(sa.text('UPDATE t001 SET c{n:03d} = :v').bindparams(v=\"it's {n}\"))"
        )
    if kind == 3:
        return f"    op.create_index('ix_t001_amount_{n:03d}', 't001', ['amount'])"
    return "    op.alter_column('t001', 'amount', type_=sa.Numeric(14, 2))"


def write_project(root: Path, count: int) -> Path:
    """alembic.ini and ``count`` revisions under ``root``."""
    versions = root / "migrations" / "versions"
    versions.mkdir(parents=True)
    (root / "migrations" / "env.py").write_text("raise RuntimeError('never run')\n")
    down = None
    for n in range(1, count + 1):
        rev = f"b{n:03d}"
        (versions / f"{rev}_bench.py").write_text(
            REVISION.format(n=n, rev=rev, down=down, body=body_of(n)), encoding="utf-8"
        )
        down = rev
    ini = root / "alembic.ini"
    ini.write_text("[alembic]\nscript_location = %(here)s/migrations\npath_separator = os\n")
    return ini


def main() -> int:
    """Set up, time (a) and (b), print them against the target."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--revisions", type=int, default=47)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    admin_url = EmbeddedPostgres(BENCH_HOME).start().url("postgres")
    with tempfile.TemporaryDirectory(prefix="abparts_bench_lint_") as tmp:
        project = load_project(ini_path=write_project(Path(tmp) / "p", args.revisions))
        script = project.script()
        head = f"b{args.revisions:03d}"
        name = f"blint_{uuid.uuid4().hex[:8]}"
        create_database(admin_url, name)
        try:
            progress = RunProgress()
            engine = make_engine(with_database(admin_url, name))
            try:
                with connect(engine) as conn:
                    run_revisions(conn, project, script, head, progress=progress)
            finally:
                engine.dispose()
        finally:
            drop_database(admin_url, name)
        executed = executed_revisions(progress)
        statements = sum(len(r.statements) for r in executed)
        timed: dict[str, list[float]] = {"executed": [], "offline": [], "render": []}
        reports = {}
        for _ in range(args.repeat):
            started = time.perf_counter()
            reports["executed"] = lint_executed(
                executed, excluded=EXCLUDED, preamble=PREAMBLE, server_version="15"
            )
            timed["executed"].append(time.perf_counter() - started)
            started = time.perf_counter()
            render_offline_revisions(project, script, (), head, preamble=PREAMBLE)
            timed["render"].append(time.perf_counter() - started)
            started = time.perf_counter()
            reports["offline"] = lint_pending(
                project, script, (), head, excluded=EXCLUDED, preamble=PREAMBLE,
                server_version="15",
            )
            timed["offline"].append(time.perf_counter() - started)
    median = {key: statistics.median(values) for key, values in timed.items()}
    print(f"load average: {', '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"{args.revisions} revisions, {statements} executed statements, "
          f"median of {args.repeat}")
    print("| lint | seconds | findings | offline-sql-unavailable |")
    print("|---|---|---|---|")
    for key in ("executed", "offline"):
        report = reports[key]
        offline = [f.revision for f in report.findings if f.rule == OFFLINE_SQL_RULE]
        print(f"| {key} | {median[key]:.3f} | {len(report.findings)} | "
              f"{', '.join(r or '-' for r in offline) or 'none'} |")
    print(f"(offline render alone: {median['render']:.3f} s; target {TARGET_S:.1f} s each)")
    return 0 if max(median["executed"], median["offline"]) <= TARGET_S else 1


if __name__ == "__main__":
    raise SystemExit(main())
