"""Connections to the environments' databases, with bounded timeouts and safe errors.

Every connection goes through :func:`connect`, which turns the driver's errors into one
:class:`~abparts_ops.core.errors.DatabaseError` line naming the environment and the fix,
with the password removed. Engines use ``NullPool``: a sensor that probes hundreds of
environments must not keep a connection open to each of them between ticks.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote, quote_plus, unquote, unquote_plus

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError
from sqlalchemy.pool import NullPool

from abparts_ops.core.errors import DatabaseError
from abparts_ops.core.quoting import quote_always

DEFAULT_CONNECT_TIMEOUT = 5


#: Connection parameters whose value is a secret (or points at one): masked everywhere.
SECRET_PARAMS = ("password", "passfile", "sslpassword", "sslkey")
#: Drivers whose URLs mean exactly what they mean to psycopg2 (all are libpq underneath).
_LIBPQ_DRIVERS = {"psycopg2": "psycopg2", "psycopg": "psycopg2"}
_MASK = "***"
_SECRET_KEYS = "|".join(SECRET_PARAMS)
# scheme://userinfo@...: the userinfo runs to the last '@' before the query, so an
# unencoded '@' in a password is masked whole.
_URL_RE = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.\-]*://)(?P<rest>[^\s'\"<>]*)")
_QUERY_SECRET_RE = re.compile(rf"(?i)([?&;](?:{_SECRET_KEYS})=)[^&\s'\"#]*")
# key=value (libpq DSN) form, quoted or not; an already masked value is left alone.
_DSN_SECRET_RE = re.compile(
    rf"(?i)\b({_SECRET_KEYS})(\s*=\s*)(?!\*\*\*(?:[&\s'\"]|$))('(?:[^'\\]|\\.)*'|[^\s'\"]+)"
)


def _mask_url_match(match: re.Match[str]) -> str:
    scheme, rest = match.group("scheme"), match.group("rest")
    head, sep, query = rest.partition("?")
    if "@" in head:
        userinfo, _, hostpart = head.rpartition("@")
        user, colon, _password = userinfo.partition(":")
        head = f"{user}:{_MASK}@{hostpart}" if colon else f"{userinfo}@{hostpart}"
    if sep:
        query = _QUERY_SECRET_RE.sub(lambda m: m.group(1) + _MASK, "?" + query)[1:]
    return scheme + head + sep + query


def redact_text(text: str) -> str:
    """``text`` with every secret a connection string can carry replaced by ``***``.

    Knows no URL in particular: masks the password of any ``scheme://user:password@``
    (up to the last ``@``, so an unencoded ``@`` in a password is masked whole), the
    :data:`SECRET_PARAMS` of a URL's query string, and ``password=...`` style pairs of
    a libpq key=value DSN, quoted or not. :func:`scrub` adds the values of one known URL.
    """
    text = _URL_RE.sub(_mask_url_match, str(text))
    return _DSN_SECRET_RE.sub(lambda m: m.group(1) + m.group(2) + _MASK, text)


def _encodings(value: str) -> set[str]:
    """``value`` as typed, percent-decoded and percent-encoded (each way a text may hold it)."""
    forms = {value, unquote(value), unquote_plus(value)}
    for form in list(forms):
        forms.update({quote(form, safe=""), quote_plus(form, safe="")})
    return {form for form in forms if form}


def secrets_of(url: str | sa.URL | None) -> set[str]:
    """Every secret value ``url`` carries, in each encoding a message could show it in.

    The password (as SQLAlchemy parses it, and as written up to the last ``@``), the
    :data:`SECRET_PARAMS` of the query or of a key=value DSN, and, when the URL carries
    no password at all, the user name (it may be a password typed into the user field).
    """
    if url is None:
        return set()
    if isinstance(url, sa.URL):
        rendered = url.render_as_string(hide_password=False)
        found = {str(url.password)} if url.password else set()
        query = dict(url.query)
    else:
        rendered, found, query = str(url), set(), {}
        try:
            parsed = make_url(rendered)
        except (ArgumentError, ValueError, TypeError):
            parsed = None
        if parsed is not None:
            if parsed.password:
                found.add(str(parsed.password))
            query = dict(parsed.query)
    for key, value in query.items():
        if key.lower() in SECRET_PARAMS:
            found.update([value] if isinstance(value, str) else list(value))
    match = _URL_RE.search(rendered)
    user = ""
    if match:
        head = match.group("rest").partition("?")[0]
        if "@" in head:
            userinfo = head.rpartition("@")[0]
            user, colon, password = userinfo.partition(":")
            if colon and password:
                found.add(password)
        for query_match in re.finditer(
            rf"(?i)[?&;](?:{_SECRET_KEYS})=([^&\s#]*)", match.group("rest")
        ):
            found.add(query_match.group(1))
    for dsn_match in _DSN_SECRET_RE.finditer(rendered if not match else ""):
        found.add(dsn_match.group(3).strip("'"))
    if not found and user:
        found.add(user)
    # An unencoded ':' or '@' moves the boundary between user, password and host: the
    # pieces of a secret on either side of one are secrets too.
    found |= {
        piece for value in list(found) for piece in re.split(r"[:@/?#\s]", str(value))
        if len(piece) >= 4
    }
    return {form for value in found if value for form in _encodings(str(value))}


def redact_url(url: str | sa.URL) -> str:
    """Render ``url`` with every secret replaced by ``***`` (safe for logs and errors).

    The password, the secret query parameters and, for a URL without any password, the
    user name (see :func:`secrets_of`) are masked; an unparseable URL is never echoed.
    """
    try:
        parsed = url if isinstance(url, sa.URL) else make_url(url)
        rendered = parsed.render_as_string(hide_password=True)
    except (ArgumentError, ValueError, TypeError):
        return "<unparseable database URL>"
    return scrub(rendered, url)


def scrub(text: str, url: str | sa.URL | None) -> str:
    """Remove every secret from ``text``: those of ``url`` and any in connection-string form.

    The one routine every message about a connection goes through (see
    :func:`redact_text` and :func:`secrets_of`).
    """
    text = redact_text(str(text))
    for secret in sorted(secrets_of(url), key=len, reverse=True):
        if len(secret) >= 4:
            text = text.replace(secret, _MASK)
        else:
            text = re.sub(rf"(?<![\w]){re.escape(secret)}(?![\w])", _MASK, text)
    return text


def parse_url(
    url: str | sa.URL, *, label: str = "database", variable: str | None = None
) -> sa.URL:
    """``url`` as a PostgreSQL + psycopg2 URL, or one error naming ``label`` and the fix.

    The single entry point for every URL the project uses. ``variable`` (the environment
    variable the URL came from) is named in the error; the URL's value never is. A
    non-numeric port, an unencoded ``@`` in the user or password, a key=value DSN and a
    driver other than libpq's are refused in one line. ``+psycopg`` (psycopg 3) is read
    as psycopg2: both hand the URL to libpq, so it means the same.
    """
    where = f"{label}: the database URL" + (f" in {variable}" if variable else "")
    fix = (
        f"set {variable} to" if variable else "use"
    ) + " postgresql://user:password@host:5432/dbname, percent-encoding special characters"
    if isinstance(url, sa.URL):
        parsed = url
    else:
        text = str(url).strip()
        if "://" not in text and "=" in text:
            raise DatabaseError(
                f"{where} is a key=value connection string, not a URL ({fix})."
            ) from None
        try:
            parsed = make_url(text)
        except ArgumentError:
            raise DatabaseError(f"{where} is not valid ({fix}).") from None
        except ValueError:
            raise DatabaseError(
                f"{where} has a port that is not a number ({fix})."
            ) from None
        match = _URL_RE.search(text)
        head = match.group("rest").partition("?")[0].partition("/")[0] if match else ""
        if head.count("@") > 1 or (parsed.host and "@" in parsed.host):
            raise DatabaseError(
                f"{where} has an unencoded '@' in its user or password (write it as %40; "
                f"{fix})."
            ) from None
    if parsed.get_backend_name() == "postgres":  # libpq's other spelling of the scheme
        suffix = parsed.drivername.partition("+")[2]
        parsed = parsed.set(drivername="postgresql" + (f"+{suffix}" if suffix else ""))
    if parsed.get_backend_name() != "postgresql":
        raise DatabaseError(
            f"{where} is a {parsed.get_backend_name()!r} URL: only PostgreSQL is supported "
            f"({fix})."
        )
    driver = parsed.get_driver_name() if "+" in parsed.drivername else "psycopg2"
    if driver not in _LIBPQ_DRIVERS:
        raise DatabaseError(
            f"{where} names the driver {driver!r}, which abparts_ops does not use: write "
            "postgresql:// (or postgresql+psycopg2://) instead; the URL is otherwise the same."
        )
    return parsed.set(drivername=f"postgresql+{_LIBPQ_DRIVERS[driver]}")


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


def create_database(
    admin_url: str | sa.URL, name: str, *, template: str | None = None, label: str = "server"
) -> str:
    """Create database ``name`` (optionally from ``template``) and return its URL.

    ``admin_url`` is any database on the server, used only to issue CREATE DATABASE.
    """
    engine = make_engine(admin_url, label=label)
    sql = f"CREATE DATABASE {quote_always(name)}"
    if template:
        sql += f" TEMPLATE {quote_always(template)}"
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
                f"DROP DATABASE IF EXISTS {quote_always(name)} WITH (FORCE)"
            )
    finally:
        engine.dispose()
