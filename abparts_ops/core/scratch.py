"""Throwaway ("scratch") databases for proving a history or a baseline.

:func:`scratch_database` creates a uniquely named database, yields its URL and always
drops it afterwards (also on an exception or Ctrl-C). Its name records when and by which
process it was made, ``{prefix}_{yyyymmddhhmmss}_{pid}_{random}`` (UTC), and the
database's comment records the host, so the next run can remove what a killed run left
behind (:func:`cleanup_leftovers`):

- a leftover older than ``max_age_hours`` is dropped, wherever it came from;
- a younger one is dropped only when its comment names *this* host and its pid is no
  longer alive here (a pid of another machine sharing the server says nothing here).

Only names matching the exact pattern are considered; anything else is left alone.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import secrets
import socket
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError

from abparts_ops.core.db import (
    connect,
    drop_database,
    explain_error,
    make_engine,
    redact_url,
    scrub,
    with_database,
)
from abparts_ops.core.errors import AbpartsOpsError, DatabaseError, MigrationError
from abparts_ops.core.quoting import quote_always

log = logging.getLogger(__name__)

DEFAULT_PREFIX = "abparts_scratch"
DEFAULT_MAX_AGE_HOURS = 6.0
LABEL = "scratch server"
_STAMP_FORMAT = "%Y%m%d%H%M%S"
_TOKEN_HEX = 8
_PREFIX_RE = re.compile(r"^[a-z][a-z0-9_]{0,30}$")
_COMMENT_RE = re.compile(r"abparts_ops scratch database; host=(?P<host>[^;]*); pid=(?P<pid>\d+)")
_INSUFFICIENT_PRIVILEGE = "42501"


def _check_prefix(prefix: str) -> None:
    if not _PREFIX_RE.match(prefix):
        raise MigrationError(
            f"scratch database prefix {prefix!r} is not valid (use 1-31 lowercase letters, "
            "digits and underscores, starting with a letter)."
        )


def scratch_name(
    prefix: str = DEFAULT_PREFIX,
    *,
    now: datetime | None = None,
    pid: int | None = None,
    token: str | None = None,
) -> str:
    """A scratch database name: ``{prefix}_{yyyymmddhhmmss}_{pid}_{random}`` (UTC time)."""
    _check_prefix(prefix)
    when = (now or datetime.now(UTC)).astimezone(UTC)
    token = token or secrets.token_hex(_TOKEN_HEX // 2)
    return (
        f"{prefix}_{when.strftime(_STAMP_FORMAT)}_{pid if pid is not None else os.getpid()}_{token}"
    )


def parse_scratch_name(name: str, prefix: str = DEFAULT_PREFIX) -> tuple[datetime, int] | None:
    """``(created_at UTC, pid)`` when ``name`` matches the exact scratch pattern, else None."""
    pattern = rf"^{re.escape(prefix)}_(\d{{14}})_(\d{{1,10}})_([0-9a-f]{{{_TOKEN_HEX}}})$"
    match = re.match(pattern, name)
    if not match:
        return None
    try:
        created = datetime.strptime(match.group(1), _STAMP_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        return None
    return created, int(match.group(2))


def pid_alive(pid: int) -> bool:
    """Whether a process with ``pid`` exists on this host (True when unsure)."""
    if pid <= 0:
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # e.g. PermissionError: it exists but belongs to someone else
    return True


def _comment(pid: int) -> str:
    return f"abparts_ops scratch database; host={socket.gethostname()}; pid={pid}"


def _engine(server_url: str) -> sa.Engine:
    return make_engine(server_url, label=LABEL)


def cleanup_leftovers(
    server_url: str,
    *,
    prefix: str = DEFAULT_PREFIX,
    max_age_hours: float = DEFAULT_MAX_AGE_HOURS,
    now: datetime | None = None,
) -> list[str]:
    """Drop scratch databases left behind by killed runs; return the names dropped.

    See the module docstring for the rules. A leftover this role may not drop (another
    role owns it) is logged and skipped.
    """
    _check_prefix(prefix)
    now = (now or datetime.now(UTC)).astimezone(UTC)
    host = socket.gethostname()
    like = prefix.replace("\\", "\\\\").replace("_", "\\_").replace("%", "\\%") + "\\_%"
    engine = _engine(server_url)
    try:
        with connect(engine, label=LABEL) as conn:
            rows = conn.execute(
                sa.text(
                    "SELECT datname, shobj_description(oid, 'pg_database') "
                    "FROM pg_database WHERE datname LIKE :like"
                ),
                {"like": like},
            ).all()
    finally:
        engine.dispose()
    dropped: list[str] = []
    for name, comment in rows:
        parsed = parse_scratch_name(name, prefix)
        if parsed is None:
            continue
        created, pid = parsed
        old = now - created > timedelta(hours=max_age_hours)
        mark = _COMMENT_RE.search(comment or "")
        dead_here = bool(mark and mark.group("host") == host and not pid_alive(pid))
        if not (old or dead_here):
            continue
        try:
            drop_database(server_url, name, label=LABEL)
        except DatabaseError as exc:
            log.warning("could not drop leftover scratch database %s: %s", name, exc)
            continue
        log.info(
            "dropped leftover scratch database %s (%s)",
            name,
            f"older than {max_age_hours} h" if old else f"pid {pid} is gone",
        )
        dropped.append(name)
    return dropped


def _create(server_url: str, name: str) -> None:
    engine = _engine(server_url)
    try:
        with connect(engine, label=LABEL) as conn:
            auto = conn.execution_options(isolation_level="AUTOCOMMIT")
            try:
                auto.exec_driver_sql(f"CREATE DATABASE {quote_always(name)}")
            except DBAPIError as exc:
                code = getattr(exc.orig, "pgcode", None)
                first = (str(exc.orig or exc).strip().splitlines() or ["refused"])[0]
                if code == _INSUFFICIENT_PRIVILEGE or "permission denied" in first.lower():
                    try:
                        user = make_url(server_url).username
                    except ArgumentError:
                        user = None
                    raise DatabaseError(
                        scrub(
                            f"{LABEL} {redact_url(server_url)}: role {user!r} may not create "
                            f"databases ({first}); grant CREATEDB to the role or point "
                            "scratch.url_env at a server where it may create databases.",
                            server_url,
                        )
                    ) from None
                raise explain_error(exc, label=LABEL, url=server_url) from None
            try:
                auto.exec_driver_sql(
                    f"COMMENT ON DATABASE {quote_always(name)} IS "
                    + "'"
                    + _comment(os.getpid()).replace("'", "''")
                    + "'"
                )
            except DBAPIError as exc:  # only the pid rule of the cleanup is lost
                log.warning("could not comment scratch database %s: %s", name, exc.orig)
    finally:
        engine.dispose()


def _drop(server_url: str, name: str, *, quiet: bool) -> None:
    try:
        drop_database(server_url, name, label=LABEL)
    except AbpartsOpsError as exc:
        if not quiet:
            raise
        log.warning("could not drop scratch database %s: %s", name, exc)


@contextlib.contextmanager
def scratch_database(
    server_url: str,
    *,
    prefix: str = DEFAULT_PREFIX,
    max_age_hours: float = DEFAULT_MAX_AGE_HOURS,
) -> Iterator[str]:
    """Create a throwaway database on the server of ``server_url``; yield its URL.

    ``server_url`` is any database on that server (used for CREATE/DROP DATABASE). Before
    creating, leftovers of killed runs are removed (:func:`cleanup_leftovers`). The
    database is always dropped afterwards, also on an exception or KeyboardInterrupt
    (a failure to drop it then is logged, not raised over the original error). A role
    without CREATEDB gets one DatabaseError line naming the server and the fix.
    """
    _check_prefix(prefix)
    cleanup_leftovers(server_url, prefix=prefix, max_age_hours=max_age_hours)
    name = scratch_name(prefix)
    try:
        _create(server_url, name)
    except AbpartsOpsError:
        raise  # refused before anything was created
    except BaseException:
        _drop(server_url, name, quiet=True)  # interrupted: it may exist
        raise
    try:
        yield with_database(server_url, name)
    except BaseException:
        _drop(server_url, name, quiet=True)
        raise
    _drop(server_url, name, quiet=False)
