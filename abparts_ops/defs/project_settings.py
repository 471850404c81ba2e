"""Where the Dagster project finds its configuration: the user's file, or the demo."""

from __future__ import annotations

import os
import sys

from abparts_ops.core.errors import AbpartsOpsError, ConfigError
from abparts_ops.core.settings import CONFIG_ENV, Settings, load_settings


def is_demo() -> bool:
    """True when the project runs the embedded demo (no ``ABPARTS_OPS_CONFIG``).

    Decides whether sensors and the schedule start RUNNING (the demo) or STOPPED.
    """
    return not os.environ.get(CONFIG_ENV)


def load_project_settings() -> Settings:
    """The code location's settings; a bad configuration fails with its lines first.

    Dagster's commands print the whole import traceback (about 60 lines) and only then
    the error; the lines that say what to fix are written to stderr first, and the error
    raised again from here, so the traceback that follows is short.
    """
    try:
        return _load()
    except AbpartsOpsError as exc:
        message = str(exc)
        print(f"abparts_ops: configuration error:\n{message}", file=sys.stderr, flush=True)
        raise ConfigError(message) from None


def _load() -> Settings:
    """Settings from ``$ABPARTS_OPS_CONFIG``; without it, the embedded demo's.

    The demo path starts the embedded PostgreSQL, copies the sample Alembic project into
    the local data folder, builds dev/staging/prod and exports their URL variables (only
    where the user has not set them). Environment variables are checked when a run uses
    them, so the code location still loads when one is missing.
    """
    if os.environ.get(CONFIG_ENV):
        return load_settings(check_env=False)
    from abparts_ops.embedded.demo import ensure_demo

    layout = ensure_demo()
    return load_settings(layout.config_path, check_env=False)
