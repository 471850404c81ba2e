"""scratch_database: always dropped, leftovers cleaned, a role without CREATEDB refused."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from abparts_ops.core.db import create_database, drop_database, make_engine
from abparts_ops.core.errors import DatabaseError, MigrationError
from abparts_ops.core.scratch import (
    cleanup_leftovers,
    parse_scratch_name,
    scratch_database,
    scratch_name,
)

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def prefix(admin_url: str) -> Iterator[str]:
    """A prefix of this test's own; anything left with it is dropped afterwards."""
    value = f"t_scr_{uuid.uuid4().hex[:8]}"
    yield value
    for name in _databases(admin_url, value):
        drop_database(admin_url, name)


def _databases(admin_url: str, prefix: str) -> list[str]:
    engine = make_engine(admin_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                sa.text("SELECT datname FROM pg_database WHERE starts_with(datname, :p)"),
                {"p": prefix},
            ).scalars()
            return sorted(rows)
    finally:
        engine.dispose()


def test_name_pattern() -> None:
    when = datetime(2024, 1, 31, 23, 59, 58, tzinfo=UTC)
    name = scratch_name("abparts_scratch", now=when, pid=4242, token="0a1b2c3d")
    assert name == "abparts_scratch_20240131235958_4242_0a1b2c3d"
    assert parse_scratch_name(name) == (when, 4242)
    assert parse_scratch_name(name + "x") is None
    assert parse_scratch_name("abparts_scratch_keep") is None
    assert parse_scratch_name("abparts_scratch_x_20240131235958_4242_0a1b2c3d") is None
    assert len(scratch_name("a" * 31, pid=4194304)) <= 63
    with pytest.raises(MigrationError):
        scratch_name("Bad-Prefix")


def test_yields_a_usable_database_and_drops_it(admin_url: str, prefix: str) -> None:
    with scratch_database(admin_url, prefix=prefix) as url:
        name = make_url(url).database
        assert name is not None and parse_scratch_name(name, prefix) is not None
        assert _databases(admin_url, prefix) == [name]
        engine = make_engine(url)
        with engine.connect() as conn:
            conn.exec_driver_sql("CREATE TABLE t (id int)")
            conn.commit()
        engine.dispose()
    assert _databases(admin_url, prefix) == []


@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt])
def test_dropped_on_exception_even_with_an_open_session(
    admin_url: str, prefix: str, error: type[BaseException]
) -> None:
    engine = None
    with pytest.raises(error):
        with scratch_database(admin_url, prefix=prefix) as url:
            engine = make_engine(url)
            conn = engine.connect()
            conn.exec_driver_sql("SELECT 1")  # a session stays open on the database
            raise error("boom")
    assert _databases(admin_url, prefix) == []
    assert engine is not None
    engine.dispose()


def test_leftover_cleanup(admin_url: str, prefix: str) -> None:
    # A run that is killed inside the block leaves its database behind...
    code = textwrap.dedent(
        f"""
        import os, signal
        from abparts_ops.core.scratch import scratch_database
        with scratch_database({admin_url!r}, prefix={prefix!r}) as url:
            print(url.rsplit("/", 1)[1], flush=True)
            os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == -9, proc.stderr
    killed = proc.stdout.strip()
    assert _databases(admin_url, prefix) == [killed]

    now = datetime.now(UTC)
    old = scratch_name(prefix, now=now - timedelta(hours=30), pid=os.getpid())
    mine = scratch_name(prefix, now=now, pid=os.getpid())  # alive: kept
    foreign = scratch_name(prefix, now=now, pid=1_999_999)  # no host comment: kept
    unrelated = f"{prefix}_keep_me"  # not the exact pattern: never touched
    for name in (old, mine, foreign, unrelated):
        create_database(admin_url, name)

    dropped = cleanup_leftovers(admin_url, prefix=prefix, max_age_hours=6)

    assert sorted(dropped) == sorted([killed, old])
    assert _databases(admin_url, prefix) == sorted([mine, foreign, unrelated])

    # ... and a new scratch database does the same cleanup before it is created.
    for name in (mine, foreign):
        drop_database(admin_url, name)
    stale = scratch_name(prefix, now=now - timedelta(days=2), pid=os.getpid())
    create_database(admin_url, stale)
    with scratch_database(admin_url, prefix=prefix) as url:
        assert _databases(admin_url, prefix) == sorted([make_url(url).database, unrelated])
    assert _databases(admin_url, prefix) == [unrelated]


def test_role_without_createdb_gets_one_clear_line(admin_url: str, prefix: str) -> None:
    role = f"t_nocreatedb_{uuid.uuid4().hex[:8]}"
    password = f"Pw-{uuid.uuid4().hex}"
    engine = make_engine(admin_url)
    with engine.connect() as conn:
        conn.exec_driver_sql(f"CREATE ROLE {role} LOGIN NOCREATEDB PASSWORD '{password}'")
        conn.commit()
    try:
        url = make_url(admin_url).set(username=role, password=password)
        url_text = url.render_as_string(hide_password=False)
        with pytest.raises(DatabaseError) as exc:
            with scratch_database(url_text, prefix=prefix):
                pytest.fail("must not get a database")
        text = str(exc.value)
        assert password not in text
        assert "\n" not in text
        assert url.render_as_string(hide_password=True) in text
        assert "grant CREATEDB to the role" in text
        assert "scratch.url_env" in text
        assert role in text
        assert _databases(admin_url, prefix) == []
    finally:
        with engine.connect() as conn:
            conn.exec_driver_sql(f"DROP ROLE IF EXISTS {role}")
            conn.commit()
        engine.dispose()
