"""Tests of abparts_ops.core.history (tiny Alembic projects generated in tmp_path)."""
