"""``abparts-ops stamp ENV``: the stamp_<env> job, as the UI launches it."""

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

HELP = "stamp ENV with the proven baseline (job stamp_ENV; a dry run unless --apply)"
DESCRIPTION = """\
Launch the stamp_ENV job on the Dagster instance of DAGSTER_HOME, as the UI does: the
guarded stamp of ENV with the baseline that reset proved, then ENV's checks. Without
--apply it is a dry run that says what would change and writes nothing. The guards are
the job's own: the baseline's proofs must have passed, ENV's schema must equal the
baseline's, ENV's database must be its own, a protected ENV needs --confirm ENV, and a
protected database whose identity changed needs --acknowledge-identity KEY.

The run appears in the UI's Runs, tagged with who launched it; the stamp records it."""

EXAMPLES = """\
examples:
  abparts-ops stamp staging                      dry run: what would change
  abparts-ops stamp staging --apply              stamp it
  abparts-ops stamp prod --apply --confirm prod  a protected environment"""


def register(sub: Any) -> None:
    """Add the ``stamp`` command."""
    parser = sub.add_parser(
        "stamp", help=HELP, description=DESCRIPTION, epilog=f"{EXAMPLES}\n\n{EXIT_CODES}",
        formatter_class=Formatter,
    )
    add_write_arguments(parser, "stamp")
    parser.add_argument(
        "--allow-behind-head", action="store_true",
        help="record the baseline although newer revisions exist (upgrade next)",
    )
    parser.add_argument(
        "--lock-timeout", metavar="SECONDS", type=float, default=None,
        help="how long to wait for another stamp or upgrade of ENV (default 10)",
    )
    parser.add_argument(
        "--catch-up", action="store_true",
        help=(
            "for an environment behind the reset (behind_archive): run the archived "
            "revisions to the old head, rehearsed and guarded, then stamp the baseline"
        ),
    )
    parser.add_argument(
        "--catch-up-to", metavar="REV", default=None,
        help="with --catch-up, when the archived history has several heads: the source's",
    )
    parser.add_argument(
        "--acknowledge", metavar="RULE", action="append", default=[],
        help="with --catch-up: a reviewed error-level finding's rule (repeatable)",
    )
    parser.set_defaults(func=run)


def stamp_config(args: argparse.Namespace) -> dict[str, Any]:
    """The StampConfig of the run, with only what the command line sets."""
    config = write_config(args)
    if args.allow_behind_head:
        config["allow_behind_head"] = True
    if args.lock_timeout is not None:
        if args.lock_timeout <= 0:
            raise BadInput("--lock-timeout must be a positive number of seconds.")
        config["lock_timeout_s"] = args.lock_timeout
    if (args.catch_up_to or args.acknowledge) and not args.catch_up:
        raise BadInput("--catch-up-to and --acknowledge go with --catch-up; nothing was launched.")
    if args.catch_up:
        config["catch_up"] = True
        if args.catch_up_to:
            config["catch_up_to"] = args.catch_up_to
        if args.acknowledge:
            config["acknowledge"] = list(args.acknowledge)
    return config


def command_line(args: argparse.Namespace) -> list[str]:
    """The command as typed (for the run's tag)."""
    words = write_words("stamp", args)
    if args.allow_behind_head:
        words.append("--allow-behind-head")
    if args.catch_up:
        words.append("--catch-up")
    return words


def run(args: argparse.Namespace) -> int:
    """Launch stamp_ENV with the config the arguments give; print the stamp's record."""
    settings = load()
    [env] = environment_names(settings, [args.env])
    config = stamp_config(args)
    from abparts_ops.defs.names import stamp_job_name, stamp_key

    key = stamp_key(env)
    outcome = launch_write(args, stamp_job_name(env), key.path, config, command_line(args))
    return report(
        args, command="stamp", environment=env, asset=key.to_user_string(),
        dry_run=not args.apply, outcome=outcome,
    )
