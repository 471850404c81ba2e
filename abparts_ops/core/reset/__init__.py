"""The reset: render the baseline, prove it on a scratch database, then write it.

``runbook`` reads like the runbook it replaces; nothing is written before every blocking
proof (``proofs``, ``smoke``) has passed.
"""
