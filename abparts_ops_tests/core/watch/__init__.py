"""Tests of abparts_ops.core.watch: probe, reference, states, drift tick."""
