"""Small SQL helpers the tests share: run a script, read the version rows."""

from __future__ import annotations

from abparts_ops.core.db import make_engine
from abparts_ops.core.history.migrate import current_revisions


def run_sql(url: str, sql: str) -> None:
    """Execute ``sql`` (several statements allowed) on ``url`` in one committed transaction."""
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql(sql)
    finally:
        engine.dispose()


def version_rows(url: str) -> tuple[str, ...] | None:
    """The version table's rows, sorted (None when it does not exist)."""
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return current_revisions(conn)
    finally:
        engine.dispose()
