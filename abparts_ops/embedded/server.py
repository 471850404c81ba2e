"""A local PostgreSQL server in a project-local folder, for the demo and the tests.

The server listens on 127.0.0.1 only (no unix socket), with scram-sha-256 password
authentication and a generated password kept in a file readable by the owner only.
Starting twice reuses the running server; a stale pid file left by a crashed server is
removed before starting again. When the session runs as root the server runs as the
unprivileged ``postgres`` OS user, because PostgreSQL refuses to run as root.
"""

from __future__ import annotations

import contextlib
import fcntl
import glob
import json
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from abparts_ops.core.errors import EmbeddedServerError

DEFAULT_HOME_ENV = "ABPARTS_OPS_HOME"
SUPERUSER = "abparts"
_STATE_FILE = "server.json"
_STATE_FILE_DIR = "pg"


def project_home() -> Path:
    """Return the git-ignored folder that holds local state (server data, demo copies).

    ``ABPARTS_OPS_HOME`` overrides it; the default is ``.abparts_ops`` in the current
    working directory, so a clone keeps its state next to itself.
    """
    return Path(os.environ.get(DEFAULT_HOME_ENV) or Path.cwd() / ".abparts_ops").resolve()


def find_pg_bin() -> Path:
    """Locate a folder holding ``initdb``, ``pg_ctl`` and ``postgres``.

    Order: ``ABPARTS_PG_BIN``; ``initdb`` on PATH (symlinks resolved); the highest
    ``/usr/lib/postgresql/*/bin``; the binaries bundled with the ``pgserver`` package.
    """
    candidates: list[Path] = []
    if os.environ.get("ABPARTS_PG_BIN"):
        candidates.append(Path(os.environ["ABPARTS_PG_BIN"]))
    on_path = shutil.which("initdb")
    if on_path:
        candidates.append(Path(on_path).resolve().parent)
    versions = sorted(
        glob.glob("/usr/lib/postgresql/*/bin"),
        key=lambda p: int(Path(p).parent.name) if Path(p).parent.name.isdigit() else 0,
        reverse=True,
    )
    candidates.extend(Path(p) for p in versions)
    with contextlib.suppress(ImportError):
        import pgserver  # type: ignore[import-not-found]

        candidates.append(Path(pgserver.__file__).parent / "pginstall" / "bin")
    for folder in candidates:
        if all((folder / tool).exists() for tool in ("initdb", "pg_ctl", "postgres")):
            return folder
    raise EmbeddedServerError(
        "No PostgreSQL server binaries found (initdb, pg_ctl, postgres). Install the "
        "Debian package postgresql-15, set ABPARTS_PG_BIN to their folder, or "
        "`pip install pgserver`."
    )


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _port_open(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


@dataclass(frozen=True)
class ServerInfo:
    """How to reach a running embedded server. ``password`` is never logged."""

    host: str
    port: int
    user: str
    password: str

    def url(self, database: str = "postgres") -> str:
        """SQLAlchemy URL (psycopg2 driver) for ``database`` on this server."""
        return (
            f"postgresql+psycopg2://{quote(self.user, safe='')}:"
            f"{quote(self.password, safe='')}@{self.host}:{self.port}/{quote(database)}"
        )

    def passfile_url(self, database: str, passfile: Path) -> str:
        """A URL for ``database`` that holds no password: libpq reads it from ``passfile``.

        ``postgresql://user@host:port/db?passfile=...``: psycopg2, pg_dump and psql all
        accept it, so it can be printed and exported (``abparts-ops demo env``).
        """
        return (
            f"postgresql://{quote(self.user, safe='')}@{self.host}:{self.port}/"
            f"{quote(database)}?passfile={quote(str(passfile), safe='/')}"
        )


class EmbeddedPostgres:
    """Start, reuse and stop a PostgreSQL server whose data lives under ``home/pg``."""

    def __init__(self, home: Path | None = None) -> None:
        self.home = (home or project_home()).resolve()
        self.root = self.home / "pg"
        self.data_dir = self.root / "data"
        self.state_path = self.root / _STATE_FILE
        self.log_path = self.root / "server.log"

    # -- running as the unprivileged user ------------------------------------------------
    @staticmethod
    def _run_as() -> str | None:
        if os.geteuid() != 0:
            return None
        try:
            pwd.getpwnam("postgres")
        except KeyError as exc:
            raise EmbeddedServerError(
                "Running as root, and PostgreSQL refuses to run as root: create an "
                "unprivileged 'postgres' OS user (useradd postgres) and retry."
            ) from exc
        return "postgres"

    def _cmd(self, args: list[str], check: bool = True) -> subprocess.CompletedProcess[str]:
        user = self._run_as()
        full = ["runuser", "-u", user, "--", *args] if user else args
        proc = subprocess.run(full, capture_output=True, text=True, cwd="/")
        if check and proc.returncode != 0:
            raise EmbeddedServerError(
                f"embedded PostgreSQL: `{Path(args[0]).name} {args[1] if len(args) > 1 else ''}`"
                f" failed ({proc.returncode}): {(proc.stderr or proc.stdout).strip()[-800:]}"
                f" (log: {self.log_path})"
            )
        return proc

    def _chown(self, path: Path) -> None:
        user = self._run_as()
        if user:
            entry = pwd.getpwnam(user)
            os.chown(path, entry.pw_uid, entry.pw_gid)

    # -- state ---------------------------------------------------------------------------
    def _read_state(self) -> dict[str, object] | None:
        if not self.state_path.exists():
            return None
        return json.loads(self.state_path.read_text())

    def _write_state(self, state: dict[str, object]) -> None:
        tmp = self.state_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(state))
        os.chmod(tmp, 0o600)
        tmp.replace(self.state_path)

    @contextlib.contextmanager
    def _lock(self) -> Iterator[None]:
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / ".lock", "w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    # -- lifecycle -----------------------------------------------------------------------
    def _initdb(self, bin_dir: Path) -> dict[str, object]:
        if self.data_dir.exists():
            shutil.rmtree(self.data_dir)
        self.root.mkdir(parents=True, exist_ok=True)
        os.chmod(self.root, 0o755)
        for parent in [self.home, *self.home.parents]:
            if parent == Path("/"):
                break
            mode = parent.stat().st_mode
            if not mode & 0o001 and os.geteuid() == 0:
                raise EmbeddedServerError(
                    f"embedded PostgreSQL: the 'postgres' user cannot enter {parent}; "
                    f"chmod o+x it or set {DEFAULT_HOME_ENV} to a folder it can reach."
                )
        self.data_dir.mkdir()
        self._chown(self.data_dir)
        password = secrets.token_urlsafe(24)
        pwfile = self.root / "initdb.pw"
        pwfile.write_text(password + "\n")
        os.chmod(pwfile, 0o600)
        self._chown(pwfile)
        try:
            self._cmd(
                [
                    str(bin_dir / "initdb"),
                    "-D", str(self.data_dir),
                    "-U", SUPERUSER,
                    "--pwfile", str(pwfile),
                    "--auth", "scram-sha-256",
                    "-E", "UTF8",
                    "--locale", "C",
                    "--no-sync",
                ]
            )
        finally:
            pwfile.unlink(missing_ok=True)
        state: dict[str, object] = {
            "user": SUPERUSER,
            "password": password,
            "port": _free_port(),
            "bin_dir": str(bin_dir),
        }
        self._write_state(state)
        return state

    def _status(self, bin_dir: Path) -> bool:
        return self._cmd([str(bin_dir / "pg_ctl"), "status", "-D", str(self.data_dir)],
                         check=False).returncode == 0

    def start(self, *, max_connections: int = 300) -> ServerInfo:
        """Start the server (initialising it on first use) or reuse it when running.

        Recovers from a stale ``postmaster.pid`` (a crashed or killed server) and from a
        port taken by another program, by picking a new free port. ``max_connections``
        applies when the server starts here (a running server keeps its own).
        """
        with self._lock():
            state = self._read_state()
            bin_dir = find_pg_bin()
            if state is None or not (self.data_dir / "PG_VERSION").exists():
                state = self._initdb(bin_dir)
            if self._status(bin_dir) and _port_open(int(state["port"])):  # type: ignore[arg-type]
                return self._info(state)
            pid_file = self.data_dir / "postmaster.pid"
            if pid_file.exists() and not self._status(bin_dir):
                pid_file.unlink()
            if _port_open(int(state["port"])):  # type: ignore[arg-type]
                state["port"] = _free_port()
                self._write_state(state)
            options = (
                f"-c listen_addresses=127.0.0.1 -c port={state['port']} "
                "-c unix_socket_directories='' -c fsync=off -c synchronous_commit=off "
                f"-c full_page_writes=off -c max_connections={int(max_connections)} "
                "-c shared_buffers=128MB "
                "-c max_locks_per_transaction=256"
            )
            if not self.log_path.exists():
                self.log_path.touch()
            self._chown(self.log_path)
            self._cmd(
                [
                    str(bin_dir / "pg_ctl"), "start", "-w", "-t", "60",
                    "-D", str(self.data_dir), "-l", str(self.log_path), "-o", options,
                ]
            )
            return self._info(state)

    def stop(self, mode: str = "fast") -> None:
        """Stop the server if it is running (``mode``: smart, fast or immediate)."""
        with self._lock():
            if self._read_state() is None or not self.data_dir.exists():
                return
            bin_dir = find_pg_bin()
            if self._status(bin_dir):
                self._cmd([str(bin_dir / "pg_ctl"), "stop", "-w", "-m", mode,
                           "-D", str(self.data_dir)])

    @property
    def passfile(self) -> Path:
        """The libpq password file of this server (mode 0600), see :meth:`write_passfile`."""
        return self.root / "pgpass"

    def write_passfile(self) -> Path:
        """Write (or refresh) the password file libpq reads for password-free URLs.

        One line, ``127.0.0.1:<port>:*:<user>:<password>``, mode 0600 (libpq ignores a
        file others can read). Returns its path.
        """
        info = self.info()

        def escape(value: str) -> str:
            return value.replace("\\", "\\\\").replace(":", "\\:")

        line = f"{info.host}:{info.port}:*:{escape(info.user)}:{escape(info.password)}\n"
        tmp = self.passfile.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(line)
        os.chmod(tmp, 0o600)
        tmp.replace(self.passfile)
        return self.passfile

    def is_running(self) -> bool:
        """True when the server process is up and its port answers."""
        state = self._read_state()
        if state is None or not self.data_dir.exists():
            return False
        return self._status(find_pg_bin()) and _port_open(int(state["port"]))  # type: ignore[arg-type]

    def info(self) -> ServerInfo:
        """Connection details of the (possibly stopped) server; start() first to use them."""
        state = self._read_state()
        if state is None:
            raise EmbeddedServerError(
                f"embedded PostgreSQL under {self.root} was never started; run "
                "`abparts-ops demo start` first."
            )
        return self._info(state)

    @staticmethod
    def _info(state: dict[str, object]) -> ServerInfo:
        return ServerInfo(
            host="127.0.0.1",
            port=int(state["port"]),  # type: ignore[arg-type]
            user=str(state["user"]),
            password=str(state["password"]),
        )

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Block until the server accepts TCP connections or ``timeout`` passes."""
        deadline = time.monotonic() + timeout
        port = self.info().port
        while time.monotonic() < deadline:
            if _port_open(port):
                return
            time.sleep(0.1)
        raise EmbeddedServerError(f"embedded PostgreSQL did not accept connections on {port}")


def embedded_servers(home: Path | None = None) -> list[EmbeddedPostgres]:
    """Every embedded server initialised under ``home`` (default :func:`project_home`).

    The demo's (``home/pg``) and those of the tests and benchmarks (``home/<name>/pg``,
    e.g. ``.abparts_ops/test/pg``), running or not.
    """
    home = (home or project_home()).resolve()
    found = [home / _STATE_FILE_DIR] + sorted(home.glob(f"*/{_STATE_FILE_DIR}"))
    return [
        EmbeddedPostgres(folder.parent)
        for folder in found
        if (folder / _STATE_FILE).is_file()
    ]
