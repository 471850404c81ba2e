"""The library behind abparts_ops: no Dagster import anywhere in this package."""
