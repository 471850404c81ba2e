"""What every command shares: exit codes, the settings, output as text or one JSON document.

Exit codes are the same for every command: :data:`OK` (0) all good, :data:`FOUND` (1)
something was found or refused, :data:`BAD_INPUT` (2) the arguments or the
configuration are wrong. A command returns its code; bad input is raised as
:class:`BadInput` (one line) and turned into code 2 by :func:`abparts_ops.cli.main`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from abparts_ops.core.errors import AbpartsOpsError
from abparts_ops.core.settings import CONFIG_ENV, Settings, load_settings

OK, FOUND, BAD_INPUT = 0, 1, 2

EXIT_CODES = """\
exit codes:
  0  all good
  1  something found or refused (drift, a failed check or proof, a refusal, an
     unreachable environment, an error-level lint finding)
  2  bad input (arguments, configuration, an unknown environment or revision)"""


class BadInput(AbpartsOpsError):
    """The command line or the configuration is wrong (exit code 2); one line."""


class Formatter(argparse.RawDescriptionHelpFormatter):
    """Help that keeps the descriptions' own line breaks (lists, exit codes)."""


def add_json(parser: argparse.ArgumentParser) -> None:
    """The ``--json`` flag every command takes."""
    parser.add_argument(
        "--json",
        action="store_true",
        help="print one JSON document on stdout instead of text (for CI and scripts)",
    )


def demo_mode() -> bool:
    """True when no configuration file is named: the commands use the embedded demo."""
    return not os.environ.get(CONFIG_ENV)


def load(*, quiet: bool = True) -> Settings:
    """The configured settings; without ``ABPARTS_OPS_CONFIG``, the demo's (started).

    Environment variables are not required to be set here: each command reads an
    environment's URL when it uses it, so one missing variable makes that environment
    unreachable, not the whole command fail.
    """
    if not demo_mode():
        return load_settings(check_env=False)
    from abparts_ops.embedded.demo import ensure_demo

    layout = ensure_demo()
    if not quiet:
        print(f"(no {CONFIG_ENV}: the embedded demo, {layout.config_path})", file=sys.stderr)
    return load_settings(layout.config_path, check_env=False)


def environment_names(settings: Settings, names: Sequence[str]) -> list[str]:
    """``names`` checked against the configuration (BadInput naming the unknown one)."""
    for name in names:
        if name not in settings.environments:
            known = ", ".join(settings.environments)
            raise BadInput(f"unknown environment {name!r} (configured: {known}).")
    return list(dict.fromkeys(names))


def emit(args: argparse.Namespace, document: Mapping[str, Any], text: Iterable[str]) -> None:
    """Print ``document`` as JSON when ``--json`` was given, else the ``text`` lines."""
    if getattr(args, "json", False):
        print(json.dumps(document, indent=2, sort_keys=False, default=str))
    else:
        for line in text:
            print(line)


def table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str], width: int = 70) -> list[str]:
    """A plain-text table (left aligned, cells cut at ``width``)."""

    def cell(value: Any) -> str:
        text = "" if value is None else str(value)
        text = " ".join(text.split())
        return text if len(text) <= width else text[: width - 1] + "…"

    cells = [[cell(row.get(c)) for c in columns] for row in rows]
    widths = [max([len(c), *(len(r[i]) for r in cells)]) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() for r in cells]
    return lines
