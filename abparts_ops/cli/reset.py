"""``abparts-ops reset``: the reset_baseline job, as the UI launches it."""

from __future__ import annotations

import argparse
from typing import Any

from abparts_ops.cli.common import EXIT_CODES, FOUND, OK, Formatter, add_json, emit, load
from abparts_ops.cli.launch import launch, run_lines

HELP = "snapshot the source, write and prove the new baseline (job reset_baseline)"
DESCRIPTION = """\
Launch the reset_baseline job on the Dagster instance of DAGSTER_HOME, as the UI does:
snapshot the source environment, write the reference dump, read the old history, render
the new baseline revision and prove it on a temporary copy of the Alembic project. Only
when every blocking proof passed are the old revision files archived and the baseline
and reference dump written. Never stamps anything: stamp each environment next.

The run appears in the UI's Runs, tagged with who launched it."""

EXAMPLES = """\
examples:
  abparts-ops reset --dry-run     prove the baseline, write nothing
  abparts-ops reset --json        the run, the baseline and its proofs as JSON"""


def register(sub: Any) -> None:
    """Add the ``reset`` command."""
    parser = sub.add_parser(
        "reset", help=HELP, description=DESCRIPTION, epilog=f"{EXAMPLES}\n\n{EXIT_CODES}",
        formatter_class=Formatter,
    )
    parser.add_argument(
        "--dry-run", action="store_true",
        help="render and prove the baseline, write nothing (run config dry_run: true)",
    )
    parser.add_argument(
        "--verbose", action="store_true",
        help="show Dagster's events in the terminal instead of the log file",
    )
    add_json(parser)
    parser.set_defaults(func=run)


def run_config(dry_run: bool) -> dict[str, Any]:
    """The run config of reset_baseline (the UI's launchpad default is no config at all)."""
    if not dry_run:
        return {}
    return {"ops": {"baseline_revision": {"config": {"dry_run": True}}}}


def run(args: argparse.Namespace) -> int:
    """Launch reset_baseline; exit 0 when the run succeeded, 1 when it failed (refused)."""
    load()
    command = ["reset", *(["--dry-run"] if args.dry_run else [])]
    outcome = launch(
        "reset_baseline", command=command, run_config=run_config(args.dry_run),
        verbose=args.verbose,
    )
    baseline = outcome.event_of("baseline_revision")
    meta = baseline.metadata if baseline else {}
    proofs = [c for c in outcome.checks if c.asset == "baseline_revision"]
    failed = [c.check for c in proofs if not c.passed]
    document = {
        "command": "reset",
        "dry_run": args.dry_run,
        **outcome.to_dict(),
        "baseline": {
            "revision": meta.get("revision"),
            "action": meta.get("action"),
            "file": meta.get("file"),
            "archived_files": meta.get("archived_files"),
            "failed_proofs": failed,
        },
    }
    lines = []
    if baseline is not None:
        lines.append(
            f"baseline {meta.get('revision')}: {meta.get('action')} ({meta.get('file')})"
        )
    for check in proofs:
        mark = "✓" if check.passed else "✗"
        first = check.description.splitlines()[0] if check.description else ""
        lines.append(f"  {mark} {check.check}: {first}")
    for failure in outcome.failures:
        lines.append(f"✗ {failure['description']}")
    lines += run_lines(outcome)
    emit(args, document, lines)
    return OK if outcome.success and not failed else FOUND
