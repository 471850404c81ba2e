"""Which database an environment really is: the server's identity plus the database's.

An environment is its database, not its name. Two URLs can differ in every character
(host alias, IP address, port forward, another role) and still reach one database; a
stamp meant for staging must then refuse, because it would write to prod. The identity
is the cluster's ``system_identifier`` (from ``pg_control_system()``, unique per
``initdb``), the database's oid and its name: stable across connections, roles and
host names, and different for a restored copy or a re-created database.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from abparts_ops.core.db import connect, make_engine

_IDENTITY_SQL = (
    "SELECT (SELECT system_identifier FROM pg_control_system())::text, d.oid::bigint, "
    "d.datname FROM pg_database d WHERE d.datname = current_database()"
)


@dataclass(frozen=True)
class DatabaseIdentity:
    """One database on one PostgreSQL cluster, independent of how it is reached."""

    system_identifier: str
    database_oid: int
    database_name: str

    @property
    def key(self) -> str:
        """A short stable key (16 hex digits): equal keys mean the same database."""
        raw = f"{self.system_identifier}:{self.database_oid}:{self.database_name}"
        return hashlib.sha256(raw.encode()).hexdigest()[:16]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly form (for metadata and the stamp's records)."""
        return {
            "system_identifier": self.system_identifier,
            "database_oid": self.database_oid,
            "database_name": self.database_name,
            "key": self.key,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DatabaseIdentity:
        """The identity written by :meth:`to_dict` (``key`` is recomputed, not trusted)."""
        return cls(
            system_identifier=str(data["system_identifier"]),
            database_oid=int(data["database_oid"]),
            database_name=str(data["database_name"]),
        )

    def describe(self) -> str:
        """One readable line: the database name, its oid and the cluster's identifier."""
        return (
            f"database {self.database_name!r} (oid {self.database_oid}) on cluster "
            f"{self.system_identifier}"
        )


def identity_of_connection(conn: Connection) -> DatabaseIdentity:
    """The identity of the database ``conn`` is connected to.

    ``pg_control_system()`` is executable by every role since PostgreSQL 10, so no
    privilege beyond CONNECT is needed.
    """
    system_identifier, oid, name = conn.execute(sa.text(_IDENTITY_SQL)).one()
    return DatabaseIdentity(
        system_identifier=str(system_identifier), database_oid=int(oid), database_name=name
    )


def database_identity(
    target: str | sa.URL | Connection, *, label: str = "database", connect_timeout: int = 5
) -> DatabaseIdentity:
    """The identity of the database at ``target`` (a URL or an open connection).

    Errors are one safe :class:`~abparts_ops.core.errors.DatabaseError` line naming
    ``label`` (no password).
    """
    if isinstance(target, Connection):
        return identity_of_connection(target)
    engine = make_engine(target, label=label, connect_timeout=connect_timeout)
    try:
        with connect(engine, label=label) as conn:
            return identity_of_connection(conn)
    finally:
        engine.dispose()


def shared_databases(identities: Mapping[str, DatabaseIdentity]) -> list[list[str]]:
    """Groups of environments (two or more) that resolve to one database.

    Each group lists its environment names in the mapping's order; the groups come in
    the order of their first member. An empty list means every environment is its own
    database.
    """
    groups: dict[str, list[str]] = {}
    for environment, identity in identities.items():
        groups.setdefault(identity.key, []).append(environment)
    return [names for names in groups.values() if len(names) > 1]


def describe_shared(groups: list[list[str]]) -> list[str]:
    """One line per group of :func:`shared_databases`, naming the fix."""
    return [
        f"{', '.join(names)} resolve to the same database: give each environment the URL "
        "of its own database (a stamp meant for one would write to the other)."
        for names in groups
    ]
