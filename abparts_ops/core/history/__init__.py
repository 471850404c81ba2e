"""The history: the Alembic project, its revisions, the archive, the expected schemas.

What the on-disk history says each environment should be, at each revision, and the
cache that keeps those answers (content-keyed, extended incrementally).
"""
