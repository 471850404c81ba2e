"""``abparts-ops demo``: the embedded PostgreSQL and the demo environments.

``start`` builds (or reuses) the demo and says how to reach it; ``env`` prints ``export``
lines for a shell (``eval "$(abparts-ops demo env)"``) whose URLs carry no password
(libpq reads it from the server's password file, mode 0600); ``stop`` stops every
embedded server under the local folder (the demo's and the tests') and the ``dagster
dev`` that ``scripts/demo`` started; ``drift`` changes a demo database by hand;
``leave-behind`` leaves one a revision behind dev before the reset (``scripts/demo``
catches it up after it).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shlex
import signal
import socket
import time
from pathlib import Path
from typing import Any

from abparts_ops.cli.common import EXIT_CODES, OK, BadInput, Formatter, add_json, emit
from abparts_ops.core.settings import CONFIG_ENV

HELP = "the embedded demo: start, stop, status, env, drift, leave-behind"
DESCRIPTION = """\
The embedded demo: a local PostgreSQL under .abparts_ops/ with the demo's dev, staging
and prod databases and a copy of the sample ABParts Alembic project.

  start   build or reuse the demo; print where it is
  env     print export lines for a shell: eval "$(abparts-ops demo env)"
          (ABPARTS_OPS_CONFIG, DAGSTER_HOME and the ABPARTS_*_URL variables; the URLs
          hold no password: libpq reads it from the server's password file)
  status  every embedded server under .abparts_ops/ (the demo's, the tests'): running?
  stop    stop every embedded server under .abparts_ops/ and the dagster dev that
          scripts/demo started
  drift   change a demo database by hand (--env, --kind), to watch the sensor catch it
  leave-behind
          before the reset: leave a demo environment (--env, default staging) one
          revision behind dev, running the old history's downgrade of its head; after
          the reset, `abparts-ops stamp ENV --apply --catch-up` brings it to the
          baseline (scripts/demo does both for staging)"""

DEFAULT_UI_PORT = 3000
UI_PID_FILE = "dagster-dev.pid"


def register(sub: Any) -> None:
    """Add the ``demo`` command."""
    from abparts_ops.embedded.demo import DRIFT_KINDS

    parser = sub.add_parser(
        "demo", help=HELP, description=DESCRIPTION, epilog=EXIT_CODES, formatter_class=Formatter
    )
    parser.add_argument(
        "action",
        choices=["start", "stop", "status", "env", "drift", "leave-behind", "ui-port"],
        help="what to do (ui-port: the port scripts/demo serves the UI on)",
    )
    parser.add_argument(
        "--env", default="staging",
        help="drift, leave-behind: the demo environment to change (default staging)",
    )
    parser.add_argument(
        "--kind", default="index", choices=list(DRIFT_KINDS),
        help="drift: an index added, a default changed, or the revision rewritten",
    )
    add_json(parser)
    parser.set_defaults(func=run)


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def ui_port() -> int:
    """The UI's port: ``$DAGSTER_PORT`` (must be free), else 3000 or the next free one."""
    raw = os.environ.get("DAGSTER_PORT", "").strip()
    if raw:
        if not raw.isdigit() or not 0 < int(raw) < 65536:
            raise BadInput(f"DAGSTER_PORT={raw!r} is not a port number.")
        if not _port_free(int(raw)):
            raise BadInput(
                f"port {raw} (DAGSTER_PORT) is taken by another program: choose another, "
                "e.g. DAGSTER_PORT=3001 scripts/demo (nothing was run)."
            )
        return int(raw)
    for port in range(DEFAULT_UI_PORT, DEFAULT_UI_PORT + 100):
        if _port_free(port):
            return port
    raise BadInput("no free port in 3000-3099: set DAGSTER_PORT to a free one.")


def _ui_pid_file() -> Path:
    from abparts_ops.embedded.server import project_home

    return project_home() / "dagster_home" / UI_PID_FILE


def _stop_ui() -> str | None:
    """Stop the ``dagster dev`` scripts/demo recorded (only if it is still that process)."""
    path = _ui_pid_file()
    try:
        pid = int(path.read_text().strip())
    except (OSError, ValueError):
        return None
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        path.unlink(missing_ok=True)
        return None
    if "dagster" not in cmdline or " dev" not in cmdline:
        path.unlink(missing_ok=True)
        return None
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGINT)  # what Ctrl-C does: dagster dev stops its children
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and Path(f"/proc/{pid}").exists():
        time.sleep(0.2)
    if Path(f"/proc/{pid}").exists():
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    path.unlink(missing_ok=True)
    return f"dagster dev (pid {pid}) stopped"


def _servers() -> list[Any]:
    from abparts_ops.embedded.server import embedded_servers

    return embedded_servers()


def _env_lines() -> tuple[dict[str, str], list[str]]:
    from abparts_ops.cli.launch import dagster_home
    from abparts_ops.embedded.demo import (
        DEMO_ENVIRONMENTS,
        SCRATCH_ENV_VAR,
        demo_database_name,
        ensure_demo,
        environment_variable,
    )
    from abparts_ops.embedded.server import EmbeddedPostgres

    saved = os.environ.get(CONFIG_ENV)
    os.environ.pop(CONFIG_ENV, None)
    try:
        layout = ensure_demo()
        home = dagster_home()
    finally:
        if saved is not None:
            os.environ[CONFIG_ENV] = saved
    server = EmbeddedPostgres()
    info = server.info()
    passfile = server.write_passfile()
    variables = {CONFIG_ENV: str(layout.config_path), "DAGSTER_HOME": str(home)}
    for env in DEMO_ENVIRONMENTS:
        variables[environment_variable(env)] = info.passfile_url(
            demo_database_name(env), passfile
        )
    variables[SCRATCH_ENV_VAR] = info.passfile_url("postgres", passfile)
    lines = [f"export {key}={shlex.quote(value)}" for key, value in variables.items()]
    return variables, lines


def run(args: argparse.Namespace) -> int:
    """Do the demo action; drift on an environment the demo does not have is bad input."""
    from abparts_ops.embedded import demo
    from abparts_ops.embedded.server import EmbeddedPostgres

    if args.action == "ui-port":
        port = ui_port()
        emit(args, {"port": port}, [str(port)])
        return OK
    if args.action == "stop":
        lines = []
        ui = _stop_ui()
        if ui:
            lines.append(ui)
        stopped = []
        for server in _servers():
            if server.is_running():
                server.stop()
                stopped.append(str(server.root))
                lines.append(f"embedded PostgreSQL stopped ({server.root})")
        if not lines:
            lines.append("nothing was running")
        emit(args, {"stopped": stopped, "ui": ui}, lines)
        return OK
    if args.action == "status":
        rows = [
            {"folder": str(server.root), "running": server.is_running()} for server in _servers()
        ]
        lines = [
            f"embedded PostgreSQL {row['folder']}: {'running' if row['running'] else 'stopped'}"
            for row in rows
        ] or ["no embedded PostgreSQL under this folder's .abparts_ops/"]
        emit(args, {"servers": rows}, lines)
        return OK
    if args.action == "env":
        variables, lines = _env_lines()
        emit(args, {"variables": variables}, lines)
        return OK
    if args.action in ("drift", "leave-behind"):
        if args.env not in demo.DEMO_ENVIRONMENTS:
            raise BadInput(
                f"demo {args.action}: no demo environment {args.env!r} (the demo has "
                f"{', '.join(demo.DEMO_ENVIRONMENTS)})."
            )
        saved = os.environ.pop(CONFIG_ENV, None)
        try:
            layout = demo.ensure_demo()
        finally:
            if saved is not None:
                os.environ[CONFIG_ENV] = saved
        from abparts_ops.core.settings import load_settings

        url = load_settings(layout.config_path).environments[args.env].url()
        if args.action == "leave-behind":
            line = demo.leave_behind(url, layout, label=args.env)
            emit(args, {"environment": args.env, "change": line}, [line])
            return OK
        line = demo.introduce_drift(url, args.kind)
        emit(args, {"environment": args.env, "kind": args.kind, "change": line},
             [f"{args.env}: {line}"])
        return OK
    layout = demo.ensure_demo()
    info = EmbeddedPostgres().info()
    lines = [
        f"embedded PostgreSQL on 127.0.0.1:{info.port}; demo configuration {layout.config_path}",
        "export its variables into your shell with:",
        '  eval "$(abparts-ops demo env)"',
    ]
    emit(args, {"port": info.port, "config": str(layout.config_path)}, lines)
    return OK
