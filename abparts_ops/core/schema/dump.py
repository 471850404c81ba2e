"""The reference dump: the schema's canonical, schema-only DDL, with its sha256.

When a ``pg_dump`` of the server's major version is installed, the dump is pg_dump's own
(``--schema-only --no-owner --no-privileges``, one schema, the excluded tables and the
Alembic version table left out), normalized so that the same schema in two databases gives
byte-identical text: the ``Dumped from/by`` version lines and psql's ``\\restrict`` /
``\\unrestrict`` lines are dropped and trailing whitespace is stripped. Otherwise it is
:func:`~abparts_ops.core.schema.ddl.render_ddl` of the snapshot.

Known differences between the two methods: pg_dump leaves out extensions when one schema is
selected (PostgreSQL 15 has no ``--extension`` with ``--schema``), and it still dumps enum
types and domains that are used only by excluded tables (``--exclude-table`` does not
apply to types; sequences owned by excluded tables are left out by name); the snapshot
method leaves out exactly what the snapshot excludes.

No secret is ever on pg_dump's command line (which every local user can read): the
connection (host, port, user, database, password, sslpassword, every other URL
parameter) is written to a private, mode-0600 libpq service file that exists only while
pg_dump runs, and pg_dump is given ``--dbname=service=abparts_ops`` (see
:func:`libpq_connection`, which every program run with connection details goes through).
No secret appears in the dump or in an error either.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa

from abparts_ops.core.db import connect, make_engine, parse_url, redact_url, scrub
from abparts_ops.core.errors import DatabaseError, SchemaError
from abparts_ops.core.schema.ddl import render_ddl
from abparts_ops.core.schema.exclusions import compile_patterns
from abparts_ops.core.schema.model import Snapshot

#: psql's ``\restrict`` key given to pg_dump (15.14+), fixed so its output is stable.
RESTRICT_KEY = "abpartsopsreferencedump"
PG_DUMP_TIMEOUT_SECONDS = 600

_DROPPED_LINE = re.compile(r"^(-- Dumped (from database|by pg_dump) version |\\(un)?restrict\b)")
_VERSION = re.compile(r"\b(\d+)(?:\.(\d+))?")


@dataclass(frozen=True)
class ReferenceDump:
    """Canonical schema-only DDL of the reference schema.

    ``method`` is ``"pg_dump"`` or ``"snapshot"``; ``pg_dump_version`` is the version of
    the pg_dump that made it (e.g. ``15.18``; None for the snapshot method).
    """

    text: str
    sha256: str
    method: str
    pg_dump_version: str | None


def _major(version: str | None) -> int | None:
    match = _VERSION.search(version or "")
    return int(match.group(1)) if match else None


def pg_dump_version(executable: str | Path) -> str | None:
    """The version line of a pg_dump (``pg_dump (PostgreSQL) 15.18 ...``), None if broken."""
    try:
        result = subprocess.run(
            [str(executable), "--version"], capture_output=True, text=True, timeout=30
        )
    except (OSError, subprocess.SubprocessError):
        return None
    line = result.stdout.strip().splitlines()[0] if result.stdout.strip() else ""
    return line if result.returncode == 0 and "pg_dump" in line else None


def _version_number(line: str) -> str | None:
    match = re.search(r"\)\s*(\d+(?:\.\d+)*)", line) or _VERSION.search(line)
    return match.group(1) if match else None


#: Folders to look for ``pg_dump`` in, instead of ``PATH`` and the Debian/Ubuntu layout
#: (``os.pathsep``-separated). For servers whose client tools live elsewhere.
PG_DUMP_DIRS_ENV = "ABPARTS_OPS_PG_DUMP_DIRS"


def pg_dump_candidates(
    server_version: str | None, search_dirs: Sequence[Path | str] | None = None
) -> list[Path]:
    """Where :func:`find_pg_dump` looks, in order.

    ``search_dirs`` (or else the folders of ``$ABPARTS_OPS_PG_DUMP_DIRS``) replace the
    default lookup: ``pg_dump`` on ``PATH``, then ``/usr/lib/postgresql/<major>/bin``.
    """
    if search_dirs is None and os.environ.get(PG_DUMP_DIRS_ENV):
        search_dirs = [d for d in os.environ[PG_DUMP_DIRS_ENV].split(os.pathsep) if d]
    if search_dirs is not None:
        return [Path(d) / "pg_dump" for d in search_dirs]
    candidates = []
    on_path = shutil.which("pg_dump")
    if on_path:
        candidates.append(Path(on_path))
    major = _major(server_version)
    if major is not None:
        candidates.append(Path(f"/usr/lib/postgresql/{major}/bin/pg_dump"))
    return candidates


def find_pg_dump(
    server_version: str | None, search_dirs: Sequence[Path | str] | None = None
) -> tuple[Path, str] | None:
    """A pg_dump of the server's major version: ``(path, version line)``, or None.

    Looks on ``PATH`` first, then in ``/usr/lib/postgresql/<major>/bin``; ``search_dirs``
    (or ``$ABPARTS_OPS_PG_DUMP_DIRS``) replace that lookup (see :func:`pg_dump_candidates`).
    """
    major = _major(server_version)
    if major is None:
        return None
    for candidate in pg_dump_candidates(server_version, search_dirs):
        if not candidate.is_file():
            continue
        line = pg_dump_version(candidate)
        if line and _major(_version_number(line)) == major:
            return candidate, line
    return None


def major_version(version: str | None) -> int | None:
    """The major version in a version string (``15`` of ``15.18 (Debian ...)``), or None."""
    return _major(version)


def version_number(line: str) -> str | None:
    """The version number in a ``pg_dump --version`` line (``15.18``), None if absent."""
    return _version_number(line)


def supports_restrict_key(executable: str | Path) -> bool:
    """Whether this pg_dump accepts ``--restrict-key`` (15.14, 16.10, 17.6 and later)."""
    try:
        result = subprocess.run(
            [str(executable), "--help"], capture_output=True, text=True, timeout=30
        )
    except (OSError, subprocess.SubprocessError):
        return False
    return "--restrict-key" in result.stdout


def _pattern_literal(text: str) -> str:
    """``text`` as a literal part of a pg_dump pattern (double-quoted; empty stays empty)."""
    return '"' + text.replace('"', '""') + '"' if text else ""


def pg_dump_pattern(schema: str, glob: str) -> str:
    """A pg_dump table pattern matching ``schema.<glob>`` exactly as our exclusions do.

    Letters and other characters are double-quoted (so case and ``.`` are literal); ``*``,
    ``?`` and ``[...]`` classes keep their wildcard meaning.
    """

    literal = _pattern_literal
    parts: list[str] = []
    buffer = ""
    i = 0
    while i < len(glob):
        char = glob[i]
        if char in "*?":
            parts += [literal(buffer), char]
            buffer = ""
        elif char == "[":
            end = glob.find("]", i + 2 if glob[i + 1 : i + 2] in ("!", "]") else i + 1)
            if end == -1:
                buffer += char
            else:
                body = glob[i + 1 : end]
                if body.startswith("!"):
                    body = "^" + body[1:]
                parts += [literal(buffer), "[" + body + "]"]
                buffer = ""
                i = end
        else:
            buffer += char
        i += 1
    parts.append(literal(buffer))
    return literal(schema) + "." + "".join(parts)


def normalize_dump(text: str) -> str:
    """Make pg_dump output comparable across databases and runs.

    Drops the ``-- Dumped from database version`` / ``-- Dumped by pg_dump version``
    lines and psql's ``\\restrict`` / ``\\unrestrict`` lines (with the blank line that
    followed each, when a blank line precedes it), strips trailing whitespace of every
    line, and ends the text with exactly one newline. The ``SET`` session preamble is
    kept: it depends only on the pg_dump version.
    """
    kept: list[str] = []
    skip_blank = False
    for line in text.splitlines():
        line = line.rstrip()
        if _DROPPED_LINE.match(line):
            skip_blank = not kept or not kept[-1]
            continue
        if skip_blank and not line:
            skip_blank = False
            continue
        skip_blank = False
        kept.append(line)
    while kept and not kept[-1]:
        kept.pop()
    while kept and not kept[0]:
        kept.pop(0)
    return "\n".join(kept) + "\n"


OWNED_SEQUENCES_SQL = """
SELECT s.relname::text
FROM pg_class s
JOIN pg_namespace n ON n.oid = s.relnamespace AND n.nspname = %(schema)s
JOIN pg_depend d ON d.classid = 'pg_class'::regclass AND d.objid = s.oid
                AND d.refclassid = 'pg_class'::regclass AND d.deptype = 'a'
JOIN pg_class t ON t.oid = d.refobjid
WHERE s.relkind = 'S' AND t.relname::text ~ ANY (%(excl)s::text[])
ORDER BY 1
"""


def sequences_owned_by_excluded(url: str, *, schema: str, exclude: Sequence[str]) -> list[str]:
    """Names of the sequences owned by columns of excluded tables (``serial`` columns).

    pg_dump's ``--exclude-table`` leaves them in the dump as standalone sequences; they are
    excluded by name too, so the dump leaves out what the snapshot leaves out.
    """
    engine = make_engine(url, label="reference dump")
    try:
        with connect(engine, label="reference dump") as conn:
            raw = conn.connection.dbapi_connection
            assert raw is not None
            with raw.cursor() as cur:
                cur.execute(
                    OWNED_SEQUENCES_SQL, {"schema": schema, "excl": compile_patterns(exclude)}
                )
                return [row[0] for row in cur.fetchall()]
    finally:
        engine.dispose()


#: The one service of the private service file each pg_dump gets (see :func:`libpq_connection`).
SERVICE_NAME = "abparts_ops"
#: Inherited variables that would override, or stand in for, the private service file.
_INHERITED_DROPPED = ("PGPASSWORD", "PGSERVICE", "PGSERVICEFILE")
_KEYWORD = re.compile(r"[a-z][a-z_]*")


def libpq_params(url: str | sa.URL, *, label: str) -> dict[str, str]:
    """The libpq connection keywords ``url`` stands for, exactly as psycopg2 hands them over.

    The dialect's own ``create_connect_args`` does the translation (user info, a
    ``?host=h1:5432&host=h2:5433`` list, every query parameter), so a program given these
    keywords reaches the same server, as the same role, as every other connection here.
    Raises :class:`DatabaseError` naming ``label`` for a URL :func:`parse_url` refuses or a
    query parameter given twice (never with a value).
    """
    parsed = parse_url(url, label=label)
    dialect_class = parsed.get_dialect()
    _cargs, cparams = dialect_class(dbapi=dialect_class.import_dbapi()).create_connect_args(
        parsed
    )
    params: dict[str, str] = {}
    for key, value in cparams.items():
        if value is None:
            continue
        if not isinstance(value, (str, int)) or isinstance(value, bool):
            raise DatabaseError(
                f"{label}: the database URL gives the parameter {key!r} more than once "
                "(keep one)."
            )
        params[key] = str(value)
    return params


def _fits_service_file(value: str) -> bool:
    """Whether libpq reads ``value`` back unchanged from a ``key=value`` service file line.

    libpq strips trailing whitespace from each line and has no quoting or escapes.
    """
    return not any(c in value for c in "\n\r\0") and value == value.rstrip(" \t\v\f")


def _service_section(name: str, label: str) -> list[str]:
    """The ``key=value`` lines of libpq service ``name``, from the files libpq reads.

    The user's file (``$PGSERVICEFILE`` or ``~/.pg_service.conf``) first, then the
    system's (``$PGSYSCONFDIR/pg_service.conf``, else the Debian and RPM locations).
    """
    personal = os.environ.get("PGSERVICEFILE") or str(Path.home() / ".pg_service.conf")
    system_dirs = (
        [os.environ["PGSYSCONFDIR"]]
        if os.environ.get("PGSYSCONFDIR")
        else ["/etc/postgresql-common", "/etc/sysconfig/pgsql"]
    )
    files = [Path(personal), *(Path(d) / "pg_service.conf" for d in system_dirs)]
    for path in files:
        try:
            text = path.read_text(encoding="utf-8", errors="surrogateescape")
        except OSError:
            continue
        lines: list[str] | None = None
        for raw in text.splitlines():
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            if line.startswith("["):
                if lines is not None:
                    break
                if line[1:].startswith(name + "]"):
                    lines = []
            elif lines is not None:
                lines.append(line)
        if lines is not None:
            return lines
    raise DatabaseError(
        f"{label}: the libpq service {name!r} (from the URL or PGSERVICE) is defined in none "
        f"of {', '.join(str(p) for p in files)} (define it there, or write its parameters "
        "into the URL)."
    )


@contextlib.contextmanager
def libpq_connection(
    url: str | sa.URL, *, label: str
) -> Iterator[tuple[list[str], dict[str, str]]]:
    """``(arguments, environment)`` for a libpq program (pg_dump) to connect to ``url``.

    Any local user can read every process's command line, so the connection travels in
    a libpq service file instead: every keyword of the URL (:func:`libpq_params`: host
    list, port, user, dbname, password, sslpassword, passfile, sslkey, sslmode, options,
    application_name...) is written to ``pg_service.conf``, mode 0600, in a fresh
    private (0700) temporary folder, named by ``$PGSERVICEFILE`` in the environment. The
    arguments are just ``--dbname=service=abparts_ops``: no secret and no user info. A
    ``service=`` of the URL (or ``$PGSERVICE``) is resolved from the user's own service
    files, its keywords after the URL's (libpq keeps the first, so the URL wins, as it
    does for psycopg2). A password libpq could not read back from the file (trailing
    whitespace, a line break) goes in ``PGPASSWORD`` of the program's environment; any
    other such value is refused. An inherited ``PGPASSWORD``, ``PGSERVICE`` and
    ``PGSERVICEFILE`` are dropped, ``PGCONNECT_TIMEOUT`` defaults to 10 s. The folder is
    deleted when the block ends, however it ends (an error, a timeout).
    """
    params = libpq_params(url, label=label)
    env = {k: v for k, v in os.environ.items() if k not in _INHERITED_DROPPED}
    service = params.pop("service", None) or os.environ.get("PGSERVICE")
    lines: list[str] = []
    for key, value in params.items():
        if not _KEYWORD.fullmatch(key):
            raise DatabaseError(
                f"{label}: the database URL has a parameter name that is not a libpq "
                "keyword (check the query string)."
            )
        if _fits_service_file(value):
            lines.append(f"{key}={value}")
        elif key == "password":
            env["PGPASSWORD"] = value
        else:
            raise DatabaseError(
                f"{label}: the value of the URL parameter {key!r} ends with whitespace or "
                "holds a line break, which pg_dump cannot be given safely (fix the URL)."
            )
    if service:
        lines += _service_section(service, label)
    folder = tempfile.mkdtemp(prefix="abparts_ops_libpq_")
    try:
        path = Path(folder) / "pg_service.conf"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8", errors="surrogateescape") as handle:
            handle.write("\n".join([f"[{SERVICE_NAME}]", *lines]) + "\n")
        env["PGSERVICEFILE"] = str(path)
        env.setdefault("PGCONNECT_TIMEOUT", "10")
        yield [f"--dbname=service={SERVICE_NAME}"], env
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def run_pg_dump(
    executable: str | Path,
    url: str,
    *,
    schema: str,
    exclude: Sequence[str],
    exclude_exact: Sequence[str] = (),
    restrict_key: bool,
    timeout: float = PG_DUMP_TIMEOUT_SECONDS,
) -> str:
    """Run pg_dump (schema only, one schema, tables in ``exclude`` left out); raw output.

    ``exclude`` holds globs (as in the configuration); ``exclude_exact`` exact names.

    Raises :class:`DatabaseError` with pg_dump's first error line, password removed.
    """
    args = [
        str(executable),
        "--schema-only",
        "--no-owner",
        "--no-privileges",
        "--no-password",
        f"--schema={_pattern_literal(schema)}",
    ]
    for pattern in exclude:
        args.append(f"--exclude-table={pg_dump_pattern(schema, pattern)}")
    for name in exclude_exact:
        args.append(f"--exclude-table={_pattern_literal(schema)}.{_pattern_literal(name)}")
    if restrict_key:
        args.append(f"--restrict-key={RESTRICT_KEY}")
    try:
        with libpq_connection(url, label="reference dump") as (connection, env):
            result = subprocess.run(
                args + connection, capture_output=True, text=True, env=env, timeout=timeout,
                check=False,
            )
    except subprocess.TimeoutExpired:
        raise DatabaseError(
            f"reference dump: pg_dump of {redact_url(url)} did not finish within "
            f"{int(timeout)} s (check the server's load and locks)."
        ) from None
    except OSError as exc:
        raise DatabaseError(
            f"reference dump: cannot run {executable}: {exc.strerror or exc} (check the "
            "PostgreSQL client installation)."
        ) from None
    if result.returncode != 0:
        lines = [line for line in result.stderr.strip().splitlines() if line.strip()]
        first = lines[0] if lines else f"exit status {result.returncode}"
        first = re.sub(r"^pg_dump: (error: )?", "", first)
        message = f"reference dump: pg_dump of {redact_url(url)} failed: {first}"
        message = scrub(message, url)
        raise DatabaseError(message + " (check the URL, the role's privileges and the server).")
    return result.stdout


def reference_dump(
    url: str,
    snapshot: Snapshot,
    *,
    exclude: Sequence[str],
    schema: str = "public",
    version_table: str = "alembic_version",
    prefer_pg_dump: bool = True,
) -> ReferenceDump:
    """The reference dump of ``schema`` in the database at ``url`` (see the module docstring).

    ``snapshot`` is the same schema's snapshot: its server version picks the pg_dump, and
    it is rendered instead when no matching pg_dump is installed or ``prefer_pg_dump`` is
    false. ``exclude`` holds the names/globs of excluded tables; the version table is
    always excluded too.
    """
    if snapshot.schema != schema:
        raise SchemaError(
            f"reference dump: the snapshot is of schema {snapshot.schema!r}, not {schema!r} "
            "(take the snapshot of the same schema)."
        )
    found = find_pg_dump(snapshot.server_version) if prefer_pg_dump else None
    if found is None:
        text = render_ddl(snapshot)
        return ReferenceDump(
            text=text, sha256=_sha256(text), method="snapshot", pg_dump_version=None
        )
    executable, version_line = found
    patterns = list(exclude)
    if version_table not in patterns:
        patterns.append(version_table)
    raw = run_pg_dump(
        executable,
        url,
        schema=schema,
        exclude=patterns,
        exclude_exact=sequences_owned_by_excluded(url, schema=schema, exclude=patterns),
        restrict_key=supports_restrict_key(executable),
    )
    text = normalize_dump(raw)
    return ReferenceDump(
        text=text,
        sha256=_sha256(text),
        method="pg_dump",
        pg_dump_version=_version_number(version_line) or version_line,
    )


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def write_reference(dump: ReferenceDump, path: Path) -> bool:
    """Write ``dump.text`` to ``path`` atomically, only when it differs; True if written.

    See :func:`write_reference_text`.
    """
    return write_reference_text(dump.text, path)


def write_reference_text(text: str, path: Path) -> bool:
    """Write ``text`` to ``path`` atomically, only when it differs; True if written.

    The text goes to a temporary file next to ``path`` (flushed to disk) that then
    replaces ``path`` in one rename, so a reader never sees half a dump.
    """
    path = Path(path)
    data = text.encode("utf-8")
    try:
        if path.is_file() and path.read_bytes() == data:
            return False
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            with tmp.open("wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
    except OSError as exc:
        raise SchemaError(
            f"cannot write the reference dump {path}: {exc.strerror or exc} (check the "
            "folder's permissions and free space)."
        ) from None
    return True
