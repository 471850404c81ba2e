"""The cheap probe: one short visit that tells an environment's revision and schema hash.

The probe runs the snapshot's own catalog query on the server and returns only a sha256
of its rows (plus the version rows), so its fingerprint changes if and only if a full
snapshot would. Sensors call it for every environment on every tick; the expensive
snapshot and diff run only when a fingerprint moves.

With it comes a *catalog token* (see ``catalog_sql.CATALOG_TOKEN_SQL``): a hash of the
row versions of the catalogs the fingerprint is computed from. A caller that keeps the
token and fingerprint of its last probe passes them back as ``known``; the probe then
asks for the version rows and the token first and, when the token is unchanged, answers
with the known fingerprint without the objects query: one short statement instead of
about 70 ms of server work (deparsing every default, constraint and index). Only a
changed token runs the full query, which returns the new token and fingerprint from one
and the same catalog snapshot.

Every statement goes out as one message that carries its own settings (``SET LOCAL``
statement timeout, search path and ``jit``, then the query: one implicit transaction),
and the connection sends no ``options`` startup parameter. So nothing of the probe
outlives its transaction, and the probe works unchanged through a transaction- or
session-pooling PgBouncer, which refuses ``options`` and hands a server connection to
the next client after each transaction (README: "the drift sensor through PgBouncer").
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterable
from dataclasses import dataclass

import psycopg2
import sqlalchemy as sa

from abparts_ops.core.db import connect_dbapi, explain_error, parse_url
from abparts_ops.core.errors import DatabaseError, SchemaError
from abparts_ops.core.quoting import quote_always
from abparts_ops.core.schema.catalog_sql import PROBE_SQL, TOKEN_SQL
from abparts_ops.core.schema.exclusions import compile_patterns
from abparts_ops.core.schema.introspect import DEFAULT_SCHEMA, exclusion_patterns


@dataclass(frozen=True)
class KnownSchema:
    """A fingerprint held from an earlier probe, with the catalog token it was read at."""

    token: str
    fingerprint: str
    table_count: int


@dataclass(frozen=True)
class ProbeResult:
    """What one probe saw. ``revisions`` is None when there is no version table.

    ``token`` is the catalog token the fingerprint belongs to (pass it back through
    :class:`KnownSchema`); ``reused`` is True when the catalogs had not changed since
    ``known`` and its fingerprint was returned without recomputing it.
    """

    environment: str
    fingerprint: str
    revisions: tuple[str, ...] | None
    table_count: int
    elapsed_ms: float
    token: str | None = None
    reused: bool = False
    connect_ms: float = 0.0
    """Time to open the connection (TCP, authentication, the server's backend start)."""
    query_ms: float = 0.0
    """Time of the statements, from sending the first to reading the last answer."""

    def known(self) -> KnownSchema | None:
        """This result as the ``known`` argument of the next probe (None without a token)."""
        if self.token is None:
            return None
        return KnownSchema(self.token, self.fingerprint, self.table_count)


def query_key(params: dict[str, object]) -> str:
    """A short hash of the probe's query and parameters, the prefix of every token.

    A token only vouches for a fingerprint computed by the same query with the same
    schema, exclusions and version table; a new release or another configuration gives
    other keys, so older tokens never match.
    """
    text = json.dumps([_PROBE_SQL_HASH, sorted((k, str(v)) for k, v in params.items())])
    return hashlib.sha256(text.encode()).hexdigest()[:12]


_PROBE_SQL_HASH = hashlib.sha256(PROBE_SQL.encode()).hexdigest()


def probe(
    url: str | sa.URL,
    *,
    environment: str,
    schema: str = DEFAULT_SCHEMA,
    exclude: Iterable[str] = (),
    version_table: str = "alembic_version",
    version_table_schema: str | None = None,
    timeout_s: float = 10.0,
    known: KnownSchema | None = None,
    connect_timeout_s: float | None = None,
    privileges: bool = False,
) -> ProbeResult:
    """Probe one environment: its version rows and its schema fingerprint.

    One statement, the full catalog query. With ``known`` (from
    :meth:`ProbeResult.known` of an earlier probe of the same environment), a short
    statement reads the version rows and the catalog token first, and the full query
    runs only when the catalogs changed since; otherwise ``known``'s fingerprint is
    returned (``reused``). ``privileges`` includes the granted privileges (as the
    snapshot's ``privileges`` does; both must agree). ``timeout_s`` bounds the
    connection and each statement; ``connect_timeout_s``, when given, bounds the
    connection alone. The result's ``connect_ms`` and ``query_ms`` say where the time
    went. Errors are :class:`~abparts_ops.core.errors.AbpartsOpsError` lines naming
    ``environment``.
    """
    started = time.perf_counter()
    parsed = parse_url(url, label=environment)
    qualified = f"{quote_always(version_table_schema or schema)}.{quote_always(version_table)}"
    params = {
        "schema": schema,
        "excl": compile_patterns(exclusion_patterns(exclude, version_table)),
        "version_table": qualified,
        "privileges": privileges,
    }
    key = query_key(params)
    prefix = f"{key}:"
    known_token = (
        known.token[len(prefix) :] if known and known.token.startswith(prefix) else None
    )
    setup = session_setup(schema, timeout_s)
    reused = False
    connection = None
    connected = queried = started
    try:
        connection = connect_dbapi(
            parsed,
            label=environment,
            connect_timeout=max(1, round(connect_timeout_s or timeout_s)),
        )
        connected = time.perf_counter()
        with connection.cursor() as cur:
            if known_token is not None:
                cur.execute(setup + TOKEN_SQL, params)
                token, revisions, schema_exists = cur.fetchone()
                reused = token == known_token and bool(schema_exists)
            if reused:
                assert known is not None
                fingerprint, tables = known.fingerprint, known.table_count
            else:
                cur.execute(setup + PROBE_SQL, params)
                fingerprint, tables, revisions, schema_exists, token = cur.fetchone()
        queried = time.perf_counter()
    except psycopg2.errors.QueryCanceled:
        raise DatabaseError(
            f"{environment}: the probe did not finish within {timeout_s:g} s (check the "
            "server's load, or raise the probe timeout)."
        ) from None
    except psycopg2.Error as exc:
        raise explain_error(exc, label=environment, url=parsed) from None
    finally:
        if connection is not None:
            connection.close()
    if not schema_exists:
        raise SchemaError(
            f"{environment}: schema {schema!r} does not exist in this database (fix the "
            "`schema` setting or create it)."
        )
    return ProbeResult(
        environment=environment,
        fingerprint=str(fingerprint),
        revisions=None if revisions is None else tuple(revisions),
        table_count=int(tables or 0),
        elapsed_ms=(time.perf_counter() - started) * 1000,
        token=f"{prefix}{token}",
        reused=reused,
        connect_ms=(connected - started) * 1000,
        query_ms=(queried - connected) * 1000,
    )


def session_setup(schema: str, timeout_s: float) -> str:
    """The settings every probe statement starts with, local to its own transaction.

    ``SET LOCAL`` in a message of several statements lasts until the end of that message
    (one implicit transaction): the statement timeout (``timeout_s``), the search path
    the fingerprint's deparsed names are relative to (``schema``, then ``pg_catalog``)
    and ``jit`` off. Nothing is left on the server connection, which a pooler may hand
    to another client next.
    """
    return (
        f"SET LOCAL statement_timeout = {max(1, int(timeout_s * 1000))}; "
        f"SET LOCAL search_path TO {quote_always(schema)}, pg_catalog; SET LOCAL jit = off; "
    )
