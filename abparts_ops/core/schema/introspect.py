"""Read a live PostgreSQL schema into a :class:`~abparts_ops.core.schema.model.Snapshot`.

One read-only, repeatable-read transaction and one catalog query (see
:mod:`abparts_ops.core.schema.catalog_sql`): fast enough for thousands of tables, where
SQLAlchemy reflection would take seconds. ``search_path`` is pinned to the schema so that
type names and expressions render the same way in every database.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from abparts_ops.core.db import connect, make_engine
from abparts_ops.core.errors import SchemaError
from abparts_ops.core.schema.catalog_sql import SCHEMA_EXISTS_SQL, SNAPSHOT_SQL
from abparts_ops.core.schema.exclusions import compile_patterns
from abparts_ops.core.schema.model import Snapshot, canonical_json, sha256_text

DEFAULT_SCHEMA = "public"
ALWAYS_EXCLUDED = ("alembic_version",)


def _quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def exclusion_patterns(exclude: Iterable[str], version_table: str = "alembic_version") -> list[str]:
    """The glob patterns actually applied: the configured ones plus Alembic's version table."""
    patterns = list(exclude)
    if version_table not in patterns:
        patterns.append(version_table)
    return patterns


def fetch_rows(
    conn: Connection, *, schema: str, patterns: list[str]
) -> list[tuple[str, str, str | None, Any]]:
    """Run the catalog query on ``conn`` and return its raw rows (probe row included).

    Pins ``search_path`` for the current transaction only.
    """
    raw = conn.connection.dbapi_connection
    assert raw is not None
    with raw.cursor() as cur:
        cur.execute(SCHEMA_EXISTS_SQL, {"schema": schema})
        if cur.fetchone() is None:
            raise SchemaError(
                f"schema {schema!r} does not exist in this database (fix the `schema` "
                "setting or create it)."
            )
        cur.execute(f"SET LOCAL search_path TO {_quote_ident(schema)}, pg_catalog")
        cur.execute(SNAPSHOT_SQL, {"schema": schema, "excl": compile_patterns(patterns)})
        return cur.fetchall()


def snapshot_from_rows(
    rows: Iterable[tuple[str, str, str | None, Any]],
    *,
    schema: str,
    source: str | None = None,
    server_version: str | None = None,
) -> Snapshot:
    """Assemble a snapshot from catalog rows; excluded rows are grouped by their owner."""
    objects: dict[str, dict[str, Any]] = defaultdict(dict)
    excluded_rows: dict[str, list[tuple[str, str, Any]]] = defaultdict(list)
    probe: str | None = None
    for kind, key, owner, attrs in rows:
        if kind == "~probe":
            probe = key
        elif owner is None:
            objects[kind][key] = attrs
        else:
            excluded_rows[owner].append((kind, key, attrs))
    excluded = {
        owner: sha256_text(canonical_json(sorted(items, key=lambda r: (r[0], r[1]))))
        for owner, items in excluded_rows.items()
    }
    return Snapshot(
        schema=schema,
        objects=dict(objects),
        excluded=excluded,
        source=source,
        server_version=server_version,
        probe_fingerprint=probe,
    )


def snapshot_connection(
    conn: Connection,
    *,
    schema: str = DEFAULT_SCHEMA,
    exclude: Iterable[str] = (),
    version_table: str = "alembic_version",
    source: str | None = None,
    require_tables: bool = True,
) -> Snapshot:
    """Snapshot ``schema`` through an open connection (in its own read-only transaction).

    ``exclude`` holds names or globs of tables, views, sequences and types to leave out
    of the comparison (their columns, constraints, indexes and owned sequences follow).
    With ``require_tables`` an empty schema is an error (a source with no tables is
    almost always the wrong database).
    """
    patterns = exclusion_patterns(exclude, version_table)
    label = source or "database"
    if conn.in_transaction():
        conn.commit()
    with conn.begin():
        conn.exec_driver_sql("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        version = conn.exec_driver_sql("SHOW server_version").scalar()
        rows = fetch_rows(conn, schema=schema, patterns=patterns)
    snapshot = snapshot_from_rows(
        rows, schema=schema, source=source, server_version=str(version).split()[0]
    )
    if require_tables and not snapshot.kind("table"):
        raise SchemaError(
            f"{label}: schema {schema!r} has no tables (after exclusions); is this the "
            "right database? (check the environment's URL variable)"
        )
    return snapshot


def take_snapshot(
    url: str | sa.URL,
    *,
    schema: str = DEFAULT_SCHEMA,
    exclude: Iterable[str] = (),
    version_table: str = "alembic_version",
    source: str | None = None,
    require_tables: bool = True,
    connect_timeout: int = 5,
) -> Snapshot:
    """Connect to ``url`` and snapshot ``schema`` (see :func:`snapshot_connection`).

    Errors name ``source`` (the environment) and never include the password.
    """
    label = source or "database"
    engine = make_engine(url, label=label, connect_timeout=connect_timeout)
    try:
        with connect(engine, label=label) as conn:
            return snapshot_connection(
                conn,
                schema=schema,
                exclude=exclude,
                version_table=version_table,
                source=source,
                require_tables=require_tables,
            )
    finally:
        engine.dispose()
