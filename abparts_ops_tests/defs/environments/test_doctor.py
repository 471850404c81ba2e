"""``abparts-ops doctor`` tells the truth: shared databases, bad URLs, CREATE, scratch."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from abparts_ops.cli import FOUND, main
from abparts_ops.core.db import make_engine
from abparts_ops.core.settings import CONFIG_ENV
from abparts_ops_tests.defs.environments.conftest import VARIABLES, Pipeline


def _admin(url: str, *statements: str) -> None:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            auto = conn.execution_options(isolation_level="AUTOCOMMIT")
            for sql in statements:
                auto.exec_driver_sql(sql)
    finally:
        engine.dispose()


def _as(url: str, role: str, password: str, database: str | None = None) -> str:
    parsed = sa.engine.make_url(url).set(username=role, password=password)
    if database:
        parsed = parsed.set(database=database)
    return parsed.render_as_string(hide_password=False)


@pytest.fixture
def configured(pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Fresh staging/prod, and ABPARTS_OPS_CONFIG pointing at the package's config."""
    monkeypatch.setenv(CONFIG_ENV, str(pipeline.layout.root / "abparts_ops_envtest.yaml"))
    return pipeline.fresh_environments(monkeypatch)


@pytest.fixture
def weak_role(pipeline: Pipeline) -> Iterator[tuple[str, str, str]]:
    """A role without CREATEDB, and an empty database it may connect to but not CREATE in."""
    role = f"abpt_weak_{uuid.uuid4().hex[:8]}"
    database = f"{role}_db"
    password = f"pw{uuid.uuid4().hex}"
    _admin(
        pipeline.admin_url,
        f"CREATE ROLE {role} LOGIN NOCREATEDB PASSWORD '{password}'",
        f"CREATE DATABASE {database}",
        f"GRANT CONNECT ON DATABASE {database} TO {role}",
    )
    try:
        yield role, password, database
    finally:
        _admin(
            pipeline.admin_url,
            f"DROP DATABASE IF EXISTS {database} WITH (FORCE)",
            f"DROP ROLE IF EXISTS {role}",
        )


def test_two_environments_on_one_database(configured, monkeypatch, capsys):
    """staging pointed at prod's database (through another host name): exit 1, named."""
    alias = sa.engine.make_url(configured["prod"]).set(host="localhost")
    monkeypatch.setenv(VARIABLES["staging"], alias.render_as_string(hide_password=False))
    assert main(["doctor"]) == FOUND
    out = capsys.readouterr().out
    assert "✗ staging and prod: resolve to the same database" in out
    assert "✓ dev: reachable" in out and "✓ scratch: can create and drop a database" in out


@pytest.mark.parametrize(
    "url, expected",
    [
        ("postgresql://u:Pw-Bad-Port@127.0.0.1:notaport/x", "has a port that is not a number"),
        ("postgresql+asyncpg://u:Pw-Bad-Port@127.0.0.1/x", "names the driver 'asyncpg'"),
        ("postgresql://u:Pw@Bad-Port@127.0.0.1/x", "unencoded '@'"),
        ("host=127.0.0.1 password=Pw-Bad-Port", "key=value connection string"),
    ],
)
def test_bad_url_is_one_line_and_doctor_goes_on(configured, monkeypatch, capsys, url, expected):
    """A bad URL names the variable, never the value, and the others are still checked."""
    monkeypatch.setenv(VARIABLES["staging"], url)
    assert main(["doctor"]) == FOUND
    captured = capsys.readouterr()
    lines = [line for line in captured.out.splitlines() if line.startswith("✗ staging:")]
    assert len(lines) == 1 and expected in lines[0], captured.out
    assert VARIABLES["staging"] in lines[0]
    assert "✓ prod: reachable" in captured.out and "✓ dev: reachable" in captured.out
    assert "Bad-Port" not in captured.out + captured.err


def test_missing_create_and_scratch_without_createdb(
    pipeline: Pipeline, configured, monkeypatch, capsys, weak_role
):
    """No version table and no CREATE on the schema; a scratch role without CREATEDB."""
    role, password, database = weak_role
    admin = configured["staging"]
    monkeypatch.setenv(VARIABLES["staging"], _as(admin, role, password, database))
    monkeypatch.setenv(VARIABLES["scratch"], _as(admin, role, password, database))
    assert main(["doctor"]) == FOUND
    out = capsys.readouterr().out
    assert "✗ staging: missing CREATE on schema public (alembic_version does not exist" in out
    assert "✗ scratch:" in out and "may not create databases" in out
    assert password not in out
    in_weak = sa.engine.make_url(pipeline.admin_url).set(database=database)
    grant = f"GRANT CREATE ON SCHEMA public TO {role}"
    _admin(in_weak.render_as_string(hide_password=False), grant)
    assert main(["doctor"]) == FOUND  # the scratch server still may not create databases
    out = capsys.readouterr().out
    assert "✓ staging: reachable, privileges ok" in out and "✗ scratch:" in out
