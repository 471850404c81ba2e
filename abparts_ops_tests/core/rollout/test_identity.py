"""Database identity: one database reached by two URLs is one identity; two are two."""

from __future__ import annotations

from collections.abc import Callable

import sqlalchemy as sa

from abparts_ops.core.db import make_engine
from abparts_ops.core.rollout.identity import (
    DatabaseIdentity,
    database_identity,
    describe_shared,
    shared_databases,
)


def _alias(url: str) -> str:
    """The same database through another spelling of the host (localhost for 127.0.0.1)."""
    parsed = sa.engine.make_url(url)
    return parsed.set(host="localhost").render_as_string(hide_password=False)


def test_one_database_two_urls_is_one_identity(db_factory: Callable[..., str]) -> None:
    """Different URLs of one database share the identity; another database does not."""
    prod = db_factory("prod")
    other = db_factory("staging")
    first = database_identity(prod, label="prod")
    second = database_identity(_alias(prod), label="staging")
    third = database_identity(other, label="dev")
    assert first == second and first.key == second.key
    assert third != first and third.system_identifier == first.system_identifier
    assert len(first.key) == 16
    assert DatabaseIdentity.from_dict(first.to_dict()) == first
    groups = shared_databases({"dev": third, "staging": second, "prod": first})
    assert groups == [["staging", "prod"]]
    assert describe_shared(groups)[0].startswith("staging, prod resolve to the same database")
    assert shared_databases({"dev": third, "prod": first}) == []


def test_identity_from_an_open_connection(fresh_db: str) -> None:
    """A connection gives the same identity as its URL, and the name is the database's."""
    engine = make_engine(fresh_db)
    try:
        with engine.connect() as conn:
            from_conn = database_identity(conn)
    finally:
        engine.dispose()
    assert from_conn == database_identity(fresh_db)
    assert from_conn.database_name == sa.engine.make_url(fresh_db).database
