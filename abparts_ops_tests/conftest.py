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


DATABASE_FIXTURE = "admin_url"


def pytest_configure(config: pytest.Config) -> None:
    """Declare the ``db`` marker (applied by collection, never by hand)."""
    config.addinivalue_line(
        "markers",
        "db: the test needs the test PostgreSQL (set automatically from its fixtures); "
        "`pytest -m 'not db'` is the fast loop",
    )


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist reads the xdist_group marks
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark ``db`` every test whose fixtures reach the test server, or that is end-to-end.

    Every database fixture depends on ``admin_url``, so the fixture closure says it:
    a new test is classified by what it asks for, and no list is kept by hand.

    Each test also gets its ``xdist_group`` (see :func:`_xdist_group`), used when
    ``scripts/test`` runs the suite on several workers (``-n 2 --dist loadgroup
    --no-loadscope-reorder``); there the end-to-end tests, the longest, are put first so
    that no worker starts one last.
    """
    for item in items:
        if DATABASE_FIXTURE in getattr(item, "fixturenames", ()) or item.get_closest_marker("e2e"):
            item.add_marker(pytest.mark.db)
        if item.get_closest_marker("xdist_group") is None:
            item.add_marker(pytest.mark.xdist_group(_xdist_group(item)))
    if os.environ.get("PYTEST_XDIST_WORKER"):
        items.sort(key=lambda item: item.get_closest_marker("e2e") is None)


def _xdist_group(item: pytest.Item) -> str:
    """The worker-sharing unit of a test: its package-scoped fixture's package, or its file.

    A package-scoped fixture (the CLI's world, the drift watch, the environments'
    pipeline) is built once per worker that runs one of its tests, and module-scoped ones
    once per worker per module: a group keeps each on one worker. Tests that share state
    outside any fixture (the demo in the test server's home) name their group themselves.
    """
    definitions = getattr(item, "_fixtureinfo", None)
    for defs in getattr(definitions, "name2fixturedefs", {}).values():
        for fixturedef in defs:
            if fixturedef.scope == "package":
                return f"package:{fixturedef.baseid}"
    return f"file:{item.nodeid.split('::')[0]}"


@pytest.fixture(autouse=True)
def _no_database_without_the_marker(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Keep the ``db`` marker true: a test without it cannot start or reach a server.

    A test that connects without asking for a database fixture fails here with the fix,
    instead of silently making ``pytest -m 'not db'`` slow or dependent on a server.
    """
    if request.node.get_closest_marker("db"):
        return
    import psycopg2

    real_connect = psycopg2.connect

    def refuse(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError(
            f"{request.node.nodeid} reaches PostgreSQL without a database fixture: "
            f"request `{DATABASE_FIXTURE}` (or a fixture built on it), or mark it "
            "`@pytest.mark.db` if it starts a server of its own"
        )

    def connect_nowhere(*args: object, **kwargs: object) -> object:
        """Let a test prove what an unreachable server does; refuse one that answers."""
        connection = real_connect(*args, **kwargs)
        connection.close()
        refuse()

    monkeypatch.setattr(psycopg2, "connect", connect_nowhere)
    monkeypatch.setattr(EmbeddedPostgres, "start", refuse)
