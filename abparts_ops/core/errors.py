"""Errors the pipeline raises on bad input: one line, naming what and how to fix it.

Every message is built by the code that knows the environment or file involved; none of
them ever contains a password (database URLs are rendered with
:func:`abparts_ops.core.db.redact_url` before they reach a message).
"""

from __future__ import annotations


class AbpartsOpsError(Exception):
    """Base class: an operator-facing error whose message is safe to show anywhere."""


class ConfigError(AbpartsOpsError):
    """The configuration file or an environment variable it names is wrong."""


class DatabaseError(AbpartsOpsError):
    """A database could not be reached or answered with an error."""


class EmbeddedServerError(AbpartsOpsError):
    """The embedded PostgreSQL server could not be started or found."""


class SchemaError(AbpartsOpsError):
    """A schema cannot be snapshotted (missing schema, empty database, ...)."""


class MigrationError(AbpartsOpsError):
    """The Alembic project or a revision cannot be read, rendered or applied."""


class StampRefused(AbpartsOpsError):
    """A guarded stamp refused to run; the database was left exactly as it was."""


class UpgradeRefused(AbpartsOpsError):
    """A guarded upgrade refused to run or was rolled back; nothing was written."""
