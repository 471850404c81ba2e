"""Tests of abparts_ops.core.rollout: the guard, stamp, catch-up and guarded upgrade."""
