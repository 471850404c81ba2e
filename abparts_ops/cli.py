"""``abparts-ops``: what people script outside the UI.

    abparts-ops demo start|stop|status     the embedded PostgreSQL and demo environments
    abparts-ops demo drift [--env staging] add an index by hand, to watch the sensor catch it
    abparts-ops doctor                     every environment reachable, with the privileges,
                                           no two on one database, scratch usable
    abparts-ops drift ENV                  revision and schema drift of ENV against the source

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
from abparts_ops.core.schema.diff import diff_snapshots
from abparts_ops.core.schema.introspect import take_snapshot
from abparts_ops.core.schema.probe import probe
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
    """Print ENV's revision and schema drift against the source environment, live."""
    settings = _settings()
    if args.env not in settings.environments:
        print(f"unknown environment {args.env!r} (known: {', '.join(settings.environments)})")
        return BAD_INPUT
    env = settings.environments[args.env]
    source = settings.source_environment
    project = load_project(
        ini_path=settings.alembic.ini_path,
        script_location=settings.alembic.script_location,
        version_table=settings.alembic.version_table,
    )
    heads = tuple(sorted(project.script().get_heads()))
    common = {"exclude": settings.exclude, "version_table": settings.alembic.version_table}
    seen = probe(env.url(), environment=env.name, schema=env.schema, **common)
    reference = take_snapshot(source.url(), schema=source.schema, source=source.name, **common)
    status = OK
    print(f"{env.name}: revision {', '.join(seen.revisions or ()) or 'none'}; head "
          f"{', '.join(heads)}")
    if seen.revisions != heads:
        print("  revision drift: not at the head")
        status = FOUND
    if seen.fingerprint == reference.probe_fingerprint:
        print(f"  schema equals {source.name}")
        return status
    actual = take_snapshot(env.url(), schema=env.schema, source=env.name,
                           require_tables=False, **common)
    print(diff_snapshots(reference, actual, reference_label=source.name,
                         actual_label=env.name).to_markdown())
    return FOUND


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
    drift = sub.add_parser("drift", help="an environment's drift against the source")
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
