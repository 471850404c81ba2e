"""abparts_ops: reset and guard the Alembic migration history of ABParts databases."""

__version__ = "0.1.0"
