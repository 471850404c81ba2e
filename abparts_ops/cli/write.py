"""What ``stamp`` and ``upgrade`` share: the run's record, read back, as text and JSON.

Each launches the environment's own job (``stamp_<env>``, ``upgrade_<env>``) with the run
config of the asset's config class. The record printed is the asset's own audit
metadata: the materialization (a real write), the observation (a dry run) or the
failure's metadata (a refusal, which writes nothing).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

from abparts_ops.cli.common import FOUND, OK, add_json, emit
from abparts_ops.cli.environments import from_checks, state_lines
from abparts_ops.cli.launch import RunOutcome, launch, run_lines

_SHOWN = (
    "state_before", "pending_count", "rehearsal", "findings_count", "error_findings",
    "blocking_rules", "acknowledged",
)


def add_write_arguments(parser: argparse.ArgumentParser, verb: str) -> None:
    """The arguments every write command takes: ``ENV --apply --confirm
    --acknowledge-identity --verbose --json`` (``verb`` says what ``--apply`` does)."""
    parser.add_argument("env", metavar="ENV", help=f"the environment to {verb} (as configured)")
    parser.add_argument(
        "--apply", action="store_true", help=f"really {verb} (run config dry_run: false)"
    )
    parser.add_argument(
        "--confirm", metavar="ENV", default="",
        help="the environment's own name: required to write to a protected environment",
    )
    parser.add_argument(
        "--acknowledge-identity", metavar="KEY", default="",
        help="accept a protected database whose identity changed (the key is in the refusal)",
    )
    parser.add_argument(
        "--verbose", action="store_true",
        help="show Dagster's events in the terminal instead of the log file",
    )
    add_json(parser)


def write_config(args: argparse.Namespace) -> dict[str, Any]:
    """The run config every write shares: ``dry_run``, and what the command line sets of
    ``confirm`` and ``acknowledge_identity``."""
    config: dict[str, Any] = {"dry_run": not args.apply}
    if args.confirm:
        config["confirm"] = args.confirm
    if args.acknowledge_identity:
        config["acknowledge_identity"] = args.acknowledge_identity
    return config


def write_words(command: str, args: argparse.Namespace) -> list[str]:
    """The shared part of the command as typed (for the run's tag)."""
    words = [command, args.env]
    if args.apply:
        words.append("--apply")
    if args.confirm:
        words += ["--confirm", args.confirm]
    if args.acknowledge_identity:
        words += ["--acknowledge-identity", args.acknowledge_identity]
    return words


def launch_write(
    args: argparse.Namespace, job: str, asset_path: Sequence[str], config: dict[str, Any],
    words: list[str],
) -> RunOutcome:
    """Launch ``job`` with ``config`` for the asset at ``asset_path``, as the UI would."""
    return launch(
        job, command=words, run_config={"ops": {op_name(asset_path): {"config": config}}},
        verbose=args.verbose,
    )


def op_name(asset_path: Sequence[str]) -> str:
    """The op of a multi-part asset key: ``prod__alembic_stamp`` for ``prod/alembic_stamp``."""
    return "__".join(asset_path)


def record_of(outcome: RunOutcome, asset: str) -> tuple[str, str, dict[str, Any]]:
    """``(action, message, metadata)`` of ``asset`` in the run: written, dry run or refused."""
    event = outcome.event_of(asset)
    if event is not None:
        meta = event.metadata
        return str(meta.get("action") or event.kind), str(meta.get("message") or ""), meta
    for failure in outcome.failures:
        meta = failure.get("metadata") or {}
        return str(meta.get("action") or "refused"), str(failure["description"]), meta
    return "none", "the run recorded nothing for " + asset, {}


def report(
    args: argparse.Namespace,
    *,
    command: str,
    environment: str,
    asset: str,
    dry_run: bool,
    outcome: RunOutcome,
    blocked: bool = False,
) -> int:
    """Print the run's record; 0 when it succeeded (and, for a real write, the checks
    passed), 1 when it was refused, failed, or (a dry run) would be blocked."""
    action, message, meta = record_of(outcome, asset)
    checks: dict[str, dict[str, Any]] = {
        c.check: {"passed": c.passed, "description": c.description, "metadata": c.metadata}
        for c in outcome.checks
        if c.asset.split("/")[0] == environment
    }
    environments = [from_checks(environment, checks)] if checks else []
    document = {
        "command": command,
        "environment": environment,
        "dry_run": dry_run,
        "outcome": action,
        "message": message,
        "record": meta,
        **outcome.to_dict(),
        "environments": environments,
    }
    mode = "dry run" if dry_run else "apply"
    lines = [f"{command} {environment} ({mode}): {action}", f"  {message}"]
    lines += [f"  {key}: {meta[key]}" for key in _SHOWN if meta.get(key) not in (None, "")]
    for failure in outcome.failures[1:]:
        lines.append(f"  ✗ {failure['description']}")
    if environments:
        lines += state_lines(environments)
    lines += run_lines(outcome)
    emit(args, document, lines)
    if not outcome.success or blocked:
        return FOUND
    if not dry_run and any(not c["passed"] for c in checks.values()):
        return FOUND
    return OK
