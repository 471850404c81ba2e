"""The four built-in tests of pytest-alembic, run with plain ``pytest`` (see conftest.py)."""

from pytest_alembic.tests import (  # noqa: F401 - collected by pytest from this module
    test_model_definitions_match_ddl,
    test_single_head_revision,
    test_up_down_consistency,
    test_upgrade,
)
