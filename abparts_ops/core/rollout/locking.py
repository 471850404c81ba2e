"""The PostgreSQL advisory lock that serialises stamps and upgrades of one environment.

One key per environment's version table (``abparts_ops:stamp:<schema>.<table>``, hashed
with ``hashtextextended``): every guarded stamp and every guarded upgrade takes it as a
transaction-level lock before it reads the version rows, so two of them never write the
same environment at once. The key formula is the one the stamp has always used; keep it
stable, or a running older process and a newer one would no longer exclude each other.
"""

from __future__ import annotations

import time

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from abparts_ops.core.errors import AbpartsOpsError

LOCK_NAMESPACE = "abparts_ops:stamp"
_POLL_SECONDS = 0.1


class LockBusy(AbpartsOpsError):
    """Another stamp or upgrade holds the environment's lock past the wait allowed."""


def lock_key(schema: str, version_table: str) -> str:
    """The advisory lock's key text for the version table ``schema.version_table``."""
    return f"{LOCK_NAMESPACE}:{schema}.{version_table}"


def acquire_environment_lock(
    conn: Connection,
    *,
    schema: str,
    version_table: str,
    timeout_s: float,
    environment: str,
    what: str = "stamp or upgrade",
) -> float:
    """Take the environment's lock for the current transaction; return the wait in ms.

    Polls ``pg_try_advisory_xact_lock`` (so a waiting run never queues behind a lock it
    cannot see, and gives up after ``timeout_s``). The lock is released when the
    transaction of ``conn`` ends. Raises :class:`LockBusy` naming the environment.
    """
    key = lock_key(schema, version_table)
    started = time.perf_counter()
    deadline = started + timeout_s
    while True:
        got = conn.execute(
            sa.text("SELECT pg_try_advisory_xact_lock(hashtextextended(:key, 0))"), {"key": key}
        ).scalar()
        if got:
            return (time.perf_counter() - started) * 1000
        if time.perf_counter() >= deadline:
            raise LockBusy(
                f"{environment}: another stamp or upgrade holds the lock on its version "
                f"table; waited {timeout_s:g} s (wait for that run to finish, then run this "
                f"{what} again)."
            )
        time.sleep(_POLL_SECONDS)
