"""Connections to the environments' databases, with bounded timeouts and safe errors.

Every connection goes through :func:`connect`, which turns the driver's errors into one
:class:`~abparts_ops.core.errors.DatabaseError` line naming the environment and the fix,
with the password removed. Engines use ``NullPool``: a sensor that probes hundreds of
environments must not keep a connection open to each of them between ticks.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError
from sqlalchemy.pool import NullPool

from abparts_ops.core.errors import DatabaseError

DEFAULT_CONNECT_TIMEOUT = 5


def redact_url(url: str | sa.URL) -> str:
    """Render ``url`` with its password replaced by ``***`` (safe for logs and errors)."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<unparseable database URL>"


def scrub(text: str, url: str | sa.URL | None) -> str:
    """Remove the password of ``url`` from ``text`` wherever it appears."""
    if url is None:
        return text
    try:
        password = make_url(url).password
    except ArgumentError:
        return text
    if password:
        text = text.replace(str(password), "***")
    return text


def parse_url(url: str | sa.URL, *, label: str = "database") -> sa.URL:
    """``url`` as a PostgreSQL + psycopg2 URL, or one error naming ``label`` and the fix."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise DatabaseError(
            f"{label}: the database URL is not valid (expected "
            "postgresql://user:password@host:port/dbname)."
        ) from exc
    if parsed.get_backend_name() != "postgresql":
        raise DatabaseError(
            f"{label}: only PostgreSQL is supported, got a {parsed.get_backend_name()!r} URL "
            f"({redact_url(parsed)})."
        )
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg2")
    return parsed


def _connect_args(connect_timeout: int, statement_timeout_ms: int | None) -> dict[str, object]:
    args: dict[str, object] = {
        "connect_timeout": connect_timeout,
        "application_name": "abparts_ops",
    }
    if statement_timeout_ms:
        args["options"] = f"-c statement_timeout={int(statement_timeout_ms)}"
    return args


def make_engine(
    url: str | sa.URL,
    *,
    label: str = "database",
    connect_timeout: int = DEFAULT_CONNECT_TIMEOUT,
    statement_timeout_ms: int | None = None,
) -> Engine:
    """Create an engine for ``url`` with a connect timeout and no connection pool.

    ``label`` names the environment in errors; ``statement_timeout_ms`` bounds every
    statement (used by sensors so one slow server cannot stall a tick).
    """
    parsed = parse_url(url, label=label)
    return sa.create_engine(
        parsed,
        poolclass=NullPool,
        connect_args=_connect_args(connect_timeout, statement_timeout_ms),
    )


def connect_dbapi(
    url: str | sa.URL,
    *,
    label: str = "database",
    connect_timeout: int = DEFAULT_CONNECT_TIMEOUT,
    statement_timeout_ms: int | None = None,
) -> Any:
    """One plain psycopg2 connection (autocommit) for a caller that runs its own SQL.

    For the drift probe, which opens a connection, runs one or two statements and
    closes it, hundreds of times a tick: an engine's first connection also runs
    SQLAlchemy's dialect initialisation (server version, current schema, hstore and
    isolation checks), a few round trips and some server work on every probe. The
    connect arguments come from the dialect's own ``create_connect_args``, so the URL
    means exactly what it means to :func:`make_engine`. Close it when done; errors are
    :class:`~abparts_ops.core.errors.DatabaseError` lines naming ``label``.
    """
    parsed = parse_url(url, label=label)
    dialect_class = parsed.get_dialect()
    dbapi = dialect_class.import_dbapi()
    cargs, cparams = dialect_class(dbapi=dbapi).create_connect_args(parsed)
    cparams.update(_connect_args(connect_timeout, statement_timeout_ms))
    try:
        connection = dbapi.connect(*cargs, **cparams)
    except dbapi.Error as exc:
        raise explain_error(exc, label=label, url=parsed) from None
    connection.autocommit = True
    return connection


def explain_error(exc: BaseException, *, label: str, url: str | sa.URL | None) -> DatabaseError:
    """Turn a driver error into one safe line naming ``label`` and what to fix."""
    raw = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    first = raw[0] if raw else exc.__class__.__name__
    where = redact_url(url) if url is not None else label
    lowered = " ".join(raw).lower()
    if "password authentication failed" in lowered:
        hint = "check the user and password in this environment's URL variable"
    elif "does not exist" in lowered and "database" in lowered:
        hint = "create the database or fix the database name in the URL"
    elif (
        "timeout expired" in lowered
        or "could not connect" in lowered
        or ("connection refused" in lowered)
    ):
        hint = "check that the server is running and the host/port in the URL"
    elif "no password supplied" in lowered:
        hint = "add the password to this environment's URL variable"
    elif "permission denied" in lowered:
        hint = "grant this role the privileges listed in README (Least privileges)"
    else:
        hint = "see the database error above"
    message = f"{label}: cannot use {where}: {first} ({hint})."
    return DatabaseError(scrub(message, url))


@contextlib.contextmanager
def connect(engine: Engine, *, label: str = "database") -> Iterator[Connection]:
    """Open a connection from ``engine``; driver errors become one safe DatabaseError."""
    try:
        with engine.connect() as conn:
            yield conn
    except DBAPIError as exc:
        raise explain_error(exc, label=label, url=engine.url) from None


def with_database(url: str | sa.URL, database: str) -> str:
    """Return ``url`` pointing at another database on the same server (password kept)."""
    return make_url(url).set(database=database).render_as_string(hide_password=False)


def quote_ident(name: str) -> str:
    """Quote an identifier for SQL text (always quoted, embedded quotes doubled)."""
    return '"' + name.replace('"', '""') + '"'


def create_database(
    admin_url: str | sa.URL, name: str, *, template: str | None = None, label: str = "server"
) -> str:
    """Create database ``name`` (optionally from ``template``) and return its URL.

    ``admin_url`` is any database on the server, used only to issue CREATE DATABASE.
    """
    engine = make_engine(admin_url, label=label)
    sql = f"CREATE DATABASE {quote_ident(name)}"
    if template:
        sql += f" TEMPLATE {quote_ident(template)}"
    try:
        with connect(engine, label=label) as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql(sql)
    finally:
        engine.dispose()
    return with_database(admin_url, name)


def drop_database(admin_url: str | sa.URL, name: str, *, label: str = "server") -> None:
    """Drop database ``name`` if it exists, disconnecting its sessions first."""
    engine = make_engine(admin_url, label=label)
    try:
        with connect(engine, label=label) as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql(
                f"DROP DATABASE IF EXISTS {quote_ident(name)} WITH (FORCE)"
            )
    finally:
        engine.dispose()
