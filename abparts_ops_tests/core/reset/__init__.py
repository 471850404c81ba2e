"""Tests of abparts_ops.core.reset: the baseline, its proofs, the runbook."""
