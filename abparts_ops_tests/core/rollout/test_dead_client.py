"""Why the apply transaction sets ``client_connection_check_interval``: a real PostgreSQL.

A client takes ACCESS EXCLUSIVE on a table and sleeps in a statement, as a long
revision would; then it is killed with SIGKILL. With the upgrade policy's
``client_check_s`` the server notices the closed connection within seconds, cancels the
statement and releases the lock. Without it, the server runs the dead client's statement
to its end (here ten minutes; in an upgrade, up to ``statement_timeout``) and the table
stays locked: every query of the application waits behind it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from abparts_ops.core.db import connect_dbapi
from abparts_ops.core.rollout.upgrade import UpgradePolicy
from abparts_ops_tests.sql import run_sql

CLIENT = """
import os, sys
from abparts_ops.core.db import connect_dbapi
conn = connect_dbapi(os.environ["ABPT_DEAD_CLIENT_URL"])
conn.autocommit = False
cur = conn.cursor()
interval_ms = int(sys.argv[1])
if interval_ms:
    cur.execute(f"SET LOCAL client_connection_check_interval = {interval_ms}")
cur.execute("LOCK TABLE parts IN ACCESS EXCLUSIVE MODE")
cur.execute("SELECT pg_sleep(600)")
"""
LOCKED = """
SELECT l.pid FROM pg_locks l JOIN pg_class c ON c.oid = l.relation
WHERE c.relname = 'parts' AND l.mode = 'AccessExclusiveLock' AND l.granted
  AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
"""


def _lock_holder(url: str) -> int | None:
    conn = connect_dbapi(url)
    try:
        with conn.cursor() as cur:
            cur.execute(LOCKED)
            row = cur.fetchone()
            return int(row[0]) if row else None
    finally:
        conn.close()


def _wait(predicate, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return predicate()


@pytest.mark.parametrize("checked", [True, False], ids=["client_check", "no_client_check"])
def test_a_killed_client_keeps_its_lock_only_without_the_client_check(
    fresh_db: str, checked: bool
) -> None:
    run_sql(fresh_db, "CREATE TABLE parts (id bigint PRIMARY KEY)")
    policy = UpgradePolicy()
    interval_ms = int(policy.client_check_s * 1000) if checked else 0
    client = subprocess.Popen(
        [sys.executable, "-c", CLIENT, str(interval_ms)],
        env={**os.environ, "ABPT_DEAD_CLIENT_URL": fresh_db},
    )
    backend = None
    try:
        assert _wait(lambda: _lock_holder(fresh_db) is not None, 30), "the client never locked"
        backend = _lock_holder(fresh_db)
        os.kill(client.pid, signal.SIGKILL)
        client.wait(timeout=10)
        # Two check intervals and some slack: what the server needs to notice.
        released = _wait(lambda: _lock_holder(fresh_db) is None, 3 * policy.client_check_s + 2)
        assert released is checked
    finally:
        if client.poll() is None:
            client.kill()
            client.wait(timeout=10)
        if backend is not None:  # the unchecked backend still sleeps: end it
            conn = connect_dbapi(fresh_db)
            try:
                with conn.cursor() as cur:
                    cur.execute("SELECT pg_terminate_backend(%s)", (backend,))
            finally:
                conn.close()
            _wait(lambda: _lock_holder(fresh_db) is None, 10)
