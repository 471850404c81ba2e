"""Bad input: one clear error each, naming the environment and the fix, never the password."""

from __future__ import annotations

import socket
import time
import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy.engine import make_url

from abparts_ops.core.db import make_engine, with_database
from abparts_ops.core.errors import AbpartsOpsError, DatabaseError, SchemaError
from abparts_ops.core.schema.introspect import take_snapshot
from abparts_ops.core.watch.probe import probe


def run_sql(url: str, sql: str, autocommit: bool = False) -> None:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            if autocommit:
                conn = conn.execution_options(isolation_level="AUTOCOMMIT")
            conn.exec_driver_sql(sql)
            conn.commit()
    finally:
        engine.dispose()


def chain(exc: BaseException) -> Iterator[BaseException]:
    """The exception and every exception chained to it (cause or context), once each."""
    seen: set[int] = set()
    todo = [exc]
    while todo:
        current = todo.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        todo.extend(e for e in (current.__cause__, current.__context__) if e is not None)


def assert_secret_free(exc: BaseException, *secrets: str) -> None:
    for item in chain(exc):
        texts = [str(item), repr(item), *(str(arg) for arg in item.args)]
        for secret in secrets:
            assert secret
            for text in texts:
                assert secret not in text, f"password leaked by {type(item).__name__}"


def one_line(exc: BaseException) -> str:
    text = str(exc)
    assert "\n" not in text.strip(), text
    return text


def closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


SECRET = "Sup3r-Secret-pw-" + uuid.uuid4().hex[:8]


def test_unreachable_server() -> None:
    url = f"postgresql://abparts:{SECRET}@127.0.0.1:{closed_port()}/abparts"
    started = time.monotonic()
    with pytest.raises(DatabaseError) as info:
        take_snapshot(url, source="staging", connect_timeout=3)
    assert time.monotonic() - started < 10
    message = one_line(info.value)
    assert message.startswith("staging: ")
    assert "check that the server is running and the host/port in the URL" in message
    assert "***" in message  # the URL is shown, redacted
    assert_secret_free(info.value, SECRET)

    started = time.monotonic()
    with pytest.raises(DatabaseError) as info:
        probe(url, environment="prod", timeout_s=3)
    assert time.monotonic() - started < 10
    assert one_line(info.value).startswith("prod: ")
    assert_secret_free(info.value, SECRET)


@pytest.fixture
def role(admin_url: str) -> Iterator[tuple[str, str]]:
    name = f"r_{uuid.uuid4().hex[:10]}"
    password = "Right-" + uuid.uuid4().hex
    run_sql(admin_url, f"CREATE ROLE {name} LOGIN PASSWORD '{password}'", autocommit=True)
    yield name, password
    run_sql(admin_url, f"DROP ROLE IF EXISTS {name}", autocommit=True)


def test_wrong_password(fresh_db: str, role: tuple[str, str]) -> None:
    name, right = role
    url = make_url(fresh_db).set(username=name, password=SECRET)
    rendered = url.render_as_string(hide_password=False)
    with pytest.raises(DatabaseError) as info:
        take_snapshot(rendered, source="staging")
    message = one_line(info.value)
    assert message.startswith("staging: ")
    assert "password authentication failed" in message
    assert "check the user and password in this environment's URL variable" in message
    assert_secret_free(info.value, SECRET, right)

    with pytest.raises(DatabaseError) as info:
        probe(rendered, environment="prod")
    assert one_line(info.value).startswith("prod: ")
    assert_secret_free(info.value, SECRET, right)

    # the right password works: the role is fine, only the password was wrong
    good = url.set(password=right).render_as_string(hide_password=False)
    run_sql(fresh_db, "CREATE TABLE t (id int);")
    assert take_snapshot(good, source="staging").table_names() == ["t"]


def test_database_does_not_exist(admin_url: str) -> None:
    missing = f"nope_{uuid.uuid4().hex[:8]}"
    url = with_database(admin_url, missing)
    password = make_url(admin_url).password
    with pytest.raises(DatabaseError) as info:
        take_snapshot(url, source="staging")
    message = one_line(info.value)
    assert message.startswith("staging: ")
    assert missing in message
    assert "create the database or fix the database name in the URL" in message
    if password:
        assert_secret_free(info.value, str(password))

    with pytest.raises(DatabaseError) as info:
        probe(url, environment="prod")
    assert one_line(info.value).startswith("prod: ")
    if password:
        assert_secret_free(info.value, str(password))


def test_empty_database(fresh_db: str) -> None:
    with pytest.raises(SchemaError) as info:
        take_snapshot(fresh_db, source="staging")
    message = one_line(info.value)
    assert message.startswith("staging: ")
    assert "has no tables" in message and "URL" in message

    snap = take_snapshot(fresh_db, source="staging", require_tables=False)
    assert snap.table_names() == []
    assert snap.probe_fingerprint == probe(fresh_db, environment="staging").fingerprint


def test_only_excluded_tables_counts_as_empty(fresh_db: str) -> None:
    run_sql(
        fresh_db,
        "CREATE TABLE alembic_version (version_num varchar(32) PRIMARY KEY);"
        "CREATE TABLE knowledge_documents (id int);",
    )
    with pytest.raises(SchemaError, match=r"^dev: .*no tables \(after exclusions\)"):
        take_snapshot(fresh_db, source="dev", exclude=["knowledge_documents"])
    assert take_snapshot(fresh_db, source="dev").table_names() == ["knowledge_documents"]


def test_schema_does_not_exist(fresh_db: str) -> None:
    run_sql(fresh_db, "CREATE TABLE t (id int);")
    with pytest.raises(SchemaError) as info:
        take_snapshot(fresh_db, source="staging", schema="no_such_schema")
    message = one_line(info.value)
    assert message.startswith("staging: ")
    assert "'no_such_schema' does not exist" in message and "`schema` setting" in message

    with pytest.raises(SchemaError) as info:
        probe(fresh_db, environment="prod", schema="no_such_schema")
    message = one_line(info.value)
    assert message.startswith("prod: ") and "'no_such_schema' does not exist" in message


def test_broken_version_table_is_a_clear_probe_error(fresh_db: str) -> None:
    run_sql(fresh_db, "CREATE TABLE t (id int); CREATE TABLE alembic_version (v text);")
    with pytest.raises(DatabaseError) as info:
        probe(fresh_db, environment="prod")
    message = one_line(info.value)
    assert message.startswith("prod: ") and "version_num" in message
    password = make_url(fresh_db).password
    if password:
        assert_secret_free(info.value, str(password))


@pytest.mark.parametrize(
    "url, expected",
    [
        (f"mysql://root:{SECRET}@localhost/abparts", "only PostgreSQL is supported"),
        ("not a url at all", "the database URL is not valid"),
    ],
    # fixed ids: the random SECRET in an id would differ between pytest-xdist workers
    ids=["mysql_url", "not_a_url"],
)
def test_invalid_url(url: str, expected: str) -> None:
    with pytest.raises(AbpartsOpsError) as info:
        take_snapshot(url, source="staging")
    message = one_line(info.value)
    assert message.startswith("staging: ") and expected in message
    assert_secret_free(info.value, SECRET)
    with pytest.raises(AbpartsOpsError) as info:
        probe(url, environment="prod")
    assert one_line(info.value).startswith("prod: ")
    assert_secret_free(info.value, SECRET)
