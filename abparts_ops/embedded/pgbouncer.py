"""A real PgBouncer in front of a local PostgreSQL server, for the tests and benchmarks.

What users run in front of many environments (Debian's ``pgbouncer`` package), started
here the way a user would configure it for the drift sensor: one pool per database (the
``*`` fallback entry: a client's database name is the server's), ``pool_mode``
transaction by default, SCRAM authentication with the role's SCRAM *secret* in the auth
file (never the password: PgBouncer logs into the server with the client's own SCRAM
keys) and a ``server_idle_timeout`` longer than the sensor's interval, so each database
keeps a warm server connection from one tick to the next.

The process is started by :func:`run_pgbouncer` and stopped (by its own pid) when the
context ends. As root it runs as the unprivileged ``postgres`` OS user (PgBouncer
refuses to run as root), like the embedded server.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import sqlalchemy as sa

from abparts_ops.core.db import connect_dbapi, parse_url
from abparts_ops.core.errors import EmbeddedServerError

_SEARCH = ("/usr/sbin/pgbouncer", "/usr/bin/pgbouncer", "/usr/local/bin/pgbouncer")


def find_pgbouncer() -> str | None:
    """The ``pgbouncer`` executable (``PATH``, then the usual Debian places), or None."""
    found = shutil.which("pgbouncer")
    if found:
        return found
    return next((path for path in _SEARCH if os.access(path, os.X_OK)), None)


@dataclass(frozen=True)
class PgBouncerInfo:
    """A running PgBouncer: where it listens and how to reach a database through it."""

    host: str
    port: int
    log_path: Path
    pid: int
    _user: str = field(repr=False)
    _password: str = field(repr=False)

    def url(self, database: str) -> str:
        """A URL for ``database`` through PgBouncer (the same role and password)."""
        return (
            f"postgresql://{quote(self._user, safe='')}:{quote(self._password, safe='')}"
            f"@{self.host}:{self.port}/{quote(database, safe='')}"
        )


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _scram_secret(server_url: sa.URL) -> str:
    """The SCRAM secret of the URL's role (read from ``pg_authid``: needs a superuser)."""
    connection = connect_dbapi(server_url, label="pgbouncer setup")
    try:
        with connection.cursor() as cur:
            cur.execute("SELECT rolpassword FROM pg_authid WHERE rolname = current_user")
            row = cur.fetchone()
    finally:
        connection.close()
    secret = row[0] if row else None
    if not secret or not str(secret).startswith("SCRAM-SHA-256$"):
        raise EmbeddedServerError(
            "pgbouncer: the server role has no SCRAM secret (set password_encryption to "
            "scram-sha-256 and set the role's password again)."
        )
    return str(secret)


def _quote_conf(value: str) -> str:
    return '"' + value.replace('"', '""') + '"'


@contextlib.contextmanager
def run_pgbouncer(
    server_url: str | sa.URL,
    workdir: Path | None = None,
    *,
    pool_mode: str = "transaction",
    pool_size: int = 2,
    max_client_conn: int = 2000,
    server_idle_timeout_s: int = 600,
) -> Iterator[PgBouncerInfo]:
    """Run PgBouncer in front of the server of ``server_url`` until the context ends.

    ``server_url`` names a superuser of that server (its SCRAM secret goes to the auth
    file, mode 0600). ``workdir`` holds the configuration, auth file and log (default: a
    private temporary folder, removed at the end; as root, PgBouncer's user must be able
    to reach it).
    ``pool_size`` is the pool of each database (``default_pool_size``). Raises
    :class:`~abparts_ops.core.errors.EmbeddedServerError` when ``pgbouncer`` is not
    installed or does not start.
    """
    binary = find_pgbouncer()
    if binary is None:
        raise EmbeddedServerError(
            "pgbouncer is not installed (Debian: apt-get install pgbouncer)."
        )
    parsed = parse_url(server_url, label="pgbouncer setup")
    if not parsed.username or parsed.password is None:
        raise EmbeddedServerError("pgbouncer: the server URL must name a user and password.")
    with contextlib.ExitStack() as stack:
        if workdir is None:
            workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="pgbouncer_")))
        yield from _run(binary, parsed, Path(workdir).resolve(), pool_mode, pool_size,
                        max_client_conn, server_idle_timeout_s)


def _run(
    binary: str,
    parsed: sa.URL,
    workdir: Path,
    pool_mode: str,
    pool_size: int,
    max_client_conn: int,
    server_idle_timeout_s: int,
) -> Iterator[PgBouncerInfo]:
    assert parsed.username and parsed.password is not None
    workdir.mkdir(parents=True, exist_ok=True)
    auth_file, config, log_path = (
        workdir / "userlist.txt", workdir / "pgbouncer.ini", workdir / "pgbouncer.log",
    )
    auth_file.touch(mode=0o600)
    auth_file.chmod(0o600)
    auth_file.write_text(
        f"{_quote_conf(parsed.username)} {_quote_conf(_scram_secret(parsed))}\n",
        encoding="utf-8",
    )
    port = _free_port()
    config.write_text(
        "\n".join(
            [
                "[databases]",
                f"* = host={parsed.host or '127.0.0.1'} port={parsed.port or 5432}",
                "[pgbouncer]",
                "listen_addr = 127.0.0.1",
                f"listen_port = {port}",
                "unix_socket_dir =",
                "auth_type = scram-sha-256",
                f"auth_file = {auth_file}",
                f"pool_mode = {pool_mode}",
                f"default_pool_size = {pool_size}",
                f"max_client_conn = {max_client_conn}",
                f"server_idle_timeout = {server_idle_timeout_s}",
                f"logfile = {log_path}",
                "log_connections = 0",
                "log_disconnections = 0",
                "log_stats = 0",
                "",
            ]
        ),
        encoding="utf-8",
    )
    args = [binary, str(config)]
    if os.geteuid() == 0:
        try:
            entry = pwd.getpwnam("postgres")
        except KeyError as exc:
            raise EmbeddedServerError(
                "pgbouncer refuses to run as root: create an unprivileged 'postgres' OS "
                "user (useradd postgres) and retry."
            ) from exc
        for path in (workdir, auth_file, config):
            os.chown(path, entry.pw_uid, entry.pw_gid)
        log_path.touch()
        os.chown(log_path, entry.pw_uid, entry.pw_gid)
        args = [binary, "-u", "postgres", str(config)]
    # stderr to a file: PgBouncer logs there too, and a pipe nobody reads would block it
    stderr_path = workdir / "pgbouncer.stderr"
    with stderr_path.open("w", encoding="utf-8") as stderr:
        process = subprocess.Popen(
            args, cwd=str(workdir), stdout=subprocess.DEVNULL, stderr=stderr
        )
    try:
        deadline = time.monotonic() + 10
        while True:
            if process.poll() is not None:
                said = stderr_path.read_text(encoding="utf-8", errors="replace").strip()
                raise EmbeddedServerError(
                    f"pgbouncer exited at start ({process.returncode}): {said[-500:]} "
                    f"(log: {log_path})"
                )
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
                sock.settimeout(0.2)
                if sock.connect_ex(("127.0.0.1", port)) == 0:
                    break
            if time.monotonic() > deadline:
                raise EmbeddedServerError(f"pgbouncer did not listen within 10 s (log: {log_path})")
            time.sleep(0.05)
        yield PgBouncerInfo(
            "127.0.0.1", port, log_path, process.pid, parsed.username, parsed.password
        )
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)
