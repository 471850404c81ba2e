"""``abparts-ops stamp ENV``: the stamp_<env> job, as the UI launches it."""

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
    parser.add_argument("env", metavar="ENV", help="the environment to stamp (as configured)")
    parser.add_argument(
        "--apply", action="store_true", help="really stamp (run config dry_run: false)"
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
    parser.add_argument(
        "--verbose", action="store_true",
        help="show Dagster's events in the terminal instead of the log file",
    )
    add_json(parser)
    parser.set_defaults(func=run)


def stamp_config(args: argparse.Namespace) -> dict[str, Any]:
    """The StampConfig of the run, with only what the command line sets."""
    config: dict[str, Any] = {"dry_run": not args.apply}
    if args.confirm:
        config["confirm"] = args.confirm
    if args.acknowledge_identity:
        config["acknowledge_identity"] = args.acknowledge_identity
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
    words = ["stamp", args.env]
    if args.apply:
        words.append("--apply")
    if args.confirm:
        words += ["--confirm", args.confirm]
    if args.acknowledge_identity:
        words += ["--acknowledge-identity", args.acknowledge_identity]
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
    outcome = launch(
        stamp_job_name(env), command=command_line(args),
        run_config={"ops": {op_name(key.path): {"config": config}}}, verbose=args.verbose,
    )
    return report(
        args, command="stamp", environment=env, asset=key.to_user_string(),
        dry_run=not args.apply, outcome=outcome,
    )
