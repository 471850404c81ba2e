"""``abparts-ops drift``: each environment's state against the migration history, live."""

from __future__ import annotations

import argparse
from typing import Any

from abparts_ops.cli.common import (
    EXIT_CODES,
    FOUND,
    OK,
    BadInput,
    Formatter,
    add_json,
    emit,
    environment_names,
    load,
)
from abparts_ops.cli.environments import from_assessment, state_lines

HELP = "each environment's state against the migration history, read live (no run)"
DESCRIPTION = """\
Read each named environment (ENV... or --all; none named means all) and say which state
it is in against the migration history, the reference: in_sync, behind (pending
revisions listed), awaiting_stamp, unknown_revision, schema_drift (with the diff against
the schema the history builds at its own revision) or unreachable. The expected schemas
come from the cache, built on the scratch server when the history changed. Reads only;
launches no Dagster run (use verify for a run the UI shows).

JSON: {"environments": [{"name", "state", "revision", "expected_revision", "pending",
"summary", "diff", "head", "ok"}]} (see README, Command line)."""

EXAMPLES = """\
examples:
  abparts-ops drift prod          prod's state, with the diff on drift
  abparts-ops drift --all --json  every environment, for CI"""


def register(sub: Any) -> None:
    """Add the ``drift`` command."""
    parser = sub.add_parser(
        "drift", help=HELP, description=DESCRIPTION, epilog=f"{EXAMPLES}\n\n{EXIT_CODES}",
        formatter_class=Formatter,
    )
    parser.add_argument(
        "envs", metavar="ENV", nargs="*",
        help="an environment name from the configuration (several allowed)",
    )
    parser.add_argument("--all", action="store_true", help="every configured environment")
    add_json(parser)
    parser.set_defaults(func=run)


def assess_all(settings: Any, names: list[str]) -> list[Any]:
    """The reference's assessment of each environment in ``names`` (unreachable ones too).

    The expected schemas come from
    :func:`abparts_ops.core.history.expected_cache.load_or_build_expected` (once per schema),
    the state from :func:`abparts_ops.core.watch.verify.snapshot_state` (the one reference).
    """
    from abparts_ops.core.db import scrub
    from abparts_ops.core.errors import AbpartsOpsError
    from abparts_ops.core.history.expected_cache import default_cache_dir, load_or_build_expected
    from abparts_ops.core.history.project import load_project
    from abparts_ops.core.rollout.catch_up import archive_positions
    from abparts_ops.core.watch.reference import unreachable
    from abparts_ops.core.watch.verify import snapshot_state

    project = load_project(
        ini_path=settings.alembic.ini_path,
        script_location=settings.alembic.script_location,
        version_table=settings.alembic.version_table,
    )
    archived = archive_positions(project)
    expected_by_schema: dict[str, Any] = {}
    assessments = []
    for name in names:
        env = settings.environments[name]
        if env.schema not in expected_by_schema:
            expected_by_schema[env.schema], _ = load_or_build_expected(
                settings.scratch_url(), project, schema=env.schema, exclude=settings.exclude,
                cache_dir=default_cache_dir(), privileges=settings.compare_privileges,
            )
        url = None
        try:
            url = env.url()
            assessments.append(
                snapshot_state(
                    url, environment=name, expected=expected_by_schema[env.schema],
                    archived=archived, schema=env.schema, exclude=settings.exclude,
                    version_table=project.version_table,
                    version_table_schema=project.version_table_schema,
                )
            )
        except AbpartsOpsError as exc:
            line = scrub(str(exc), url).strip().splitlines()[0]
            assessments.append(unreachable(name, line))
    return assessments


def run(args: argparse.Namespace) -> int:
    """Print each environment's state; exit 0 only when every one is in sync."""
    settings = load()
    if args.all and args.envs:
        raise BadInput("give environment names or --all, not both.")
    names = environment_names(settings, args.envs) if args.envs else list(settings.environments)
    entries = [from_assessment(a) for a in assess_all(settings, names)]
    emit(args, {"environments": entries}, state_lines(entries))
    return OK if all(entry["ok"] for entry in entries) else FOUND
