"""The Dagster layer: thin assets, checks, jobs, sensors and resources over ``core``."""
