"""The Alembic side of abparts_ops: the project, its history, scratch databases, migrations.

Everything here runs revisions through Alembic's own APIs on a connection we open, never
through the application's ``env.py`` (which reads its own URL from its own variables).
"""
