"""``abparts-ops``: what people script outside the UI.

    abparts-ops demo start|stop|status     the embedded PostgreSQL and demo environments
    abparts-ops demo drift [--env staging] add an index by hand, to watch the sensor catch it
    abparts-ops doctor                     every environment reachable, with the privileges,
                                           no two on one database, scratch usable
    abparts-ops drift ENV                  ENV's state against the migration history

Exit codes: 0 all good, 1 something found (drift, unreachable, missing privilege),
2 bad input (configuration, arguments).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from abparts_ops.core.doctor import run_doctor
from abparts_ops.core.errors import AbpartsOpsError, ConfigError
from abparts_ops.core.migrations.project import load_project
from abparts_ops.core.settings import CONFIG_ENV, Settings, load_settings

OK, FOUND, BAD_INPUT = 0, 1, 2


def _settings() -> Settings:
    """The configured settings, or the demo's (starting it) when none is configured."""
    import os

    if os.environ.get(CONFIG_ENV):
        return load_settings()
    from abparts_ops.embedded.demo import ensure_demo

    return load_settings(ensure_demo().config_path)


def cmd_doctor(_args: argparse.Namespace) -> int:
    """Check every environment, the source included, and the scratch server, for real."""
    findings = run_doctor(_settings())
    for finding in findings:
        print(finding.line())
    return OK if all(finding.ok for finding in findings) else FOUND


def cmd_drift(args: argparse.Namespace) -> int:
    """Print ENV's state against the migration history (the reference), live.

    The expected schemas come from the cache (built on the scratch server when the
    history changed); the environment is read in full, so a drift shows its diff.
    Exit 0 when in sync, 1 in any other state.
    """
    from abparts_ops.core.migrations.expected import (
        archived_revisions,
        default_cache_dir,
        load_or_build_expected,
    )
    from abparts_ops.core.verify import snapshot_state

    settings = _settings()
    if args.env not in settings.environments:
        print(f"unknown environment {args.env!r} (known: {', '.join(settings.environments)})")
        return BAD_INPUT
    env = settings.environments[args.env]
    project = load_project(
        ini_path=settings.alembic.ini_path,
        script_location=settings.alembic.script_location,
        version_table=settings.alembic.version_table,
    )
    expected, _reused = load_or_build_expected(
        settings.scratch_url(),
        project,
        schema=env.schema,
        exclude=settings.exclude,
        cache_dir=default_cache_dir(),
        privileges=settings.compare_privileges,
    )
    try:
        assessment = snapshot_state(
            env.url(),
            environment=env.name,
            expected=expected,
            archived=set(archived_revisions(project)),
            schema=env.schema,
            exclude=settings.exclude,
            version_table=project.version_table,
            version_table_schema=project.version_table_schema,
        )
    except AbpartsOpsError as exc:
        print(f"{env.name}: unreachable: {exc}")
        return FOUND
    print(f"{env.name}: {assessment.state.value}")
    print(f"  {assessment.summary}")
    if assessment.pending:
        print(f"  pending: {', '.join(assessment.pending)}")
    if assessment.diff is not None and not assessment.diff.is_empty:
        print(assessment.diff.to_markdown())
    return OK if assessment.state.ok else FOUND


def cmd_demo(args: argparse.Namespace) -> int:
    """Start, stop or describe the embedded demo; or add drift to a demo environment."""
    from abparts_ops.embedded import demo
    from abparts_ops.embedded.server import EmbeddedPostgres

    server = EmbeddedPostgres()
    if args.action == "stop":
        server.stop()
        print("embedded PostgreSQL stopped")
        return OK
    if args.action == "status":
        print("embedded PostgreSQL: " + ("running" if server.is_running() else "stopped"))
        return OK
    layout = demo.ensure_demo()
    if args.action == "drift":
        settings = load_settings(layout.config_path)
        print(demo.introduce_drift(settings.environments[args.env].url(), args.kind))
        return OK
    info = server.info()
    print(f"embedded PostgreSQL on 127.0.0.1:{info.port}; demo config {layout.config_path}")
    print(f"export {CONFIG_ENV}={layout.config_path}  # plus the ABPARTS_*_URL variables")
    return OK


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface (see the module docstring)."""
    parser = argparse.ArgumentParser(prog="abparts-ops", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    demo_parser = sub.add_parser("demo", help="the embedded demo database")
    demo_parser.add_argument("action", choices=["start", "stop", "status", "drift"])
    demo_parser.add_argument("--env", default="staging", help="environment for `drift`")
    demo_parser.add_argument("--kind", default="index", choices=["index", "default", "revision"])
    demo_parser.set_defaults(func=cmd_demo)
    doctor = sub.add_parser("doctor", help="reachability and privileges of every environment")
    doctor.set_defaults(func=cmd_doctor)
    drift = sub.add_parser(
        "drift", help="an environment's state against the migration history (exit 0: in sync)"
    )
    drift.add_argument("env")
    drift.set_defaults(func=cmd_drift)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``abparts-ops``; returns the exit code."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except ConfigError as exc:
        print(f"configuration error:\n{exc}", file=sys.stderr)
        return BAD_INPUT
    except AbpartsOpsError as exc:
        print(str(exc), file=sys.stderr)
        return FOUND


if __name__ == "__main__":
    sys.exit(main())
