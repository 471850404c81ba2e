"""Retrying a failed ``CREATE INDEX CONCURRENTLY``: the INVALID index it left is rebuilt.

A concurrent index build that fails (a duplicate in a unique index, a lock timeout, a
cancelled statement) leaves an INVALID index that owns its name; the environment is then
in ``schema_drift`` (the snapshot shows the index as ``valid: false``) and stays at the
revision before the one that built it. Once the cause is fixed, the guarded upgrade may
run again: when the whole difference from the environment's expected schema is such
INVALID indexes, and each is built again by a pending revision that runs as a step of
its own (``CREATE INDEX CONCURRENTLY <name>`` among the statements it ran in the
rehearsal), the index is dropped with ``DROP INDEX CONCURRENTLY`` right before that
revision runs, and built again by it. Anything else is drift, refused as before.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from abparts_ops.core.quoting import quote_always
from abparts_ops.core.schema.diff import SchemaDiff
from abparts_ops.core.schema.model import Snapshot
from abparts_ops.core.schema.validity import is_invalid

_IDENT = r'(?:"(?:[^"]|"")+"|[A-Za-z_][A-Za-z0-9_$]*)'
_CONCURRENT_BUILD = re.compile(
    rf"^\s*CREATE\s+(?:UNIQUE\s+)?INDEX\s+CONCURRENTLY\s+(?:IF\s+NOT\s+EXISTS\s+)?"
    rf"(?:{_IDENT}\s*\.\s*)?({_IDENT})",
    re.I,
)
_IS_INVALID = (
    "SELECT NOT (i.indisvalid AND i.indisready) FROM pg_index i "
    "JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
    "WHERE n.nspname = :schema AND c.relname = :name"
)


def invalid_leftovers(diff: SchemaDiff, actual: Snapshot) -> tuple[str, ...]:
    """The INVALID indexes that make up the whole of ``diff`` (extra in ``actual``).

    Empty when the diff holds anything else: then it is drift, not a failed build.
    """
    names: list[str] = []
    for change in diff.changes:
        attrs = actual.kind("index").get(change.key) if change.kind == "index" else None
        if change.change != "extra" or not is_invalid("index", attrs):
            return ()
        names.append(change.key)
    return tuple(names)


def _unquote(name: str) -> str:
    if name.startswith('"'):
        return name[1:-1].replace('""', '"')
    return name.lower()


def built_concurrently(statements: Iterable[str]) -> set[str]:
    """The names of the indexes ``statements`` build with ``CREATE INDEX CONCURRENTLY``."""
    names = set()
    for statement in statements:
        match = _CONCURRENT_BUILD.match(statement)
        if match:
            names.add(_unquote(match.group(1)))
    return names


def rebuilders(
    leftovers: Sequence[str],
    alone: Sequence[str],
    statements_of: Mapping[str, Sequence[str]],
) -> dict[str, str] | None:
    """Which revision builds each INVALID index again: ``{index: revision}``.

    Only a revision that runs as a step of its own counts (a concurrent build cannot run
    in a transaction). None when some index is rebuilt by no pending revision.
    """
    found: dict[str, str] = {}
    for revision in alone:
        for name in built_concurrently(statements_of.get(revision, ())):
            found.setdefault(name, revision)
    plan = {name: found[name] for name in leftovers if name in found}
    return plan if len(plan) == len(leftovers) else None


def drop_invalid(conn: Connection, schema: str, names: Iterable[str]) -> list[str]:
    """``DROP INDEX CONCURRENTLY`` each of ``names`` that is still INVALID; the dropped.

    Runs in autocommit (a concurrent drop cannot run in a transaction) and puts the
    connection's isolation level back afterwards. An index that became valid meanwhile,
    or is gone, is left alone.
    """
    if conn.in_transaction():
        conn.commit()
    previous = conn.get_isolation_level()
    conn.execution_options(isolation_level="AUTOCOMMIT")
    dropped = []
    try:
        for name in names:
            invalid = conn.execute(sa.text(_IS_INVALID), {"schema": schema, "name": name})
            if invalid.scalar():
                conn.exec_driver_sql(
                    f"DROP INDEX CONCURRENTLY IF EXISTS {quote_always(schema)}."
                    f"{quote_always(name)}"
                )
                dropped.append(name)
    finally:
        if conn.in_transaction():
            conn.commit()
        conn.execution_options(isolation_level=previous)
    return dropped
