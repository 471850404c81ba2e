"""``abparts-ops upgrade ENV``: the upgrade_<env> job, as the UI launches it."""

from __future__ import annotations

import argparse
from typing import Any

from abparts_ops.cli.common import (
    EXIT_CODES,
    BadInput,
    Formatter,
    add_json,
    environment_names,
    load,
)
from abparts_ops.cli.launch import launch
from abparts_ops.cli.write import op_name, report

HELP = "apply the pending revisions to ENV, guarded (job upgrade_ENV; a dry run unless --apply)"
DESCRIPTION = """\
Launch the upgrade_ENV job on the Dagster instance of DAGSTER_HOME, as the UI does: the
guarded upgrade of ENV to the head. ENV's schema is checked against its revision, the
pending revisions are rehearsed on a copy of ENV on the scratch server and the SQL they
really ran is linted (squawk, data loss). Without --apply it stops there and writes
nothing. With --apply, unacknowledged error-level findings block where configured
(protected environments by default); then the revisions are applied under the advisory
lock and the result verified. A protected ENV needs --confirm ENV.

A dry run exits 1 when error-level findings would block the real upgrade.
The run appears in the UI's Runs, tagged with who launched it; the upgrade records it."""

EXAMPLES = """\
examples:
  abparts-ops upgrade staging                  dry run: rehearsal and findings
  abparts-ops upgrade staging --apply          upgrade it
  abparts-ops upgrade prod --apply --confirm prod --acknowledge ban-drop-column"""


def register(sub: Any) -> None:
    """Add the ``upgrade`` command."""
    parser = sub.add_parser(
        "upgrade", help=HELP, description=DESCRIPTION, epilog=f"{EXAMPLES}\n\n{EXIT_CODES}",
        formatter_class=Formatter,
    )
    parser.add_argument("env", metavar="ENV", help="the environment to upgrade (as configured)")
    parser.add_argument(
        "--apply", action="store_true", help="really upgrade (run config dry_run: false)"
    )
    parser.add_argument(
        "--confirm", metavar="ENV", default="",
        help="the environment's own name: required to write to a protected environment",
    )
    parser.add_argument(
        "--acknowledge", metavar="RULE", action="append", default=[],
        help="a lint rule whose error-level findings you reviewed and accept (repeatable)",
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
    parser.set_defaults(func=run)


def upgrade_config(args: argparse.Namespace) -> dict[str, Any]:
    """The UpgradeConfig of the run; unknown rule names are bad input (nothing launched)."""
    from abparts_ops.core.rollout.lint import check_rule_names

    config: dict[str, Any] = {"dry_run": not args.apply}
    if args.confirm:
        config["confirm"] = args.confirm
    if args.acknowledge:
        rules = list(dict.fromkeys(args.acknowledge))
        check_rule_names(rules, where="--acknowledge", error=BadInput)
        config["acknowledge"] = rules
    if args.acknowledge_identity:
        config["acknowledge_identity"] = args.acknowledge_identity
    return config


def command_line(args: argparse.Namespace) -> list[str]:
    """The command as typed (for the run's tag)."""
    words = ["upgrade", args.env]
    if args.apply:
        words.append("--apply")
    if args.confirm:
        words += ["--confirm", args.confirm]
    for rule in args.acknowledge:
        words += ["--acknowledge", rule]
    if args.acknowledge_identity:
        words += ["--acknowledge-identity", args.acknowledge_identity]
    return words


def run(args: argparse.Namespace) -> int:
    """Launch upgrade_ENV with the config the arguments give; print the upgrade's record."""
    settings = load()
    [env] = environment_names(settings, [args.env])
    config = upgrade_config(args)
    from abparts_ops.defs.names import upgrade_job_name, upgrade_key

    key = upgrade_key(env)
    outcome = launch(
        upgrade_job_name(env), command=command_line(args),
        run_config={"ops": {op_name(key.path): {"config": config}}}, verbose=args.verbose,
    )
    event = outcome.event_of(key.to_user_string())
    # blocking_rules is recorded only where error-level findings block (the policy's)
    blocked = bool(event and event.metadata.get("blocking_rules")) and not args.apply
    return report(
        args, command="upgrade", environment=env, asset=key.to_user_string(),
        dry_run=not args.apply, outcome=outcome, blocked=blocked,
    )
