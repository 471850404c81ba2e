"""``abparts-ops``: the pipeline from a terminal, a script or a CI job.

One module per command (``reset``, ``stamp``, ``upgrade``, ``verify``, ``drift``,
``check-revisions``, ``doctor``, ``demo``). The commands that write or verify launch the
pipeline's own Dagster jobs on the configured instance (:mod:`abparts_ops.cli.launch`);
``drift`` and ``check-revisions`` read through the core. Every command takes ``--json``
and exits 0 (all good), 1 (found or refused) or 2 (bad input).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from abparts_ops.cli import (
    check_revisions,
    demo,
    doctor,
    drift,
    reset,
    stamp,
    upgrade,
    verify,
)
from abparts_ops.cli.common import BAD_INPUT, EXIT_CODES, FOUND, OK, BadInput, Formatter
from abparts_ops.core.errors import AbpartsOpsError, ConfigError

__all__ = ["BAD_INPUT", "FOUND", "OK", "build_parser", "main"]

DESCRIPTION = """\
abparts-ops: reset, stamp, upgrade and watch the Alembic history of your PostgreSQL
environments from a terminal or CI. The commands that write or verify launch the same
Dagster jobs as the UI, on the instance of DAGSTER_HOME (the runs appear in the UI,
tagged with who launched them). Without ABPARTS_OPS_CONFIG every command uses the
embedded demo.

Every command takes --json (one JSON document on stdout) and --help."""


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are raised (exit code 2, one line, JSON if asked)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        """Raise BadInput instead of printing usage and exiting."""
        raise BadInput(f"{self.prog}: {message} (see {self.prog} --help)")


def build_parser() -> argparse.ArgumentParser:
    """The command line: one sub-command per module."""
    parser = _Parser(
        prog="abparts-ops", description=DESCRIPTION, epilog=EXIT_CODES, formatter_class=Formatter
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND",
                                parser_class=_Parser)
    for module in (reset, stamp, upgrade, verify, drift, check_revisions, doctor, demo):
        module.register(sub)
    return parser


def _error(argv: Sequence[str], message: str, code: int) -> int:
    if "--json" in argv:
        print(json.dumps({"error": message, "exit_code": code}, indent=2))
    else:
        print(message, file=sys.stderr)
    return code


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``abparts-ops``; returns the exit code."""
    words = list(sys.argv[1:] if argv is None else argv)
    try:
        args = build_parser().parse_args(words)
        return int(args.func(args))
    except BadInput as exc:
        return _error(words, f"abparts-ops: {exc}", BAD_INPUT)
    except ConfigError as exc:
        return _error(words, f"configuration error:\n{exc}", BAD_INPUT)
    except AbpartsOpsError as exc:
        return _error(words, str(exc), FOUND)
    except KeyboardInterrupt:
        return _error(words, "interrupted", FOUND)


if __name__ == "__main__":
    sys.exit(main())
