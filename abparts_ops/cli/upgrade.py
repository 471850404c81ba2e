"""``abparts-ops upgrade ENV``: the upgrade_<env> job, as the UI launches it."""

from __future__ import annotations

import argparse
from typing import Any

from abparts_ops.cli.common import (
    EXIT_CODES,
    BadInput,
    Formatter,
    environment_names,
    load,
)
from abparts_ops.cli.write import (
    add_write_arguments,
    launch_write,
    report,
    write_config,
    write_words,
)

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
    add_write_arguments(parser, "upgrade")
    parser.add_argument(
        "--acknowledge", metavar="RULE", action="append", default=[],
        help="a lint rule whose error-level findings you reviewed and accept (repeatable)",
    )
    parser.set_defaults(func=run)


def upgrade_config(args: argparse.Namespace) -> dict[str, Any]:
    """The UpgradeConfig of the run; unknown rule names are bad input (nothing launched)."""
    from abparts_ops.core.rollout.lint import check_rule_names

    config = write_config(args)
    if args.acknowledge:
        rules = list(dict.fromkeys(args.acknowledge))
        check_rule_names(rules, where="--acknowledge", error=BadInput)
        config["acknowledge"] = rules
    return config


def command_line(args: argparse.Namespace) -> list[str]:
    """The command as typed (for the run's tag)."""
    words = write_words("upgrade", args)
    for rule in args.acknowledge:
        words += ["--acknowledge", rule]
    return words


def run(args: argparse.Namespace) -> int:
    """Launch upgrade_ENV with the config the arguments give; print the upgrade's record."""
    settings = load()
    [env] = environment_names(settings, [args.env])
    config = upgrade_config(args)
    from abparts_ops.defs.names import upgrade_job_name, upgrade_key

    key = upgrade_key(env)
    outcome = launch_write(args, upgrade_job_name(env), key.path, config, command_line(args))
    event = outcome.event_of(key.to_user_string())
    # blocking_rules is recorded only where error-level findings block (the policy's)
    blocked = bool(event and event.metadata.get("blocking_rules")) and not args.apply
    return report(
        args, command="upgrade", environment=env, asset=key.to_user_string(),
        dry_run=not args.apply, outcome=outcome, blocked=blocked,
    )
