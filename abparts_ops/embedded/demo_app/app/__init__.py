"""ABParts demo application: just enough of the app for Alembic (its SQLAlchemy models)."""
