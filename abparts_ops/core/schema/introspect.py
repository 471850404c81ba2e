"""Read a live PostgreSQL schema into a :class:`~abparts_ops.core.schema.model.Snapshot`.

One read-only, repeatable-read transaction and one catalog query (see
:mod:`abparts_ops.core.schema.catalog_sql`; large schemas are read in two halves by two
connections sharing that transaction's snapshot): fast enough for thousands of tables,
where SQLAlchemy reflection would take seconds. ``search_path`` is pinned to the schema
so that type names and expressions render the same way in every database.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import json
import queue
import threading
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import psycopg2
import psycopg2.extensions
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from abparts_ops.core.db import connect, explain_error, make_engine
from abparts_ops.core.errors import SchemaError
from abparts_ops.core.quoting import quote_always
from abparts_ops.core.schema.catalog_sql import (
    DEPENDENCIES_SQL,
    SCHEMA_EXISTS_SQL,
    SNAPSHOT_PARTS,
    SNAPSHOT_SQL,
)
from abparts_ops.core.schema.exclusions import compile_patterns
from abparts_ops.core.schema.model import Snapshot, canonical_json, sha256_text

DEFAULT_SCHEMA = "public"
_CHUNK_ROWS = 5000
# json values as their text: parsed a chunk at a time by fetch_rows, not one by one
_JSON_AS_TEXT = psycopg2.extensions.new_type((114,), "ABPARTS_OPS_JSON_TEXT", lambda v, _c: v)
ALWAYS_EXCLUDED = ("alembic_version",)


def exclusion_patterns(exclude: Iterable[str], version_table: str = "alembic_version") -> list[str]:
    """The glob patterns actually applied: the configured ones plus Alembic's version table."""
    patterns = list(exclude)
    if version_table not in patterns:
        patterns.append(version_table)
    return patterns


def fetch_rows(
    conn: Connection,
    *,
    schema: str,
    patterns: list[str],
    label: str | None = None,
    parallel: bool = False,
    privileges: bool = False,
) -> list[tuple[str, str, str | None, Any, str | None]]:
    """Run the catalog query on ``conn``: rows of ``(kind, key, owner, attrs, digest)``.

    ``attrs`` is parsed; ``digest`` (compared rows only) is the row's probe digest (the
    sha256 of :func:`catalog_sql.row_digest`, as bytes). Pins
    ``search_path`` (and turns JIT off) for the current transaction only. ``label`` (the
    environment) prefixes errors. ``privileges`` also reads the granted privileges.

    With ``parallel`` (for a top-level, read-only transaction such as
    :func:`snapshot_connection`'s), large schemas (``PARALLEL_MIN_RELATIONS`` relations
    or more, on a primary) are read in two halves (:data:`catalog_sql.SNAPSHOT_PARTS`) by
    two connections at once, the second importing this transaction's snapshot so both see
    the same catalog; rows are parsed while the server is still producing the next ones.
    """
    return _fetch(
        conn, schema=schema, patterns=patterns, label=label, parallel=parallel,
        privileges=privileges, dependencies=False,
    )[0]


Row = tuple[str, str, str | None, Any, str | None]
DependencyRow = tuple[str, str, str, str]


def _fetch(
    conn: Connection,
    *,
    schema: str,
    patterns: list[str],
    label: str | None,
    parallel: bool,
    privileges: bool,
    dependencies: bool,
) -> tuple[list[Row], list[DependencyRow] | None]:
    """:func:`fetch_rows`, and with ``dependencies`` the rows of :func:`read_dependencies`
    read in the same transaction: on the first connection right after its half of the
    objects when two connections read (the halves and the dependencies are of about
    equal cost, so both connections finish together), else after the objects.
    """
    raw = conn.connection.dbapi_connection
    assert raw is not None
    prefix = f"{label}: " if label else ""
    params = {"schema": schema, "excl": compile_patterns(patterns), "privileges": privileges}
    try:
        with raw.cursor() as cur:
            cur.execute(SCHEMA_EXISTS_SQL, {"schema": schema})
            if cur.fetchone() is None:
                raise SchemaError(
                    f"{prefix}schema {schema!r} does not exist in this database (fix the "
                    "`schema` setting or create it)."
                )
            cur.execute(f"SET LOCAL search_path TO {quote_always(schema)}, pg_catalog")
            cur.execute(_READ_SETTINGS)
            snapshot_id = None
            if parallel:
                cur.execute(_SIZE_SQL, {"schema": schema})
                relations, in_recovery = cur.fetchone()
                if relations >= PARALLEL_MIN_RELATIONS and not in_recovery:
                    cur.execute("SELECT pg_export_snapshot()")
                    snapshot_id = cur.fetchone()[0]
        helper = _open_helper(conn, snapshot_id, schema) if snapshot_id else None
        try:
            with _gc_paused():
                if helper is None:
                    return _read_streams([(raw, SNAPSHOT_SQL, dependencies)], params)
                return _read_streams(
                    [(raw, SNAPSHOT_PARTS[0], dependencies),
                     (helper.dbapi_connection, SNAPSHOT_PARTS[1], False)],
                    params,
                )
        finally:
            if helper is not None:
                helper.close()
    except psycopg2.Error as exc:  # raised by the raw cursor, not wrapped by SQLAlchemy
        raise explain_error(exc, label=label or "database", url=conn.engine.url) from None


_SIZE_SQL = """SELECT count(*), pg_is_in_recovery() FROM pg_class
WHERE relnamespace = (SELECT oid FROM pg_namespace WHERE nspname = %(schema)s)"""
# For the catalog reads of this transaction: no JIT (its compile time alone exceeded the
# query time), and plans for reading every row. The rows come through a server-side
# cursor, which PostgreSQL plans for its first 10 % by default: fast-start plans that at
# 1,000 tables cost a fifth more server CPU than planning for all rows (0.38 s against
# 0.30 s), and up to twice as much after a small change to a branch flipped a plan.
_READ_SETTINGS = "SET LOCAL jit = off; SET LOCAL cursor_tuple_fraction = 1"
# Below this many relations in the schema one connection is faster than two.
PARALLEL_MIN_RELATIONS = 400
_DONE = object()


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while building many small objects.

    Parsing a large schema creates ~100,000 dicts; each collection the allocations would
    trigger walks every live object again (a third of the client's CPU at 5,000 tables).
    None of these objects form cycles, so nothing is lost by collecting later.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _open_helper(conn: Connection, snapshot_id: str, schema: str) -> Any | None:
    """A second connection in a transaction that sees ``snapshot_id``; None if unavailable.

    Any failure (connection limit, permissions) just means reading on one connection.
    """
    try:
        helper = conn.engine.raw_connection()
    except (sa.exc.DBAPIError, psycopg2.Error):
        return None
    try:
        with helper.dbapi_connection.cursor() as cur:
            cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            cur.execute("SET TRANSACTION SNAPSHOT %s", (snapshot_id,))
            cur.execute(f"SET LOCAL search_path TO {quote_always(schema)}, pg_catalog")
            cur.execute(_READ_SETTINGS)
    except psycopg2.Error:
        helper.close()
        return None
    return helper


def _chunks(raw: Any, sql: str, params: dict[str, Any]) -> Iterator[list[tuple[Any, ...]]]:
    """The rows of ``sql`` in chunks, json values as text.

    Inside a transaction a server-side cursor is used, so only a chunk of raw rows is in
    memory at a time (outside one, psycopg2 cannot use them: a client-side cursor).
    """
    cursor = raw.cursor() if raw.autocommit else raw.cursor(name="abparts_ops_snapshot")
    with cursor as cur:
        psycopg2.extensions.register_type(_JSON_AS_TEXT, cur)
        cur.execute(sql, params)
        while chunk := cur.fetchmany(_CHUNK_ROWS):
            yield chunk


class _Dependencies(list):  # type: ignore[type-arg]
    """The dependency rows, as queued by a stream (told apart from a chunk by type)."""


def _stream(
    raw: Any, sql: str, params: dict[str, Any], out: queue.Queue[Any], dependencies: bool
) -> None:
    """Queue the chunks of ``sql`` (in a thread), then with ``dependencies`` the dependency
    rows (:class:`_Dependencies`), then an exception if any, then _DONE."""
    try:
        for chunk in _chunks(raw, sql, params):
            out.put(chunk)
        if dependencies:
            out.put(_Dependencies(_dependency_rows(raw, params)))
    except BaseException as exc:  # handed to the reading thread, which raises it
        out.put(exc)
    finally:
        out.put(_DONE)


def _parse(chunk: list[tuple[Any, ...]]) -> list[Row]:
    """Parse a chunk's json texts in one json.loads (sharing the attribute-name strings of
    its objects) and add each compared row's digest, computed from the very same text
    (:func:`catalog_sql.row_digest`, inlined: a call per row was a fifth of the parse),
    as the 32 bytes themselves (half the memory of the hex text, which is made for all
    of them at once in :func:`snapshot_from_rows`)."""
    attrs = json.loads("[" + ",".join(row[3] for row in chunk) + "]")
    sha256 = hashlib.sha256
    return [
        (
            kind,
            key,
            owner,
            parsed,
            sha256(f"{kind}\x1f{key}\x1f{text}".encode()).digest() if owner is None else None,
        )
        for (kind, key, owner, text), parsed in zip(chunk, attrs, strict=True)
    ]


def _read_streams(
    streams: list[tuple[Any, str, bool]], params: dict[str, Any]
) -> tuple[list[Row], list[DependencyRow] | None]:
    """Read every ``(connection, sql, dependencies)`` stream and parse the rows; a stream
    with ``dependencies`` then reads the dependency rows on its connection.

    One stream is read in this thread. Several are read by one thread each while this
    thread parses the chunks they queue, so the servers keep producing meanwhile.
    """
    rows: list[Row] = []
    depends: list[DependencyRow] | None = None
    if len(streams) == 1:
        raw, sql, with_dependencies = streams[0]
        for chunk in _chunks(raw, sql, params):
            rows.extend(_parse(chunk))
        return rows, (_dependency_rows(raw, params) if with_dependencies else None)
    out: queue.Queue[Any] = queue.Queue(maxsize=4)
    threads = [
        threading.Thread(target=_stream, args=(raw, sql, params, out, deps), daemon=True)
        for raw, sql, deps in streams
    ]
    for thread in threads:
        thread.start()
    error: BaseException | None = None
    running = len(threads)
    while running:  # always drain, so that no thread stays blocked on a full queue
        item = out.get()
        if item is _DONE:
            running -= 1
        elif isinstance(item, BaseException):
            error = error or item
        elif isinstance(item, _Dependencies):
            depends = item
        elif error is None:
            rows.extend(_parse(item))
    for thread in threads:
        thread.join()
    if error is not None:
        raise error
    return rows, depends


def _dependency_rows(raw: Any, params: dict[str, Any]) -> list[DependencyRow]:
    """Run ``DEPENDENCIES_SQL`` on ``raw`` (a DB-API connection whose transaction pinned
    ``search_path``), with merge joins off for that statement (see the query's notes).

    Read a chunk at a time, each kind's name kept once (a fifth of the rows' memory: at
    5,000 tables they are ~90,000 rows, the snapshot's peak memory comes with them).
    """
    names: dict[str, str] = {}
    share = names.setdefault
    rows: list[DependencyRow] = []
    with raw.cursor() as cur:
        cur.execute("SELECT set_config('enable_mergejoin', 'off', true)")
        cur.execute(DEPENDENCIES_SQL, params)
        while chunk := cur.fetchmany(_CHUNK_ROWS):
            rows.extend([(share(a, a), b, share(c, c), d) for a, b, c, d in chunk])
        cur.execute("SET LOCAL enable_mergejoin TO DEFAULT")
    return rows


def read_dependencies(
    conn: Connection, *, schema: str, patterns: list[str], label: str | None = None
) -> list[tuple[str, str, str, str]]:
    """The catalog's dependencies between the schema's objects (``DEPENDENCIES_SQL``).

    Run it in the transaction that read the snapshot's rows (after :func:`fetch_rows`,
    which pinned ``search_path``), so both describe the same catalog. Rows are
    ``(kind, key, ref_kind, ref_key)``, every object of the schema included (excluded
    ones too: :func:`compared_dependencies` keeps those of the compared objects).
    """
    raw = conn.connection.dbapi_connection
    assert raw is not None
    params = {"schema": schema, "excl": compile_patterns(patterns), "privileges": False}
    try:
        return _dependency_rows(raw, params)
    except psycopg2.Error as exc:
        raise explain_error(exc, label=label or "database", url=conn.engine.url) from None


def compared_dependencies(
    rows: Iterable[tuple[str, str, str, str]], objects: dict[str, dict[str, Any]]
) -> tuple[tuple[str, str, str, str], ...]:
    """The dependency rows whose object is compared, and whose referenced object is
    compared too or ``outside`` (a column's default counts as its column), sorted and
    without repeats (the query may return a row more than once)."""
    empty: dict[str, Any] = {}
    keys = dict(objects)
    keys["column_default"] = objects.get("column", empty)
    keys["outside"] = _ANY_KEY
    kept = list({
        (kind, key, ref_kind, ref_key)
        for kind, key, ref_kind, ref_key in rows
        if key in keys.get(kind, empty) and ref_key in keys.get(ref_kind, empty)
    })
    kept.sort()  # in place, by the tuples: a key per row would cost ~7 MiB at 5,000 tables
    return tuple(kept)


class _AnyKey:
    """A container that holds every key (the ``outside`` rows' references)."""

    def __contains__(self, _key: object) -> bool:
        return True


_ANY_KEY = _AnyKey()


def snapshot_from_rows(
    rows: Iterable[tuple[Any, ...]],
    *,
    schema: str,
    source: str | None = None,
    server_version: str | None = None,
    dependencies: Iterable[tuple[str, str, str, str]] | None = None,
) -> Snapshot:
    """Assemble a snapshot from catalog rows; excluded rows are grouped by their owner.

    Rows are ``(kind, key, owner, attrs, digest)``; the probe fingerprint is combined
    from the digests of the compared rows, as :func:`catalog_sql.probe_hash` does.
    ``dependencies`` (rows of :func:`read_dependencies`) are kept for the compared
    objects.
    """
    objects: dict[str, dict[str, Any]] = defaultdict(dict)
    excluded_rows: dict[str, list[tuple[str, str, Any]]] = defaultdict(list)
    digests: dict[str, dict[str, bytes]] = defaultdict(dict)
    with _gc_paused():
        for kind, key, owner, attrs, digest in rows:
            if owner is None:
                objects[kind][key] = attrs
                digests[kind][key] = digest
            else:
                excluded_rows[owner].append((kind, key, attrs))
        excluded = {
            owner: sha256_text(canonical_json(sorted(items, key=lambda r: (r[0], r[1]))))
            for owner, items in excluded_rows.items()
        }
        probe_fingerprint = _probe_hash(digests)
        del digests
        compared = (
            None if dependencies is None else compared_dependencies(dependencies, objects)
        )
    return Snapshot(
        schema=schema,
        objects=dict(objects),
        excluded=excluded,
        source=source,
        server_version=server_version,
        probe_fingerprint=probe_fingerprint,
        dependencies=compared,
    )


def _probe_hash(digests: Mapping[str, Mapping[str, bytes]]) -> str:
    """:func:`catalog_sql.probe_hash` of the rows' digests (bytes), by kind then key.

    Sorting the kinds, then each kind's keys, as plain strings is the order of the
    ``(kind, key, digest)`` tuples (keys are unique within a kind) at a fraction of the
    cost; the hex digests joined by ``\x1e`` are the hex of the joined bytes with a
    separator every 32 bytes, made in one call.
    """
    joined = b"".join(
        by_key[key] for kind in sorted(digests) for by_key in (digests[kind],)
        for key in sorted(by_key)
    )
    return sha256_text(joined.hex("\x1e", 32))


def snapshot_connection(
    conn: Connection,
    *,
    schema: str = DEFAULT_SCHEMA,
    exclude: Iterable[str] = (),
    version_table: str = "alembic_version",
    source: str | None = None,
    require_tables: bool = True,
    privileges: bool = False,
    dependencies: bool = False,
) -> Snapshot:
    """Snapshot ``schema`` through an open connection (in its own read-only transaction).

    ``exclude`` holds names or globs of tables, views, sequences and types to leave out
    of the comparison (their columns, constraints, indexes and owned sequences follow).
    With ``require_tables`` an empty schema is an error (a source with no tables is
    almost always the wrong database). ``privileges`` adds the ``privilege`` kind (the
    GRANTs on tables, sequences and functions; config ``compare_privileges``), off by
    default because roles differ between environments. ``dependencies`` also reads the
    dependencies between the objects (:attr:`Snapshot.dependencies`, what the DDL and the
    baseline are ordered by), in the same transaction.
    """
    patterns = exclusion_patterns(exclude, version_table)
    label = source or "database"
    if conn.in_transaction():
        conn.commit()
    with conn.begin():
        conn.exec_driver_sql("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        version = conn.exec_driver_sql("SHOW server_version").scalar()
        rows, depends = _fetch(
            conn,
            schema=schema,
            patterns=patterns,
            label=label,
            parallel=True,
            privileges=privileges,
            dependencies=dependencies,
        )
    snapshot = snapshot_from_rows(
        rows,
        schema=schema,
        source=source,
        server_version=str(version).split()[0],
        dependencies=depends,
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
    privileges: bool = False,
    dependencies: bool = True,
) -> Snapshot:
    """Connect to ``url`` and snapshot ``schema`` (see :func:`snapshot_connection`).

    Unlike :func:`snapshot_connection`, it reads the dependencies between the objects by
    default: it is how the source of a reset is read, and the baseline is ordered by them.
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
                privileges=privileges,
                dependencies=dependencies,
            )
    finally:
        engine.dispose()
