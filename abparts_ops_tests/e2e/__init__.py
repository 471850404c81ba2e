"""End-to-end tests: the Dagster webserver and daemon as a person runs them, and a browser."""
