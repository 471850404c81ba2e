"""``abparts-ops doctor``: will the next verify, stamp and reset work? Checked for real."""

from __future__ import annotations

import argparse
from typing import Any

from abparts_ops.cli.common import EXIT_CODES, FOUND, OK, Formatter, add_json, emit, load

HELP = "reachability and privileges of every environment, and the scratch server"
DESCRIPTION = """\
For every environment, the source included: the URL is valid, the server answers, the
role has what the next stamp needs; no two environments resolve to one database; the
scratch server really creates and drops a throwaway database."""


def register(sub: Any) -> None:
    """Add the ``doctor`` command."""
    parser = sub.add_parser(
        "doctor", help=HELP, description=DESCRIPTION, epilog=EXIT_CODES,
        formatter_class=Formatter,
    )
    add_json(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Print one line per finding; exit 1 when anything is missing."""
    from abparts_ops.core.doctor import run_doctor

    findings = run_doctor(load())
    document = {
        "findings": [
            {"subject": f.subject, "ok": f.ok, "detail": f.detail} for f in findings
        ]
    }
    emit(args, document, [finding.line() for finding in findings])
    return OK if all(finding.ok for finding in findings) else FOUND
