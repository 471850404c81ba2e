"""What the rehearsal copies: the environment with its rows when it fits, else its schema.

A copy with rows is what lets the rehearsal see what production will do: a ``CHECK`` or
``NOT NULL`` that existing rows violate, a cast that fails on a value, a ``DELETE`` and how
many rows it takes. It is ``pg_dump --format=custom`` of the environment streamed into
``pg_restore`` on the scratch server (no file on disk), when the environment's
``pg_database_size`` is at most :attr:`RehearsalCopy.max_bytes`; tables listed in
:attr:`RehearsalCopy.schema_only_tables` are copied without their rows. A larger
environment is copied schema only (``pg_dump --schema-only``, restored as SQL).

Both programs reach their database through a private libpq service file
(:func:`~abparts_ops.core.schema.dump.libpq_connection`), never a command line. The copy
of prod's rows lives only in the rehearsal's scratch database, which is dropped when the
rehearsal ends, failure or not: the scratch server must be as trusted as prod.
"""

from __future__ import annotations

import re
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from abparts_ops.core.db import connect, make_engine, redact_url, scrub
from abparts_ops.core.errors import DatabaseError
from abparts_ops.core.schema.dump import (
    PG_DUMP_TIMEOUT_SECONDS,
    find_pg_dump,
    libpq_connection,
    pg_dump_pattern,
    supports_restrict_key,
)

_META_COMMAND = re.compile(r"^\\")


@dataclass(frozen=True)
class RehearsalCopy:
    """How the rehearsal copies an environment (``upgrade.rehearsal`` in the configuration).

    ``max_bytes``: the largest ``pg_database_size`` copied with its rows (0: schema only,
    always); ``schema_only_tables``: names or globs copied without rows; ``timeout_s``:
    the longest the copy may take.
    """

    max_bytes: int = 1 << 30
    schema_only_tables: tuple[str, ...] = ()
    timeout_s: float = 1800.0


@dataclass(frozen=True)
class CopyReport:
    """What was copied: ``mode`` is ``"rows"`` or ``"schema"``; the environment's size;
    ``seconds`` the time spent dumping and restoring (every attempt's copy)."""

    mode: str
    database_bytes: int
    seconds: float
    schema_only_tables: tuple[str, ...] = ()

    def describe(self) -> str:
        """One phrase: "a copy with its rows (12.3 MB)" or "a schema-only copy (...)"."""
        size = f"{self.database_bytes / 1e6:.1f} MB"
        if self.mode == "rows":
            apart = (
                f"; {', '.join(self.schema_only_tables)} without rows"
                if self.schema_only_tables
                else ""
            )
            return f"a copy with its rows ({size}{apart})"
        return f"a schema-only copy ({size}, over the copy limit)"


def database_size(url: str, *, environment: str) -> int:
    """``pg_database_size`` of the environment's database, in bytes."""
    engine = make_engine(url, label=environment)
    try:
        with connect(engine, label=environment) as conn:
            return int(conn.exec_driver_sql("SELECT pg_database_size(current_database())")
                       .scalar() or 0)
    finally:
        engine.dispose()


def _pg_dump(server_version: str | None, environment: str) -> Path:
    found = find_pg_dump(server_version)
    if found is None:
        raise DatabaseError(
            f"{environment}: no pg_dump of the server's major version ({server_version}) is "
            "installed; the rehearsal needs one (install postgresql-client of that version)."
        )
    return found[0]


def _tools(server_version: str | None, environment: str) -> tuple[Path, Path]:
    pg_dump = _pg_dump(server_version, environment)
    pg_restore = pg_dump.with_name("pg_restore")
    if not pg_restore.is_file():
        raise DatabaseError(
            f"{environment}: no pg_restore beside {pg_dump}; the rehearsal's copy with rows "
            "needs one (install postgresql-client of the server's version)."
        )
    return pg_dump, pg_restore


def dump_environment(url: str, server_version: str | None, *, environment: str) -> str:
    """``pg_dump --schema-only --no-owner --no-privileges`` of the whole database at ``url``.

    The pg_dump must match the server's major version; the connection, password included,
    reaches it only through a private service file (see
    :func:`~abparts_ops.core.schema.dump.libpq_connection`), never its command line.
    Errors are one :class:`DatabaseError` line naming ``environment``.
    """
    executable = _pg_dump(server_version, environment)
    args = [str(executable), "--schema-only", "--no-owner", "--no-privileges", "--no-password"]
    if supports_restrict_key(executable):
        args.append("--restrict-key=abpartsopsrehearsal")
    try:  # the connection (password, sslpassword...) in a private service file, not argv
        with libpq_connection(url, label=environment) as (connection, env):
            result = subprocess.run(
                args + connection, capture_output=True, text=True, env=env,
                timeout=PG_DUMP_TIMEOUT_SECONDS,
            )
    except (OSError, subprocess.SubprocessError) as exc:
        raise DatabaseError(
            scrub(f"{environment}: pg_dump for the rehearsal failed: {exc}", url)
        ) from None
    if result.returncode != 0:
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        first = lines[0] if lines else f"exit status {result.returncode}"
        raise DatabaseError(
            scrub(
                f"{environment}: pg_dump of {redact_url(url)} for the rehearsal failed: "
                f"{first} (check the role's privileges).",
                url,
            )
        )
    return result.stdout


def restore_dump(url: str, dump: str, *, environment: str) -> None:
    """Run a schema-only dump's SQL on the (empty) database at ``url``.

    psql's meta-commands (``\\restrict``) are dropped; the rest is plain SQL.
    """
    sql = "\n".join(line for line in dump.splitlines() if not _META_COMMAND.match(line))
    engine = make_engine(url, label="rehearsal database")
    try:
        with connect(engine, label="rehearsal database") as conn:
            raw = conn.connection.dbapi_connection
            assert raw is not None
            raw.autocommit = True
            with raw.cursor() as cur:
                cur.execute(sql)
    except DatabaseError as exc:
        raise DatabaseError(
            f"{environment}: its schema-only dump does not restore on the scratch server: "
            f"{exc} (is the scratch server of the same major version, with the same "
            "extensions available?)"
        ) from None
    except Exception as exc:  # psycopg2 errors of the restore itself
        first = (str(exc).strip().splitlines() or [exc.__class__.__name__])[0]
        raise DatabaseError(
            f"{environment}: its schema-only dump does not restore on the scratch server: "
            f"{first} (is the scratch server of the same major version, with the same "
            "extensions available?)"
        ) from None
    finally:
        engine.dispose()


def _first_error(text: str, fallback: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    errors = [line for line in lines if "error" in line.lower()]
    return (errors or lines or [fallback])[0]


def copy_with_rows(
    env_url: str,
    target_url: str,
    *,
    server_version: str | None,
    environment: str,
    schema: str = "public",
    schema_only_tables: tuple[str, ...] = (),
    timeout_s: float = 1800.0,
) -> None:
    """Copy the whole database at ``env_url``, rows included, into ``target_url``.

    ``pg_dump --format=custom`` streams into ``pg_restore --exit-on-error`` (no file);
    tables of ``schema`` matching ``schema_only_tables`` are copied without rows. Both
    connections travel in private service files. Raises one :class:`DatabaseError` line
    naming ``environment`` (which program failed, and its first error) on failure or
    after ``timeout_s``.
    """
    pg_dump, pg_restore = _tools(server_version, environment)
    dump_args = [str(pg_dump), "--format=custom", "--compress=0", "--no-owner",
                 "--no-privileges", "--no-password"]
    for pattern in schema_only_tables:
        dump_args.append(f"--exclude-table-data={pg_dump_pattern(schema, pattern)}")
    restore_args = [str(pg_restore), "--no-owner", "--no-privileges", "--exit-on-error",
                    "--no-password"]
    deadline = time.monotonic() + timeout_s
    with tempfile.TemporaryFile() as dump_err, tempfile.TemporaryFile() as restore_err:
        try:
            with libpq_connection(env_url, label=environment) as (source, source_env), \
                    libpq_connection(target_url, label="rehearsal database") as (target, env):
                dumper = subprocess.Popen(
                    dump_args + source, stdout=subprocess.PIPE, stderr=dump_err,
                    env=source_env,
                )
                try:
                    restorer = subprocess.Popen(
                        restore_args + target, stdin=dumper.stdout, stderr=restore_err,
                        env=env,
                    )
                    assert dumper.stdout is not None
                    dumper.stdout.close()  # pg_restore owns the pipe's reading end now
                    try:
                        restored = restorer.wait(timeout=max(1.0, deadline - time.monotonic()))
                        dumped = dumper.wait(timeout=max(1.0, deadline - time.monotonic()))
                    except subprocess.TimeoutExpired:
                        restorer.kill()
                        raise
                finally:
                    if dumper.poll() is None:
                        dumper.kill()
                        dumper.wait()
        except subprocess.TimeoutExpired:
            raise DatabaseError(
                f"{environment}: the rehearsal's copy with rows took longer than "
                f"{timeout_s:g} s (raise upgrade.rehearsal.timeout_s, or lower "
                "upgrade.rehearsal.max_bytes so that it is copied schema only)."
            ) from None
        except OSError as exc:
            raise DatabaseError(
                scrub(f"{environment}: the rehearsal's copy could not start: {exc}", env_url)
            ) from None
        if dumped != 0 or restored != 0:
            dump_err.seek(0)
            restore_err.seek(0)
            which, text = (
                ("pg_dump", dump_err.read().decode(errors="replace"))
                if dumped != 0
                else ("pg_restore", restore_err.read().decode(errors="replace"))
            )
            first = _first_error(text, f"exit status {dumped or restored}")
            raise DatabaseError(
                scrub(
                    scrub(
                        f"{environment}: the rehearsal's copy with rows failed in {which}: "
                        f"{first} (check the role's privileges, and that the scratch server "
                        "has the same major version and extensions).",
                        env_url,
                    ),
                    target_url,
                )
            )
