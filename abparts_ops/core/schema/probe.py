"""The cheap probe: one round trip that tells an environment's revision and schema hash.

The probe runs the snapshot's own catalog query on the server and returns only a sha256
of its rows (plus the version rows), so its fingerprint changes if and only if a full
snapshot would. Sensors call it for every environment on every tick; the expensive
snapshot and diff run only when a fingerprint moves.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass

import psycopg2
import sqlalchemy as sa

from abparts_ops.core.db import connect, explain_error, make_engine, quote_ident
from abparts_ops.core.errors import DatabaseError, SchemaError
from abparts_ops.core.schema.catalog_sql import PROBE_SQL
from abparts_ops.core.schema.exclusions import compile_patterns
from abparts_ops.core.schema.introspect import DEFAULT_SCHEMA, exclusion_patterns


@dataclass(frozen=True)
class ProbeResult:
    """What one probe saw. ``revisions`` is None when there is no version table."""

    environment: str
    fingerprint: str
    revisions: tuple[str, ...] | None
    table_count: int
    elapsed_ms: float


def probe(
    url: str | sa.URL,
    *,
    environment: str,
    schema: str = DEFAULT_SCHEMA,
    exclude: Iterable[str] = (),
    version_table: str = "alembic_version",
    version_table_schema: str | None = None,
    timeout_s: float = 10.0,
) -> ProbeResult:
    """Probe one environment: its version rows and its schema fingerprint, in one query.

    ``timeout_s`` bounds both the connection and the statement. Errors are
    :class:`~abparts_ops.core.errors.AbpartsOpsError` lines naming ``environment``.
    """
    started = time.perf_counter()
    engine = make_engine(
        url,
        label=environment,
        connect_timeout=max(1, int(timeout_s)),
        statement_timeout_ms=int(timeout_s * 1000),
    )
    qualified = f"{quote_ident(version_table_schema or schema)}.{quote_ident(version_table)}"
    params = {
        "schema": schema,
        "excl": compile_patterns(exclusion_patterns(exclude, version_table)),
        "version_table": qualified,
    }
    try:
        with connect(engine, label=environment) as conn:
            raw = conn.connection.dbapi_connection
            assert raw is not None
            raw.autocommit = True
            with raw.cursor() as cur:
                cur.execute(
                    f"SET search_path TO {quote_ident(schema)}, pg_catalog; SET jit = off; "
                    + PROBE_SQL,
                    params,
                )
                fingerprint, tables, revisions, schema_exists = cur.fetchone()
    except psycopg2.errors.QueryCanceled:
        raise DatabaseError(
            f"{environment}: the probe did not finish within {timeout_s:g} s (check the "
            "server's load, or raise the probe timeout)."
        ) from None
    except psycopg2.Error as exc:  # raised by the raw cursor, not wrapped by SQLAlchemy
        raise explain_error(exc, label=environment, url=engine.url) from None
    finally:
        engine.dispose()
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
    )
