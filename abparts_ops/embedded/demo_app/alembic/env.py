"""Alembic environment of the ABParts demo application.

Where the database comes from, first match wins:

1. ``config.attributes["connection"]``: a connection shared by the caller (Alembic
   cookbook, "Sharing a Connection across one or more programmatic migration commands");
   the caller owns its transaction.
2. ``alembic -x url=postgresql://...``
3. the environment variable ``ABPARTS_DEMO_DATABASE_URL``
4. ``sqlalchemy.url`` in ``alembic.ini`` (empty in this project on purpose).
"""

from __future__ import annotations

import os
import sys
from logging.config import fileConfig
from pathlib import Path

from alembic import context
from sqlalchemy import create_engine, pool
from sqlalchemy.engine import Connection

# The application package (``app``) sits next to this ``alembic`` folder.
APP_ROOT = Path(__file__).resolve().parents[1]
if str(APP_ROOT) not in sys.path:
    sys.path.insert(0, str(APP_ROOT))

from app.models import Base  # noqa: E402

URL_ENV = "ABPARTS_DEMO_DATABASE_URL"

config = context.config
shared_connection: Connection | None = config.attributes.get("connection")

# Configure logging from the ini only when run from the command line: a program that
# shares its connection keeps its own logging setup.
if config.config_file_name is not None and shared_connection is None:
    fileConfig(config.config_file_name, disable_existing_loggers=False)

target_metadata = Base.metadata


def database_url() -> str:
    """The URL to migrate when no connection is shared (see the module docstring)."""
    url = (
        context.get_x_argument(as_dictionary=True).get("url")
        or os.environ.get(URL_ENV)
        or config.get_main_option("sqlalchemy.url")
    )
    if not url:
        raise RuntimeError(
            f"No database URL: pass -x url=..., set {URL_ENV}, or set sqlalchemy.url "
            "in alembic.ini."
        )
    return url


def configure_and_run(connection: Connection) -> None:
    """Run the migrations on ``connection`` (joins its transaction when one is open)."""
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_offline() -> None:
    """Emit SQL to stdout (``alembic upgrade --sql``) instead of running it."""
    context.configure(
        url=database_url(),
        target_metadata=target_metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    """Run against a live database: the shared connection, or a short-lived engine."""
    if shared_connection is not None:
        configure_and_run(shared_connection)
        return
    engine = create_engine(database_url(), poolclass=pool.NullPool)
    try:
        with engine.connect() as connection:
            configure_and_run(connection)
            connection.commit()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
