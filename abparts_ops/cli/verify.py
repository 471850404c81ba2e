"""``abparts-ops verify``: the verify_environments job, as the UI and the sensor launch it."""

from __future__ import annotations

import argparse
from typing import Any

from abparts_ops.cli.common import (
    EXIT_CODES,
    FOUND,
    OK,
    Formatter,
    add_json,
    emit,
    environment_names,
    load,
)
from abparts_ops.cli.environments import from_checks, state_lines
from abparts_ops.cli.launch import VERDICT_TAG, launch, run_lines, tag_run

HELP = "run every environment's checks as a Dagster run (job verify_environments)"
DESCRIPTION = """\
Launch the verify_environments job on the Dagster instance of DAGSTER_HOME: the checks
revision_is_head and schema_matches_reference of each named environment (all when none
is named), exactly as the UI and the drift sensor run them. Reads only. The run and its
check results appear in the UI, tagged with who launched it.

JSON: {"environments": [{"name", "state", "revision", "expected_revision", "pending",
"summary", "diff", "head", "ok", "checks"}], "run_id", "status", ...} (see README)."""

EXAMPLES = """\
examples:
  abparts-ops verify               every environment
  abparts-ops verify staging prod  two of them, as one run"""


def register(sub: Any) -> None:
    """Add the ``verify`` command."""
    parser = sub.add_parser(
        "verify", help=HELP, description=DESCRIPTION, epilog=f"{EXAMPLES}\n\n{EXIT_CODES}",
        formatter_class=Formatter,
    )
    parser.add_argument(
        "envs", metavar="ENV", nargs="*",
        help="an environment name from the configuration (none: all)",
    )
    parser.add_argument(
        "--verbose", action="store_true",
        help="show Dagster's events in the terminal instead of the log file",
    )
    add_json(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Launch verify_environments (for ENV... only, when named); exit 0 iff all passed."""
    settings = load()
    names = environment_names(settings, args.envs) if args.envs else list(settings.environments)
    from abparts_ops.defs.names import VERIFY_JOB, check_keys

    keys = [key for name in names for key in check_keys(name)] if args.envs else None
    outcome = launch(
        VERIFY_JOB, command=["verify", *args.envs], asset_check_keys=keys, verbose=args.verbose
    )
    by_env: dict[str, dict[str, dict[str, Any]]] = {name: {} for name in names}
    for check in outcome.checks:
        env = check.asset.split("/")[0]
        if env in by_env:
            by_env[env][check.check] = {
                "passed": check.passed, "description": check.description,
                "metadata": check.metadata,
            }
    entries = [from_checks(name, checks) for name, checks in by_env.items()]
    # A verification whose checks failed is still a green SUCCESS in the Runs list (the
    # checks do not block): the verdict tag says what it found, where people look first.
    found = [f"{e['name']}: {e['state']}" for e in entries if not e["ok"]]
    tag_run(outcome, {VERDICT_TAG: "; ".join(found)[:250] if found else "all in sync"})
    document = {"command": "verify", **outcome.to_dict(), "environments": entries}
    lines = [*state_lines(entries)]
    for failure in outcome.failures:
        lines.append(f"✗ {failure['description']}")
    lines += ["", *run_lines(outcome)]
    emit(args, document, lines)
    ok = outcome.success and all(entry["ok"] for entry in entries)
    return OK if ok else FOUND
