"""The demo: a copy of the sample ABParts Alembic project and its three environments.

With no configuration at all the project runs against this demo:

* :func:`prepare_demo_project` copies the packaged ``demo_app`` (a sample ABParts
  Alembic project with a tangled history: a merge of two heads, an enum recreated, a
  hand-written data fix, a dropped table, a view) into ``<home>/demo/app`` and writes the
  pipeline configuration ``<home>/demo/abparts_ops.yaml``. The pipeline only ever edits
  that copy, never the package.
* :func:`build_template` upgrades an empty database with the old history once and keeps
  it as a template; :func:`build_environments` clones it into ``abparts_dev``,
  ``abparts_staging`` and ``abparts_prod``. Prod's ``alembic_version`` names a revision
  that exists only on that server (``9c1f0e7d2b44``), as after a merge made by hand over
  SSH, so a plain ``alembic upgrade head`` there fails with "Can't locate revision".
* :func:`ensure_demo` does all of it on the embedded server and exports the
  ``ABPARTS_*_URL`` variables the demo configuration names.
* :func:`write_stamp_configs` writes the run config of each ``stamp_<env>`` job (a real
  stamp; prod's confirmation included) as files for ``dagster job execute -c``: the
  same run config ``scripts/demo`` launches through ``abparts-ops stamp ENV --apply``
  to end the reset with every environment, dev first, stamped at the proven baseline.

Databases are built under a temporary name and renamed when complete, under a Postgres
advisory lock, so an interrupted or concurrent run never leaves a half-built database
behind a final name. URLs carry the server password: they are returned and put in the
environment, never printed or logged.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError

from abparts_ops.core.db import connect, make_engine, scrub, with_database
from abparts_ops.core.errors import DatabaseError, MigrationError
from abparts_ops.core.history.migrate import current_revisions
from abparts_ops.core.quoting import quote_always
from abparts_ops.embedded.server import EmbeddedPostgres, project_home

DEMO_APP_SOURCE: Path = Path(__file__).resolve().parent / "demo_app"
"""The packaged demo application (read-only for the pipeline: it works on a copy)."""

DEMO_ENVIRONMENTS: tuple[str, ...] = ("dev", "staging", "prod")
DEMO_OLD_HEAD = "f2a4c6e8b0d1"
"""Head of the demo's old (tangled) history: every demo environment starts there."""
DEMO_UNKNOWN_REVISION = "9c1f0e7d2b44"
"""Revision prod is stamped with: a merge made only on the server, unknown to the files."""
DEMO_DRIFT_REVISION = "a5b7d9f1c3e2"
"""Known revision (the old head's parent) that ``introduce_drift(kind="revision")`` sets."""
DEFAULT_TEMPLATE = "abparts_demo_template"
DEFAULT_PREFIX = "abparts_"
PROTECTED_ENVIRONMENT = "prod"
SCRATCH_ENV_VAR = "ABPARTS_SCRATCH_URL"
CONFIG_FILE_NAME = "abparts_ops.yaml"

DEMO_CONFIG_YAML = """\
alembic:
  config: app/alembic.ini
  models: app.models:Base
  sys_path: [app]
source: dev
exclude: [knowledge_documents, document_chunks]
scratch: {url_env: ABPARTS_SCRATCH_URL}
environments:
  dev:     {url_env: ABPARTS_DEV_URL}
  staging: {url_env: ABPARTS_STAGING_URL}
  prod:    {url_env: ABPARTS_PROD_URL, protected: true}
"""

DRIFT_INDEX = "drift_demo_idx"
DRIFT_KINDS = ("index", "default", "revision")
_DRIFT_DEFAULT = "units"

_TEMPLATE_MARKER = "abparts_ops demo template"
_ENVIRONMENT_MARKER = "abparts_ops demo environment"
_LOCK_KEY = 0x61627061727473  # "abparts": serialises demo builds on one server
_IGNORED_FILES = shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache")


@dataclass(frozen=True)
class DemoLayout:
    """Where the working copy of the demo project lives (all paths absolute)."""

    root: Path
    app_dir: Path
    alembic_ini: Path
    versions_dir: Path
    config_path: Path


def _alembic(run: Callable[[], object], failed: str, url: str) -> None:
    """Run one Alembic command on the demo; its errors become one safe line, chained."""
    try:
        run()
    except DatabaseError:
        raise
    except Exception as exc:  # alembic/driver errors
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise MigrationError(scrub(f"{failed}: {first}", url)) from exc


def _layout(root: Path) -> DemoLayout:
    app_dir = root / "app"
    return DemoLayout(
        root=root,
        app_dir=app_dir,
        alembic_ini=app_dir / "alembic.ini",
        versions_dir=app_dir / "alembic" / "versions",
        config_path=root / CONFIG_FILE_NAME,
    )


# --------------------------------------------------------------------------- files
def _aside_path(path: Path) -> Path:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    candidate = path.with_name(f"{path.name}.old-{stamp}")
    counter = 2
    while candidate.exists():
        candidate = path.with_name(f"{path.name}.old-{stamp}-{counter}")
        counter += 1
    return candidate


def _copy_source(target: Path) -> None:
    staging = target.with_name(f".{target.name}.tmp-{uuid.uuid4().hex[:8]}")
    shutil.copytree(DEMO_APP_SOURCE, staging, ignore=_IGNORED_FILES)
    try:
        staging.rename(target)
    except OSError:
        # another process finished its copy first: keep theirs, discard our staging copy
        shutil.rmtree(staging, ignore_errors=True)
        if not target.exists():
            raise


def _write_text_atomic(path: Path, content: str) -> None:
    staging = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex[:8]}")
    staging.write_text(content, encoding="utf-8")
    staging.replace(path)


def prepare_demo_project(home: Path, *, fresh: bool = False) -> DemoLayout:
    """Copy the packaged demo project to ``home/demo/app`` and write the demo configuration.

    An existing copy is reused as it is (the pipeline may have reset its history). With
    ``fresh=True`` the existing copy, and a configuration file that differs from the
    default one, are moved aside to ``*.old-<timestamp>`` (never deleted) and replaced by
    new ones. The configuration ``home/demo/abparts_ops.yaml`` is written when missing;
    its paths are relative to itself.
    """
    root = Path(home).resolve() / "demo"
    root.mkdir(parents=True, exist_ok=True)
    layout = _layout(root)
    if fresh and layout.app_dir.exists():
        layout.app_dir.rename(_aside_path(layout.app_dir))
    if not layout.app_dir.exists():
        _copy_source(layout.app_dir)
    if not layout.alembic_ini.is_file():
        raise MigrationError(
            f"demo project: {layout.alembic_ini} is missing; call "
            "prepare_demo_project(home, fresh=True) to move the broken copy aside and copy "
            "the demo again."
        )
    config_exists = layout.config_path.exists()
    if (
        fresh
        and config_exists
        and layout.config_path.read_text(encoding="utf-8") != (DEMO_CONFIG_YAML)
    ):
        layout.config_path.rename(_aside_path(layout.config_path))
        config_exists = False
    if not config_exists:
        _write_text_atomic(layout.config_path, DEMO_CONFIG_YAML)
    return layout


# --------------------------------------------------------------------------- databases
def demo_database_name(env: str, *, prefix: str = DEFAULT_PREFIX) -> str:
    """Name of the demo database of environment ``env`` (``abparts_dev`` for ``dev``)."""
    return f"{prefix}{env}"


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _history_fingerprint() -> str:
    """Short hash of the packaged old history, so a changed demo rebuilds its template."""
    digest = hashlib.sha256()
    for path in sorted((DEMO_APP_SOURCE / "alembic" / "versions").glob("*.py")):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def _template_comment() -> str:
    return f"{_TEMPLATE_MARKER}; head={DEMO_OLD_HEAD}; history={_history_fingerprint()}"


@contextlib.contextmanager
def _locked_admin(admin_url: str) -> Iterator[Connection]:
    """An autocommit connection to the admin database holding the demo build lock."""
    engine = make_engine(admin_url, label="demo server")
    try:
        with connect(engine, label="demo server") as conn:
            conn = conn.execution_options(isolation_level="AUTOCOMMIT")
            conn.exec_driver_sql(f"SELECT pg_advisory_lock({_LOCK_KEY})")
            try:
                yield conn
            finally:
                with contextlib.suppress(DBAPIError):
                    conn.exec_driver_sql(f"SELECT pg_advisory_unlock({_LOCK_KEY})")
    finally:
        engine.dispose()


def _databases(conn: Connection) -> dict[str, str | None]:
    """Every database on the server with its comment."""
    rows = conn.exec_driver_sql(
        "SELECT datname, shobj_description(oid, 'pg_database') FROM pg_database"
    ).all()
    return {str(name): comment for name, comment in rows}


def _drop(conn: Connection, name: str) -> None:
    conn.exec_driver_sql(f"ALTER DATABASE {quote_always(name)} IS_TEMPLATE false")
    conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {quote_always(name)} WITH (FORCE)")


def _build_name(name: str) -> str:
    return f"{name[:40]}_build_{uuid.uuid4().hex[:10]}"


@contextlib.contextmanager
def _history_ini(layout: DemoLayout) -> Iterator[Path]:
    """The alembic.ini holding the old history: the working copy's, or a pristine copy's.

    After the pipeline has reset the working copy its old revisions are archived; the
    template is still built from the old history, taken from a temporary copy of the
    packaged source (so the package itself is never written to, not even bytecode).
    """
    if any(layout.versions_dir.glob(f"{DEMO_OLD_HEAD}_*.py")) and layout.alembic_ini.is_file():
        yield layout.alembic_ini
        return
    with tempfile.TemporaryDirectory(prefix="abparts_demo_") as tmp:
        pristine = Path(tmp) / "app"
        shutil.copytree(DEMO_APP_SOURCE, pristine, ignore=_IGNORED_FILES)
        yield pristine / "alembic.ini"


def _upgrade_old_history(url: str, layout: DemoLayout, label: str) -> None:
    engine = make_engine(url, label=label)
    try:
        with _history_ini(layout) as ini, connect(engine, label=label) as conn:
            cfg = Config(str(ini))
            cfg.attributes["connection"] = conn
            _alembic(
                lambda: command.upgrade(cfg, DEMO_OLD_HEAD),
                f"{label}: upgrading to the demo's old head failed",
                url,
            )
            conn.commit()
    finally:
        engine.dispose()


def _ensure_template(
    conn: Connection, admin_url: str, layout: DemoLayout, name: str, rebuild: bool
) -> str:
    databases = _databases(conn)
    if name in databases and not rebuild:
        comment = databases[name] or ""
        if comment == _template_comment():
            return name
        if not comment.startswith(_TEMPLATE_MARKER):
            raise DatabaseError(
                f"demo template: a database named {name!r} exists but was not built by "
                "abparts_ops; drop it, or choose another template name."
            )
        # built by an older demo (another head): rebuilt below
    building = _build_name(name)
    conn.exec_driver_sql(f"CREATE DATABASE {quote_always(building)}")
    try:
        _upgrade_old_history(with_database(admin_url, building), layout, "demo template")
        conn.exec_driver_sql(
            f"COMMENT ON DATABASE {quote_always(building)} IS {_literal(_template_comment())}"
        )
        if name in databases:
            _drop(conn, name)
        conn.exec_driver_sql(
            f"ALTER DATABASE {quote_always(building)} RENAME TO {quote_always(name)}"
        )
        conn.exec_driver_sql(f"ALTER DATABASE {quote_always(name)} IS_TEMPLATE true")
    except BaseException:
        with contextlib.suppress(DBAPIError):
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {quote_always(building)} WITH (FORCE)")
        raise
    return name


def build_template(
    admin_url: str,
    layout: DemoLayout,
    *,
    name: str = DEFAULT_TEMPLATE,
    rebuild: bool = False,
) -> str:
    """Create (once) the template database holding the demo's old head; return its name.

    The database is upgraded with Alembic's API on a shared connection to
    :data:`DEMO_OLD_HEAD` under a temporary name, marked complete with a comment, then
    renamed to ``name`` and flagged ``IS_TEMPLATE``; an existing complete template is
    reused (``rebuild=True`` replaces it). ``admin_url`` is any database on the server
    whose role may create databases.
    """
    with _locked_admin(admin_url) as conn:
        return _ensure_template(conn, admin_url, layout, name, rebuild)


def _set_version(url: str, revision: str, label: str) -> None:
    engine = make_engine(url, label=label)
    try:
        with connect(engine, label=label) as conn, conn.begin():
            conn.exec_driver_sql("DELETE FROM alembic_version")
            conn.exec_driver_sql(
                "INSERT INTO alembic_version (version_num) VALUES (%(rev)s)", {"rev": revision}
            )
    finally:
        engine.dispose()


def build_environments(
    admin_url: str,
    layout: DemoLayout,
    *,
    names: Sequence[str] = DEMO_ENVIRONMENTS,
    rebuild: bool = False,
    prefix: str = DEFAULT_PREFIX,
) -> dict[str, str]:
    """Create the demo environments' databases from the template; return env -> URL.

    Each database (``<prefix><env>``) is a copy of the template: the schema of the old
    head with ``alembic_version`` at :data:`DEMO_OLD_HEAD`, except ``prod``, whose version
    row names :data:`DEMO_UNKNOWN_REVISION`. Existing databases are kept unless
    ``rebuild=True`` (then dropped and created again). The URLs contain the password:
    never print or log them.
    """
    with _locked_admin(admin_url) as conn:
        databases = _databases(conn)
        missing = [
            env
            for env in names
            if rebuild or demo_database_name(env, prefix=prefix) not in databases
        ]
        template = DEFAULT_TEMPLATE
        if missing:
            template = _ensure_template(conn, admin_url, layout, template, False)
        for env in missing:
            final = demo_database_name(env, prefix=prefix)
            building = _build_name(final)
            conn.exec_driver_sql(
                f"CREATE DATABASE {quote_always(building)} TEMPLATE {quote_always(template)}"
            )
            try:
                if env == PROTECTED_ENVIRONMENT:
                    _set_version(
                        with_database(admin_url, building),
                        DEMO_UNKNOWN_REVISION,
                        f"demo environment {env}",
                    )
                conn.exec_driver_sql(
                    f"COMMENT ON DATABASE {quote_always(building)} IS "
                    f"{_literal(f'{_ENVIRONMENT_MARKER}: {env}')}"
                )
                if final in databases:
                    _drop(conn, final)
                conn.exec_driver_sql(
                    f"ALTER DATABASE {quote_always(building)} RENAME TO {quote_always(final)}"
                )
            except BaseException:
                with contextlib.suppress(DBAPIError):
                    conn.exec_driver_sql(
                        f"DROP DATABASE IF EXISTS {quote_always(building)} WITH (FORCE)"
                    )
                raise
    return {env: with_database(admin_url, demo_database_name(env, prefix=prefix)) for env in names}


def environment_variable(env: str) -> str:
    """Name of the variable holding environment ``env``'s URL (``ABPARTS_DEV_URL``)."""
    return f"ABPARTS_{env.upper()}_URL"


def demo_environment_variables(urls: Mapping[str, str], scratch_url: str) -> dict[str, str]:
    """Map the demo configuration's variables to URLs.

    ``ABPARTS_DEV_URL``, ``ABPARTS_STAGING_URL``, ``ABPARTS_PROD_URL`` (one per entry of
    ``urls``) and ``ABPARTS_SCRATCH_URL`` (``scratch_url``: the maintenance database
    ``postgres`` of the same server, where scratch databases are created).
    """
    variables = {environment_variable(env): url for env, url in urls.items()}
    variables[SCRATCH_ENV_VAR] = scratch_url
    return variables


def ensure_demo(home: Path | None = None) -> DemoLayout:
    """Make the whole demo ready, with no configuration, and return its layout.

    Starts (or reuses) the embedded PostgreSQL under ``home`` (default:
    :func:`~abparts_ops.embedded.server.project_home`), prepares the project copy, builds
    the template and any missing environment, and sets ``ABPARTS_DEV_URL``,
    ``ABPARTS_STAGING_URL``, ``ABPARTS_PROD_URL`` and ``ABPARTS_SCRATCH_URL`` with
    ``os.environ.setdefault`` (variables the user set are left alone). Idempotent; a
    second call only checks and returns.
    """
    home = (home or project_home()).resolve()
    info = EmbeddedPostgres(home).start()
    admin_url = info.url("postgres")
    layout = prepare_demo_project(home)
    build_template(admin_url, layout)
    urls = build_environments(admin_url, layout)
    for key, value in demo_environment_variables(urls, admin_url).items():
        os.environ.setdefault(key, value)
    return layout


# --------------------------------------------------------------------------- behind
def leave_behind(url: str, layout: DemoLayout, *, label: str = "demo environment") -> str:
    """Leave a demo environment one revision behind dev on the old history; say what was done.

    Run before the reset, the way teams squash while staging is a revision behind: the
    old history's downgrade of its head (:data:`DEMO_OLD_HEAD`, "add stock transfers and
    notifications") runs through Alembic's command API on one shared connection, leaving
    the database at :data:`DEMO_DRIFT_REVISION` (the old head's parent). After the reset
    that environment is ``behind_archive`` and ``stamp_<env>`` with ``catch_up: true``
    brings it to the baseline.

    Idempotent: a database already at :data:`DEMO_DRIFT_REVISION` is left as it is, and so
    is one at a revision the old history does not hold (past the reset: the baseline);
    only one at a revision of the old history other than these two (nothing the demo
    builds) is refused with a :class:`~abparts_ops.core.errors.MigrationError`. The
    database is changed only in the transaction of the downgrade.
    """
    engine = make_engine(url, label=label)
    try:
        with _history_ini(layout) as ini, connect(engine, label=label) as conn:
            current = current_revisions(conn) or ()
            if current == (DEMO_DRIFT_REVISION,):
                return (
                    f"{label} is already one revision behind dev ({DEMO_DRIFT_REVISION}): "
                    "left as it is"
                )
            cfg = Config(str(ini))
            cfg.attributes["connection"] = conn
            if current != (DEMO_OLD_HEAD,):
                old_history = {
                    rev.revision for rev in ScriptDirectory.from_config(cfg).walk_revisions()
                }
                known = [rev for rev in current if rev in old_history]
                was = ", ".join(current) or "(no revision)"
                if current and not known and DEMO_UNKNOWN_REVISION not in current:
                    return (
                        f"{label} is at {was}, past the reset (not on the old history): "
                        "left as it is"
                    )
                raise MigrationError(
                    f"{label} is at {was}, not at the old head {DEMO_OLD_HEAD}: the demo "
                    "leaves behind only an environment at the old head (dev or staging "
                    "before the reset); nothing was changed."
                )
            _alembic(
                lambda: command.downgrade(cfg, DEMO_DRIFT_REVISION),
                f"{label}: the downgrade by one revision failed",
                url,
            )
            conn.commit()
    finally:
        engine.dispose()
    return (
        f"{label} left one revision behind dev: the old history's downgrade ran, "
        f"{DEMO_OLD_HEAD} -> {DEMO_DRIFT_REVISION}"
    )


# --------------------------------------------------------------------------- stamps
def stamp_run_config(environment: str, *, protected: bool = False) -> dict[str, object]:
    """Run config of ``stamp_<environment>`` for a real stamp (``confirm`` when protected)."""
    config: dict[str, object] = {"dry_run": False}
    if protected:
        config["confirm"] = environment
    return {"ops": {f"{environment}__alembic_stamp": {"config": config}}}


def write_stamp_configs(layout: DemoLayout) -> dict[str, Path]:
    """Write ``stamp_<env>.yaml`` next to the demo configuration, one per environment.

    The demo's own run configs, in the order the runbook stamps: the source (dev) first,
    then staging, then prod (protected: its confirmation is in the file, because this is
    the demo). Returns env -> path; rewritten only when the content differs.
    """
    paths: dict[str, Path] = {}
    for env in DEMO_ENVIRONMENTS:
        path = layout.root / f"stamp_{env}.yaml"
        # JSON is YAML: no extra dependency, and `dagster job execute -c` reads it.
        text = (
            json.dumps(stamp_run_config(env, protected=env == PROTECTED_ENVIRONMENT), indent=2)
            + "\n"
        )
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            _write_text_atomic(path, text)
        paths[env] = path
    return paths


# --------------------------------------------------------------------------- drift
def _column_default(conn: Connection, table: str, column: str) -> str | None:
    return conn.exec_driver_sql(
        "SELECT column_default FROM information_schema.columns "
        "WHERE table_schema = current_schema() AND table_name = %(t)s AND column_name = %(c)s",
        {"t": table, "c": column},
    ).scalar()


def introduce_drift(url: str, kind: str = "index") -> str:
    """Change a demo database by hand, the way drift happens, and describe the change.

    ``kind``: ``"index"`` adds index ``drift_demo_idx`` on ``parts (name, created_at)``;
    ``"default"`` changes the default of ``parts.unit_of_measure`` to ``'units'``;
    ``"revision"`` rewrites ``alembic_version`` to another known revision
    (:data:`DEMO_DRIFT_REVISION`). Returns one line saying what changed.
    """
    if kind not in DRIFT_KINDS:
        raise ValueError(f"drift kind must be one of {', '.join(DRIFT_KINDS)}; got {kind!r}")
    engine = make_engine(url, label="demo drift")
    try:
        with connect(engine, label="demo drift") as conn, conn.begin():
            if kind == "index":
                conn.exec_driver_sql(
                    f"CREATE INDEX IF NOT EXISTS {DRIFT_INDEX} ON parts (name, created_at)"
                )
                return f"added index {DRIFT_INDEX} on parts (name, created_at) by hand"
            if kind == "default":
                before = _column_default(conn, "parts", "unit_of_measure")
                conn.exec_driver_sql(
                    "ALTER TABLE parts ALTER COLUMN unit_of_measure "
                    f"SET DEFAULT {_literal(_DRIFT_DEFAULT)}"
                )
                return (
                    f"changed the default of parts.unit_of_measure from {before} to "
                    f"'{_DRIFT_DEFAULT}' by hand"
                )
            current = [
                str(row[0])
                for row in conn.exec_driver_sql("SELECT version_num FROM alembic_version").all()
            ]
            conn.exec_driver_sql("DELETE FROM alembic_version")
            conn.exec_driver_sql(
                "INSERT INTO alembic_version (version_num) VALUES (%(rev)s)",
                {"rev": DEMO_DRIFT_REVISION},
            )
            was = ", ".join(current) or "(none)"
            return f"rewrote alembic_version from {was} to {DEMO_DRIFT_REVISION} by hand"
    finally:
        engine.dispose()


def remove_drift(url: str) -> None:
    """Undo :func:`introduce_drift`'s schema changes (the index, and the default if changed).

    A rewritten ``alembic_version`` is not undone here: putting a revision back is a
    stamp, which is the pipeline's job.
    """
    engine = make_engine(url, label="demo drift")
    try:
        with connect(engine, label="demo drift") as conn, conn.begin():
            conn.exec_driver_sql(f"DROP INDEX IF EXISTS {DRIFT_INDEX}")
            default = _column_default(conn, "parts", "unit_of_measure") or ""
            if default.startswith(_literal(_DRIFT_DEFAULT)):
                conn.exec_driver_sql(
                    "ALTER TABLE parts ALTER COLUMN unit_of_measure SET DEFAULT 'pieces'"
                )
    finally:
        engine.dispose()
