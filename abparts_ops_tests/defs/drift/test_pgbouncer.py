"""The drift sensor through a real PgBouncer, unchanged: only the URLs point at it.

PgBouncer (Debian's ``pgbouncer``; CI installs it, see ``.ci/run``) runs in front of the
test server in transaction pooling, then in session pooling (what README advises when the
URL serves stamps and upgrades too), one pool of one server connection per database. The
sensor's ticks through it agree with the direct probes, reuse the fingerprints while the
catalogs stay unchanged, keep the same server connections from one tick to the next
(what removes the connection cost), leave no setting behind on them (the probe sends no
``options`` startup parameter, which PgBouncer refuses, and sets what it needs with
``SET LOCAL``), and still catch a schema change.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy.engine import make_url

from abparts_ops.core.db import connect_dbapi
from abparts_ops.core.settings import load_settings
from abparts_ops.core.watch.drift import DriftCursor
from abparts_ops.core.watch.probe import probe
from abparts_ops.core.watch.states import EnvironmentState
from abparts_ops.defs.names import ENVIRONMENT_TAG
from abparts_ops.embedded.demo import introduce_drift, remove_drift
from abparts_ops.embedded.pgbouncer import PgBouncerInfo, find_pgbouncer, run_pgbouncer
from abparts_ops_tests.defs.drift.conftest import (
    NAMES,
    Watch,
    config_yaml,
    make_definitions,
    variable,
)

EXCLUDE = ("knowledge_documents", "document_chunks")


def pooled_variable(env: str) -> str:
    """The variable holding ``env``'s URL through PgBouncer in this test."""
    return f"ABPT_DRIFTPGB_{env.upper()}_URL"


@pytest.fixture(params=["transaction", "session"])
def bouncer(watch: Watch, request: pytest.FixtureRequest) -> Iterator[PgBouncerInfo]:
    """PgBouncer in front of the test server, one server connection per database."""
    if find_pgbouncer() is None:
        pytest.skip("pgbouncer is not installed (apt-get install pgbouncer; CI does)")
    with run_pgbouncer(watch.admin_url, pool_mode=request.param, pool_size=1) as info:
        yield info


def observations(data: Any) -> dict[tuple[str, str], dict[str, Any]]:
    """The tick's observations: (env, live_*) -> metadata values."""
    return {
        tuple(event.asset_key.path): {k: v.value for k, v in event.metadata.items()}
        for event in data.asset_events
    }


def server_pids(watch: Watch, databases: dict[str, str]) -> dict[str, set[int]]:
    """The server's client backends on each database (seen from a direct connection)."""
    connection = connect_dbapi(watch.admin_url, label="test server")
    try:
        with connection.cursor() as cur:
            cur.execute(
                "SELECT datname, pid FROM pg_stat_activity WHERE datname = ANY(%(d)s)",
                {"d": list(databases.values())},
            )
            rows = cur.fetchall()
    finally:
        connection.close()
    by_db = {db: env for env, db in databases.items()}
    pids: dict[str, set[int]] = {env: set() for env in databases}
    for datname, pid in rows:
        pids[by_db[datname]].add(int(pid))
    return pids


def test_the_sensor_works_through_pgbouncer_unchanged(
    watch: Watch, bouncer: PgBouncerInfo, monkeypatch: pytest.MonkeyPatch
) -> None:
    databases = {env: str(make_url(watch.urls[env]).database) for env in NAMES}
    for env in NAMES:
        monkeypatch.setenv(pooled_variable(env), bouncer.url(databases[env]))
    text = config_yaml()
    for env in NAMES:
        text = text.replace(variable(env), pooled_variable(env))
    config = watch.layout.root / "abparts_ops_pgbouncer.yaml"
    config.write_text(text, encoding="utf-8")
    defs = make_definitions(load_settings(config))
    saved = dict(watch.cursors)
    try:
        first = watch.tick(defs=defs, fresh=True)
        memory = DriftCursor.decode(first.cursor).environments
        assert {memory[env].status for env in NAMES} == {EnvironmentState.IN_SYNC.value}
        for env in NAMES:  # the same fingerprint as a direct probe
            direct = probe(watch.urls[env], environment=env, exclude=EXCLUDE)
            assert memory[env].fingerprint == direct.fingerprint
        pids = server_pids(watch, databases)
        assert all(len(pids[env]) == 1 for env in NAMES), pids  # one pooled connection each

        quiet = watch.tick(defs=defs, cursor=first.cursor)
        seen = observations(quiet)
        assert {seen[(env, "live_schema")]["catalogs_unchanged"] for env in NAMES} == {1}
        assert {seen[(env, "live_schema")]["schema_in_sync"] for env in NAMES} == {1}
        assert server_pids(watch, databases) == pids  # the same server connections, warm

        # nothing of the probe stays on the pooled connection the next client gets
        connection = connect_dbapi(bouncer.url(databases["staging"]), label="staging")
        try:
            with connection.cursor() as cur:
                cur.execute(
                    "SELECT current_setting('search_path'), current_setting('statement_timeout'),"
                    " current_setting('jit'), pg_backend_pid()"
                )
                search_path, timeout, jit, pid = cur.fetchone()
        finally:
            connection.close()
        assert pid in pids["staging"]
        assert (search_path, timeout, jit) == ('"$user", public', "0", "on")

        introduce_drift(watch.urls["staging"], "index")
        try:
            changed = watch.tick(defs=defs, cursor=quiet.cursor)
            seen = observations(changed)
            assert seen[("staging", "live_schema")]["catalogs_unchanged"] == 0
            assert seen[("staging", "live_schema")]["schema_in_sync"] == 0
            [request] = changed.run_requests
            assert request.tags[ENVIRONMENT_TAG] == "staging"
        finally:
            remove_drift(watch.urls["staging"])
    finally:
        watch.cursors.clear()
        watch.cursors.update(saved)
