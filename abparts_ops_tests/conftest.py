"""Session fixtures: one real PostgreSQL for the whole run, one database per test.

The server is the embedded one (under ``.abparts_ops/test``), or the server named by
``ABPARTS_OPS_TEST_DATABASE_URL`` (any database there; the role needs CREATEDB).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from abparts_ops.core.db import create_database, drop_database, with_database
from abparts_ops.embedded.server import EmbeddedPostgres

pytest_plugins = ["pytester", "abparts_ops_tests.report_scrub"]

REPO = Path(__file__).resolve().parents[1]
TEST_HOME = REPO / ".abparts_ops" / "test"


@pytest.fixture(scope="session")
def admin_url() -> str:
    """URL of the maintenance database on the test server (its secrets kept out of reports)."""
    from abparts_ops_tests.report_scrub import register_url

    external = os.environ.get("ABPARTS_OPS_TEST_DATABASE_URL")
    if external:
        register_url(external)
        return external
    server = EmbeddedPostgres(TEST_HOME)
    info = server.start()
    url = info.url("postgres")
    register_url(url)
    return url


@pytest.fixture
def db_factory(admin_url: str) -> Iterator[Callable[..., str]]:
    """Create fresh databases (optionally from a template); all dropped after the test."""
    created: list[str] = []

    def make(prefix: str = "t", template: str | None = None) -> str:
        name = f"{prefix}_{uuid.uuid4().hex[:12]}"
        create_database(admin_url, name, template=template)
        created.append(name)
        return with_database(admin_url, name)

    yield make
    for name in created:
        drop_database(admin_url, name)


@pytest.fixture
def fresh_db(db_factory: Callable[..., str]) -> str:
    """URL of an empty database of its own for this test."""
    return db_factory()
