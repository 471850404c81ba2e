"""The rollout: every write to an environment, through one guard.

The guard (``write_guard``: confirmation, identity, advisory lock), the stamp, the catch-up,
and the upgrade with its rehearsal on a copy, its lint and pre-checks, run by one watched
runner.
"""
