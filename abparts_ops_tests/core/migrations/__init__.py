"""Tests of abparts_ops.core.migrations (tiny Alembic projects generated in tmp_path)."""
