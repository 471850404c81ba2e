"""Fixtures of the migration tests: the guarded upgrade's setup (see ``upgrade_setup``)."""

from abparts_ops_tests.core.rollout.upgrade_setup import make_setup

__all__ = ["make_setup"]
