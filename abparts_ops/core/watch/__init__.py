"""The watch: what each environment is, against the one reference.

The cheap probe, the reference (``assess_*``: "what should this environment be?"), the
states and the drift tick the sensor runs.
"""
