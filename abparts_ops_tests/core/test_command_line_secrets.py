"""No secret on a command line: every pg_dump the package runs, for every URL form.

Any local user can read every process's command line (``ps``, ``/proc/<pid>/cmdline``).
A ``pg_dump`` wrapper, found first through ``ABPARTS_OPS_PG_DUMP_DIRS``, records each
call's arguments, the *names* of its environment variables and the mode of the libpq
service file it was given (``PGSERVICEFILE``), then execs the real pg_dump. For each URL
form of the secrets matrix (``abparts_ops_tests/defs/environments/test_secrets_matrix.py``,
plus one with a host list and the other query options), with roles made so that every
form that can connect does connect, the test runs the reset's dumps (the source's
snapshot, ``reference_dump``, ``dump_parity``), a dry-run stamp, the guarded upgrade's
dry run (whose rehearsal dumps the environment), and then ``run_pg_dump`` and
``dump_environment`` directly (so a form that cannot connect still reaches pg_dump).
No recorded argument may contain any encoding of any secret of the URL
(:func:`~abparts_ops.core.db.secrets_of`), nor even its user name; the service file must have
been mode 0600 in a 0700 folder while pg_dump ran, and be gone afterwards.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import sqlalchemy as sa

from abparts_ops.core.db import (
    connect,
    create_database,
    drop_database,
    make_engine,
    secrets_of,
    with_database,
)
from abparts_ops.core.errors import AbpartsOpsError
from abparts_ops.core.history.expected import ExpectedSchemas
from abparts_ops.core.history.expected_build import build_expected_schemas
from abparts_ops.core.history.migrate import upgrade
from abparts_ops.core.history.project import AlembicProject, load_project
from abparts_ops.core.quoting import quote_always
from abparts_ops.core.rollout.rehearsal import dump_environment
from abparts_ops.core.rollout.stamp import guarded_stamp
from abparts_ops.core.rollout.upgrade import guarded_upgrade
from abparts_ops.core.schema.dump import PG_DUMP_DIRS_ENV, find_pg_dump, reference_dump
from abparts_ops.core.schema.dump import run_pg_dump as run_pg_dump_core
from abparts_ops.core.schema.dump_parity import dump_parity
from abparts_ops.core.schema.introspect import take_snapshot
from abparts_ops_tests.core.history.projects import Rev, write_project
from abparts_ops_tests.sql import run_sql

TOKEN = uuid.uuid4().hex[:12]
PASSWORD = f"Sx{TOKEN}Pw"  # ROLE_A's password
COLON_PASSWORD = f"nobody:Cx{TOKEN}Pw"  # ROLE_B's: 'user:nobody:secret' parses so
SPECIAL = f"Sx{TOKEN[:6]}@:/?{TOKEN[6:]}Qw"  # ROLE_C's, percent-encoded in its URL
USER_SECRET = f"Ux{TOKEN}Pw"  # a role whose name is the secret (password in the user field)
USER_PASSWORD = f"Dx{TOKEN}Pw"  # its password, from an ambient PGPASSFILE
SSL_SECRET = f"Kx{TOKEN}Pw"
PASSFILE_DIR = f"Fx{TOKEN}Pw"
SSLKEY = f"/nonexistent/Yx{TOKEN}Pw.key"
ROLE_A, ROLE_B, ROLE_C = (f"abpt_{c}_{TOKEN}" for c in "abc")
ROLES = {ROLE_A: PASSWORD, ROLE_B: COLON_PASSWORD, ROLE_C: SPECIAL, USER_SECRET: USER_PASSWORD}

R001_UP = """
op.create_table('parts', sa.Column('id', sa.BigInteger, primary_key=True),
                sa.Column('name', sa.Text, nullable=False))
"""
R002_UP = "op.add_column('parts', sa.Column('colour', sa.Text, nullable=True))"

#: Forms refused before anything connects (as in the secrets matrix).
REFUSED = {"unencoded_at", "dsn", "dsn_quoted", "bad_port", "asyncpg"}


def _forms(admin_url: str, database: str, passfile: Path) -> dict[str, str]:
    """URL form -> a URL of ``database`` in that form (connecting, when the form can)."""
    parsed = sa.engine.make_url(admin_url)
    host, port = parsed.host, parsed.port
    hp = f"{host}:{port}"
    db = database
    return {
        "userinfo": f"postgresql://{ROLE_A}:{PASSWORD}@{hp}/{db}",
        "query_password": f"postgresql://{ROLE_A}@{hp}/{db}?password={PASSWORD}",
        "password_in_user_field": f"postgresql://{USER_SECRET}@{hp}/{db}",
        "user_with_colon": f"postgresql://{ROLE_B}:{COLON_PASSWORD}@{hp}/{db}",
        "unencoded_at": f"postgresql://{ROLE_A}:Sx{TOKEN[:6]}@{TOKEN[6:]}Pw@{hp}/{db}",
        "percent_encoded": f"postgresql://{ROLE_C}:{quote(SPECIAL, safe='')}@{hp}/{db}",
        "sslpassword": (
            f"postgresql://{ROLE_A}@{hp}/{db}?sslmode=disable&sslpassword={SSL_SECRET}"
        ),
        "passfile": f"postgresql://{ROLE_A}@{hp}/{db}?passfile={passfile}",
        "dsn": f"host={host} port={port} dbname={db} password={PASSWORD}",
        "dsn_quoted": f"host={host} dbname={db} password='{PASSWORD} x'",
        "bad_port": f"postgresql://{ROLE_A}:{PASSWORD}@{host}:54x32/{db}",
        "asyncpg": f"postgresql+asyncpg://{ROLE_A}:{PASSWORD}@{hp}/{db}",
        # Not in the matrix: a host list and the other query options libpq knows.
        "host_list_and_options": (
            f"postgresql://{ROLE_A}:{PASSWORD}@/{db}?host={hp}&host={hp}"
            f"&sslmode=disable&sslkey={quote(SSLKEY, safe='')}"
            "&application_name=abpt%20dump&options=-c%20lock_timeout%3D5000"
            "&connect_timeout=7&target_session_attrs=any"
        ),
    }


FORMS = sorted(_forms("postgresql://u@h:1/d", "d", Path("/p")))


def _found(records: list[dict[str, Any]], needles: set[str]) -> list[tuple[list[str], str]]:
    """(arguments, needle) for each recorded pg_dump argument holding one of ``needles``."""
    return [
        (record["argv"], needle)
        for record in records
        for needle in sorted(needles)
        if any(needle in arg for arg in record["argv"])
    ]


@dataclass
class World:
    """The module's databases, project and expected schemas."""

    admin_url: str
    env_db: str
    stamp_db: str
    project: AlembicProject
    expected: ExpectedSchemas
    passfile: Path
    ambient_passfile: Path
    server_version: str


@pytest.fixture(scope="module")
def server_version(admin_url: str) -> str:
    """The test server's version."""
    engine = make_engine(admin_url)
    try:
        with connect(engine) as conn:
            version = str(conn.exec_driver_sql("SHOW server_version").scalar())
    finally:
        engine.dispose()
    return version


@pytest.fixture(scope="module")
def real_pg_dump(server_version: str) -> Path:
    """The pg_dump of the test server's major version (the wrapper execs it)."""
    found = find_pg_dump(server_version)
    if found is None:
        pytest.skip("no pg_dump of the server's major version")
    return found[0]


@pytest.fixture(scope="module")
def world(
    admin_url: str, server_version: str, real_pg_dump: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[World]:
    """Roles for every form, the environment at r001, a stampable copy, the expectations."""
    root = tmp_path_factory.mktemp("cmdline")
    ini = write_project(
        root / "project", [Rev("r001", None, R001_UP), Rev("r002", "r001", R002_UP)]
    )
    project = load_project(ini_path=ini)
    env_db, stamp_db = f"cmdline_env_{TOKEN}", f"cmdline_stamp_{TOKEN}"
    created: list[str] = []
    made_roles: list[str] = []
    try:
        for role, password in ROLES.items():
            literal = "'" + password.replace("'", "''") + "'"
            run_sql(
                admin_url,
                f"CREATE ROLE {quote_always(role)} LOGIN PASSWORD {literal}; "
                f"GRANT pg_read_all_data TO {quote_always(role)}",
            )
            made_roles.append(role)
        for name in (env_db, stamp_db):
            create_database(admin_url, name)
            created.append(name)
            engine = make_engine(with_database(admin_url, name))
            try:
                with connect(engine) as conn:
                    upgrade(conn, project, "r001")
            finally:
                engine.dispose()
        run_sql(with_database(admin_url, stamp_db), "DROP TABLE alembic_version")
        passfile = root / PASSFILE_DIR / "pgpass"
        passfile.parent.mkdir()
        passfile.write_text(f"*:*:*:{ROLE_A}:{PASSWORD}\n")
        ambient = root / "ambient.pgpass"
        ambient.write_text(f"*:*:*:{USER_SECRET}:{USER_PASSWORD}\n*:*:*:{ROLE_A}:{PASSWORD}\n")
        for path in (passfile, ambient):
            path.chmod(0o600)
        yield World(
            admin_url, env_db, stamp_db, project,
            build_expected_schemas(admin_url, project), passfile, ambient, server_version,
        )
    finally:
        for name in created:
            drop_database(admin_url, name)
        for role in made_roles:
            run_sql(admin_url, f"DROP ROLE IF EXISTS {quote_always(role)}")


WRAPPER = """#!{python}
import json, os, stat, sys
record = {{"program": {name!r}, "argv": sys.argv[1:], "env": sorted(os.environ)}}
path = os.environ.get("PGSERVICEFILE")
if path and os.path.exists(path):
    record["service_file"] = path
    record["mode"] = stat.S_IMODE(os.stat(path).st_mode)
    record["dir_mode"] = stat.S_IMODE(os.stat(os.path.dirname(path)).st_mode)
with open({log!r}, "a", encoding="utf-8") as handle:
    handle.write(json.dumps(record) + "\\n")
os.execv({real!r}, [{real!r}, *sys.argv[1:]])
"""


@pytest.fixture
def recorder(
    real_pg_dump: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Callable[[], list[dict[str, Any]]]:
    """Install the recording pg_dump and pg_restore wrappers; returns a reader of their
    records (the rehearsal's copy with rows pipes one into the other)."""
    folder = tmp_path / "bin"
    folder.mkdir()
    log = tmp_path / "calls.jsonl"
    for name in ("pg_dump", "pg_restore"):
        wrapper = folder / name
        real = real_pg_dump.with_name(name)
        wrapper.write_text(
            WRAPPER.format(python=sys.executable, log=str(log), real=str(real), name=name)
        )
        wrapper.chmod(0o755)
    monkeypatch.setenv(PG_DUMP_DIRS_ENV, str(folder))

    def records() -> list[dict[str, Any]]:
        if not log.exists():
            return []
        return [json.loads(line) for line in log.read_text().splitlines() if line]

    return records


@pytest.mark.parametrize("form", FORMS)
def test_no_secret_on_any_pg_dump_command_line(
    world: World,
    recorder: Callable[[], list[dict[str, Any]]],
    form: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Reset dumps, stamp, upgrade rehearsal, direct dumps: no secret in any argv."""
    monkeypatch.setenv("PGPASSFILE", str(world.ambient_passfile))
    monkeypatch.delenv("PGPASSWORD", raising=False)
    env_url = _forms(world.admin_url, world.env_db, world.passfile)[form]
    stamp_url = _forms(world.admin_url, world.stamp_db, world.passfile)[form]
    built_url = with_database(world.admin_url, world.env_db)
    outcomes: dict[str, Any] = {}

    def step(name: str, call: Callable[[], Any]) -> None:
        try:
            outcomes[name] = call()
        except AbpartsOpsError as exc:
            outcomes[name] = exc

    step("snapshot", lambda: take_snapshot(env_url, source="dev"))
    snapshot = outcomes["snapshot"]
    if not isinstance(snapshot, Exception):
        step("reference_dump", lambda: reference_dump(env_url, snapshot, exclude=[]))
        step("dump_parity", lambda: dump_parity(
            env_url, built_url, server_version=snapshot.server_version,
            built_server_version=snapshot.server_version,
        ))
    step("stamp", lambda: guarded_stamp(
        stamp_url, environment="staging", script=world.project.script(),
        expected=world.expected, target="r001", allow_behind_head=True, dry_run=True,
    ))
    step("upgrade", lambda: guarded_upgrade(
        env_url, environment="staging", project=world.project, expected=world.expected,
        scratch_url=world.admin_url, dry_run=True,
    ))
    version = world.server_version
    step("dump_environment", lambda: dump_environment(env_url, version, environment="staging"))
    step("run_pg_dump", lambda: run_pg_dump_core(
        recorder_pg_dump(), env_url, schema="public", exclude=[], restrict_key=False,
    ))

    records = recorder()
    secrets = secrets_of(env_url) | secrets_of(stamp_url) | secrets_of(world.admin_url)
    users = {user for user in ROLES if user in env_url}
    assert secrets, form
    leaks = _found(records, secrets)
    assert not leaks, f"{form}: a secret on a pg_dump command line: {leaks[:2]}"
    named = _found(records, users)
    assert not named, f"{form}: user info on a pg_dump command line: {named[:2]}"
    dumps = [r for r in records if any(a.startswith("--dbname") for a in r["argv"])]
    for record in dumps:
        assert "PGPASSWORD" not in record["env"], form
        assert record.get("mode") == 0o600, f"{form}: service file mode {record.get('mode')}"
        assert record.get("dir_mode") == 0o700, form
        assert not os.path.exists(record["service_file"]), f"{form}: service file left"
        assert not os.path.exists(os.path.dirname(record["service_file"])), form

    if form in REFUSED:
        assert not dumps, f"{form}: pg_dump ran for a refused URL"
        assert all(isinstance(value, AbpartsOpsError) for value in outcomes.values()), outcomes
    else:
        failures = {k: v for k, v in outcomes.items() if isinstance(v, Exception)}
        assert not failures, f"{form}: {failures}"
        assert outcomes["reference_dump"].method == "pg_dump"
        assert "CREATE TABLE public.parts" in outcomes["reference_dump"].text
        assert outcomes["dump_parity"].identical, outcomes["dump_parity"].summary()
        assert outcomes["stamp"].action == "dry_run"
        rehearsal = outcomes["upgrade"].rehearsal
        assert rehearsal is not None and rehearsal.passed
        assert "CREATE TABLE public.parts" in outcomes["dump_environment"]
        # pg_dump: reference_dump 1, dump_parity 2, the rehearsal's copy 1, the two direct
        # calls; pg_restore: the rehearsal's copy (its rows piped from that pg_dump)
        programs = sorted(record["program"] for record in dumps)
        assert programs == ["pg_dump"] * 6 + ["pg_restore"], programs
        assert rehearsal.copy is not None and rehearsal.copy.mode == "rows"
    for value in outcomes.values():  # and the errors, scrubbed as always
        if isinstance(value, Exception):
            text = str(value)
            assert not [s for s in secrets if len(s) >= 4 and s in text], f"{form}: {text}"


def recorder_pg_dump() -> Path:
    """The wrapper the recorder installed (the first folder of ABPARTS_OPS_PG_DUMP_DIRS)."""
    return Path(os.environ[PG_DUMP_DIRS_ENV].split(os.pathsep)[0]) / "pg_dump"


def test_wrapper_records_a_url_with_the_secret_when_given_one(
    recorder: Callable[[], list[dict[str, Any]]], tmp_path: Path
) -> None:
    """The wrapper itself sees what pg_dump is given (else the test above proves nothing)."""
    subprocess.run(
        [str(recorder_pg_dump()), "--schema-only", f"--dbname=postgresql://x:{PASSWORD}@h/d",
         "--no-password", "--host=/nonexistent"],
        capture_output=True, check=False, timeout=60,
    )
    (record,) = recorder()
    assert any(PASSWORD in arg for arg in record["argv"])
    assert stat.S_IMODE(recorder_pg_dump().stat().st_mode) == 0o755
