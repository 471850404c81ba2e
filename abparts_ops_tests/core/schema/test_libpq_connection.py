"""libpq_connection: what pg_dump is given to connect, and that it really connects.

The service file's content for each kind of URL parameter, its mode and its removal
(after an error and after a pg_dump timeout); the values a service file cannot hold
(a password ending in a space goes in PGPASSWORD, anything else is refused); a
``service=`` of the URL; and, against the test server, a long password and one ending in
a space reaching pg_dump intact.
"""

from __future__ import annotations

import stat
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
from sqlalchemy.engine import make_url

from abparts_ops.core.errors import DatabaseError
from abparts_ops.core.quoting import quote_always
from abparts_ops.core.schema.dump import (
    SERVICE_NAME,
    find_pg_dump,
    libpq_connection,
    libpq_params,
    run_pg_dump,
)
from abparts_ops_tests.sql import run_sql

TOKEN = uuid.uuid4().hex[:10]
SECRET = f"Sx{TOKEN}Pw"


def _service(url: str) -> tuple[list[str], dict[str, str], dict[str, str]]:
    """(arguments, environment, the service file's key=value pairs) for ``url``."""
    with libpq_connection(url, label="staging") as (args, env):
        lines = Path(env["PGSERVICEFILE"]).read_text().splitlines()
    assert lines[0] == f"[{SERVICE_NAME}]"
    return args, env, dict(line.split("=", 1) for line in lines[1:])


def test_every_url_parameter_goes_to_a_private_service_file_and_nothing_to_argv() -> None:
    url = (
        f"postgresql://abpt:{quote(SECRET + '@:/', safe='')}@/parts?host=db1:5432&host=db2:5433"
        f"&sslmode=verify-full&sslpassword={SECRET}k&sslkey=/keys/{SECRET}.key"
        f"&passfile=/run/{SECRET}.pgpass&options=-c%20lock_timeout%3D5000"
        "&application_name=abparts%20ops&target_session_attrs=read-write&connect_timeout=3"
    )
    args, env, service = _service(url)
    assert args == [f"--dbname=service={SERVICE_NAME}"]
    assert service == {
        "host": "db1,db2",
        "port": "5432,5433",
        "user": "abpt",
        "dbname": "parts",
        "password": SECRET + "@:/",
        "sslmode": "verify-full",
        "sslpassword": SECRET + "k",
        "sslkey": f"/keys/{SECRET}.key",
        "passfile": f"/run/{SECRET}.pgpass",
        "options": "-c lock_timeout=5000",
        "application_name": "abparts ops",
        "target_session_attrs": "read-write",
        "connect_timeout": "3",
    }
    assert "PGPASSWORD" not in env and env["PGCONNECT_TIMEOUT"] == "10"


def test_service_file_is_0600_in_a_0700_folder_and_removed_even_on_error() -> None:
    with pytest.raises(RuntimeError):
        with libpq_connection(f"postgresql://u:{SECRET}@h/d", label="staging") as (_, env):
            path = Path(env["PGSERVICEFILE"])
            assert stat.S_IMODE(path.stat().st_mode) == 0o600
            assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
            raise RuntimeError("boom")
    assert not path.exists() and not path.parent.exists()


def test_inherited_password_and_service_variables_are_dropped(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PGPASSWORD", "inherited")
    monkeypatch.setenv("PGSERVICEFILE", "/nonexistent/other.conf")
    monkeypatch.setenv("PGSSLROOTCERT", "/etc/ca.pem")
    _args, env, service = _service("postgresql://u@h/d")
    assert "PGPASSWORD" not in env and "password" not in service
    assert env["PGSERVICEFILE"] != "/nonexistent/other.conf"
    assert env["PGSSLROOTCERT"] == "/etc/ca.pem"  # the rest of libpq's variables still apply


def test_values_a_service_file_cannot_hold() -> None:
    _args, env, service = _service(f"postgresql://u:{quote(SECRET + ' ')}@h/d")
    assert env["PGPASSWORD"] == SECRET + " " and "password" not in service
    for bad in (f"{SECRET}%0Ahost=evil", f"{SECRET}%20"):
        with pytest.raises(DatabaseError) as caught:
            _service(f"postgresql://u@h/d?sslpassword={bad}")
        assert "sslpassword" in str(caught.value) and SECRET not in str(caught.value)
        assert str(caught.value).startswith("staging: ")
    with pytest.raises(DatabaseError) as caught:
        _service(f"postgresql://u@h/d?sslmode=disable&sslmode={SECRET}")
    assert "more than once" in str(caught.value) and SECRET not in str(caught.value)


def test_a_service_of_the_url_is_copied_after_the_url_parameters(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    own = tmp_path / "pg_service.conf"
    own.write_text(
        "# mine\n[other]\nhost=wrong\n[prod]\nhost=db.internal\n  port=6432\nuser=svc\n"
        "[after]\nhost=wrong\n"
    )
    monkeypatch.setenv("PGSERVICEFILE", str(own))
    with libpq_connection(
        f"postgresql://app:{SECRET}@/parts?service=prod", label="staging"
    ) as (args, env):
        text = Path(env["PGSERVICEFILE"]).read_text().splitlines()
    assert args == [f"--dbname=service={SERVICE_NAME}"]
    assert text[0] == f"[{SERVICE_NAME}]" and "service=prod" not in text
    # the URL's own keywords first: libpq keeps the first value of a keyword
    assert text.index("user=app") < text.index("user=svc")
    assert text[-3:] == ["host=db.internal", "port=6432", "user=svc"]
    monkeypatch.setenv("PGSERVICE", "prod")
    assert _service("postgresql://app@/parts")[2]["host"] == "db.internal"
    monkeypatch.setenv("PGSYSCONFDIR", str(tmp_path / "none"))
    with pytest.raises(DatabaseError) as caught:
        _service("postgresql://app@/parts?service=missing")
    assert "'missing'" in str(caught.value) and str(own) in str(caught.value)


def test_libpq_params_are_what_psycopg2_is_given() -> None:
    params = libpq_params("postgres://u:p@[::1]:5433/d?sslmode=require", label="x")
    assert params == {
        "host": "::1", "port": "5433", "user": "u", "password": "p", "dbname": "d",
        "sslmode": "require",
    }
    with pytest.raises(DatabaseError):
        libpq_params(f"postgresql+asyncpg://u:{SECRET}@h/d", label="x")


@pytest.fixture
def server(admin_url: str) -> Iterator[tuple[str, Path]]:
    """(admin URL, pg_dump of the server's major version), or skip."""
    from abparts_ops.core.schema.introspect import take_snapshot

    version = take_snapshot(admin_url, require_tables=False).server_version
    found = find_pg_dump(version)
    if found is None:
        pytest.skip("no pg_dump of the server's major version")
    yield admin_url, found[0]


@pytest.mark.parametrize("password", ["long", "trailing_space"])
def test_passwords_reach_pg_dump_intact(
    server: tuple[str, Path], fresh_db: str, password: str
) -> None:
    admin_url, pg_dump = server
    value = {"long": SECRET * 40 + "'\\\"=#", "trailing_space": SECRET + "  "}[password]
    role = f"abpt_pw_{TOKEN}_{password}"
    literal = "'" + value.replace("'", "''") + "'"
    run_sql(admin_url, f"CREATE ROLE {quote_always(role)} LOGIN PASSWORD {literal}")
    try:
        run_sql(fresh_db, "CREATE TABLE t (id int)")
        url = make_url(fresh_db).set(username=role, password=value)
        url = url.render_as_string(hide_password=False)
        run_sql(admin_url, f"GRANT pg_read_all_data TO {quote_always(role)}")
        dump = run_pg_dump(pg_dump, url, schema="public", exclude=[], restrict_key=False)
        assert "CREATE TABLE public.t" in dump
    finally:
        run_sql(admin_url, f"DROP ROLE {quote_always(role)}")


def test_a_pg_dump_timeout_removes_the_service_file(tmp_path: Path) -> None:
    seen = tmp_path / "seen"
    slow = tmp_path / "pg_dump"
    slow.write_text(
        f"#!{sys.executable}\nimport os, time\n"
        f"open({str(seen)!r}, 'w').write(os.environ['PGSERVICEFILE'])\ntime.sleep(30)\n"
    )
    slow.chmod(0o755)
    with pytest.raises(DatabaseError) as caught:
        run_pg_dump(
            slow, f"postgresql://u:{SECRET}@h/d", schema="public", exclude=[],
            restrict_key=False, timeout=2,
        )
    assert "did not finish within 2 s" in str(caught.value) and SECRET not in str(caught.value)
    path = Path(seen.read_text())
    assert path.name == "pg_service.conf" and not path.exists() and not path.parent.exists()
