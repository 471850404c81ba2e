"""The guarded stamp on real PostgreSQL: dry run, stamp, no-op, refusals, locks, faults.

Every environment is a copy (CREATE DATABASE ... TEMPLATE) of one small ABParts-like
schema built once per module; its version table holds a revision id the Alembic history
does not know (prod's situation in the seed). "Left exactly as it was" is checked by
comparing the version rows and the full snapshot (excluded objects included) before and
after.
"""

from __future__ import annotations

import shutil
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

import abparts_ops.core.rollout.stamp as stamp_module
from abparts_ops.core.db import create_database, drop_database, make_engine, with_database
from abparts_ops.core.errors import AbpartsOpsError, ConfigError, DatabaseError, StampRefused
from abparts_ops.core.history.expected import ExpectedSchemas
from abparts_ops.core.history.project import AlembicProject, load_project
from abparts_ops.core.rollout.identity import database_identity
from abparts_ops.core.rollout.stamp import SchemaDrift, StampResult, guarded_stamp
from abparts_ops.core.rollout.write_guard import WriteGuard
from abparts_ops.core.schema.introspect import take_snapshot
from abparts_ops.core.schema.model import Snapshot
from abparts_ops.core.settings import EnvironmentSettings
from abparts_ops.embedded.server import EmbeddedPostgres
from abparts_ops_tests.core.history.projects import Rev, write_project
from abparts_ops_tests.sql import run_sql, version_rows

REPO = Path(__file__).resolve().parents[3]
BASELINE = "base00000001"
OLD_HEAD = "deadbeef0001"
EXCLUDE = ("knowledge_documents", "document_*")
PASSWORD_MARK = "S3cr3t-Stamp-Pw-7781"

SCHEMA_SQL = """
CREATE TYPE part_kind AS ENUM ('consumable', 'bulk_material');
CREATE TABLE organizations (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name text NOT NULL UNIQUE,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE parts (
    id integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    organization_id uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    part_number text NOT NULL,
    kind part_kind NOT NULL DEFAULT 'consumable',
    unit_price numeric(12, 2) DEFAULT 0 CHECK (unit_price >= 0),
    notes text,
    description text
);
CREATE INDEX ix_parts_organization ON parts (organization_id);
CREATE UNIQUE INDEX ux_parts_number ON parts (lower(part_number)) WHERE notes IS NULL;
COMMENT ON TABLE parts IS 'Spare parts catalogue';
CREATE TABLE knowledge_documents (id serial PRIMARY KEY, body text);
CREATE TABLE document_chunks (
    id serial PRIMARY KEY,
    document_id integer REFERENCES knowledge_documents (id)
);
CREATE TABLE alembic_version (
    version_num varchar(32) NOT NULL,
    CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num)
);
INSERT INTO alembic_version VALUES ('deadbeef0001');
"""


def state(url: str) -> tuple[tuple[str, ...] | None, str]:
    """Everything a stamp could change: the version rows and the whole snapshot."""
    return version_rows(url), take_snapshot(url, source="state").to_json()


class Env:
    """The module's fixture: the template database, the project and the reference."""

    def __init__(self, admin_url: str, template: str, project: AlembicProject) -> None:
        self.admin_url = admin_url
        self.template = template
        self.project = project
        self.reference: Snapshot = take_snapshot(
            with_database(admin_url, template), exclude=EXCLUDE, source="dev"
        )

    def expected(self, extra: dict[str, Snapshot] | None = None) -> ExpectedSchemas:
        """Expected schemas: the reference at BASELINE (+ ``extra`` revisions after it)."""
        order = (BASELINE, *(extra or {}))
        parents = {rev: ((order[i - 1],) if i else ()) for i, rev in enumerate(order)}
        return ExpectedSchemas(
            history_fingerprint="test",
            schema="public",
            exclude=EXCLUDE,
            version_table="alembic_version",
            heads=order[-1:],
            order=order,
            parents=parents,
            snapshots={BASELINE: self.reference, **(extra or {})},
        )

    def stamp(self, url: str, **kwargs: Any) -> StampResult:
        """``guarded_stamp`` with this module's script, expected schemas and exclusions."""
        options: dict[str, Any] = {
            "environment": "staging",
            "script": self.project.script(),
            "expected": self.expected(),
            "exclude": EXCLUDE,
        }
        options.update(kwargs)
        return guarded_stamp(url, **options)


@pytest.fixture(scope="module")
def env(admin_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    """A template database with the schema and an Alembic project with one root revision."""
    template = f"stamp_tpl_{uuid.uuid4().hex[:10]}"
    url = create_database(admin_url, template)
    root = tmp_path_factory.mktemp("stamp_project")
    ini = write_project(root, [Rev(BASELINE, None, message="baseline schema")])
    try:
        run_sql(url, SCHEMA_SQL)
        yield Env(admin_url, template, load_project(ini_path=ini))
    finally:
        drop_database(admin_url, template)


@pytest.fixture
def make_env(env: Env, db_factory: Callable[..., str]) -> Callable[[], str]:
    """Make a fresh copy of the template (one per environment of a test)."""
    return lambda: db_factory("stamp", template=env.template)


@pytest.fixture
def staging(make_env: Callable[[], str]) -> str:
    """A staging environment: the reference schema, at an unknown old revision."""
    return make_env()


@pytest.fixture(scope="module")
def untouched(env: Env) -> Iterator[str]:
    """One environment shared by the tests that must leave it exactly as it was.

    Each of them asserts that it did (so sharing it costs nothing but a database).
    """
    name = f"stamp_shared_{uuid.uuid4().hex[:10]}"
    url = create_database(env.admin_url, name, template=env.template)
    try:
        yield url
    finally:
        drop_database(env.admin_url, name)


# -- dry run, stamp, no-op ---------------------------------------------------------------


def test_dry_run_changes_nothing(env: Env, untouched: str) -> None:
    """The default is a dry run: it says what it would do and writes nothing."""
    before = state(untouched)
    result = env.stamp(untouched)
    assert result.action == "dry_run"
    assert result.before == (OLD_HEAD,)
    assert result.after is None
    assert result.purged == (OLD_HEAD,)
    assert result.target == BASELINE
    assert result.reference_fingerprint == result.actual_fingerprint == env.reference.fingerprint
    assert f"would replace {OLD_HEAD} with {BASELINE}" in result.message
    assert "Nothing was written" in result.message
    assert state(untouched) == before


def test_dry_run_without_version_table_creates_nothing(env: Env, staging: str) -> None:
    """A dry run on a database without a version table says it would create it, only."""
    run_sql(staging, "DROP TABLE alembic_version")
    before = state(staging)
    result = env.stamp(staging)
    assert result.action == "dry_run"
    assert result.before is None
    assert result.creates_version_table
    assert "create the version table" in result.message
    assert state(staging) == before
    assert version_rows(staging) is None


def test_stamp_staging_then_prod_then_noop(env: Env, make_env: Callable[[], str]) -> None:
    """Staging, then protected prod with its confirmation; a second stamp is a no-op."""
    staging, prod = make_env(), make_env()
    schema_before = take_snapshot(prod, exclude=EXCLUDE).fingerprint

    first = env.stamp(staging, dry_run=False)
    assert first.action == "stamped"
    assert (first.before, first.after) == ((OLD_HEAD,), (BASELINE,))
    assert first.purged == (OLD_HEAD,)
    assert not first.creates_version_table
    assert version_rows(staging) == (BASELINE,)

    second = env.stamp(prod, environment="prod", protected=True, confirm="prod", dry_run=False)
    assert second.action == "stamped"
    assert version_rows(prod) == (BASELINE,)
    assert take_snapshot(prod, exclude=EXCLUDE).fingerprint == schema_before

    before = state(prod)
    again = env.stamp(prod, environment="prod", protected=True, confirm="prod", dry_run=False)
    assert again.action == "noop"
    assert again.before == again.after == (BASELINE,)
    assert "already at" in again.message
    assert state(prod) == before
    # A no-op needs no confirmation either: nothing would be written.
    assert env.stamp(prod, environment="prod", protected=True).action == "noop"


def test_stamp_creates_a_missing_version_table(env: Env, staging: str) -> None:
    """The only DDL a stamp may run: creating the version table, and the result says so."""
    run_sql(staging, "DROP TABLE alembic_version")
    result = env.stamp(staging, dry_run=False)
    assert result.action == "stamped"
    assert result.creates_version_table
    assert "created the missing version table" in result.message
    assert version_rows(staging) == (BASELINE,)


def test_excluded_tables_may_differ(env: Env, staging: str) -> None:
    """Tables managed elsewhere (the exclusions) do not block a stamp."""
    run_sql(staging, "ALTER TABLE knowledge_documents ADD COLUMN embedding text")
    assert env.stamp(staging, dry_run=False).action == "stamped"


# -- refusals ----------------------------------------------------------------------------

DRIFTS = {
    "extra_index": ("CREATE INDEX ix_parts_notes ON parts (notes)", "ix_parts_notes"),
    "changed_default": (
        "ALTER TABLE parts ALTER COLUMN unit_price SET DEFAULT 1",
        "parts.unit_price",
    ),
    "missing_column": ("ALTER TABLE parts DROP COLUMN description", "parts.description"),
}


@pytest.mark.parametrize("drift", sorted(DRIFTS))
def test_schema_drift_refuses(env: Env, staging: str, drift: str) -> None:
    """Any difference from the reference refuses the stamp, shows the diff, writes nothing.

    A dry run refuses the same way (it would not be able to stamp either).
    """
    sql, name = DRIFTS[drift]
    run_sql(staging, sql)
    before = state(staging)
    for dry_run in (False, True):
        with pytest.raises(SchemaDrift) as caught:
            env.stamp(staging, dry_run=dry_run)
        message = str(caught.value)
        assert message.startswith("staging: schema differs from the reference in 1 object(s)")
        assert name in message
        assert name in caught.value.diff.to_markdown()
        assert caught.value.diff.counts()["total"] == 1
        assert state(staging) == before


def test_protected_needs_confirmation(env: Env, untouched: str) -> None:
    """A protected environment is stamped only with ``confirm`` equal to its name."""
    before = state(untouched)
    for confirm in (None, ""):
        with pytest.raises(StampRefused, match=r"^prod is protected: set run config `confirm"):
            env.stamp(untouched, environment="prod", protected=True, confirm=confirm, dry_run=False)
        assert state(untouched) == before
    # A confirmation that names anything else is a mistake, refused as one (dry run too).
    for confirm in ("staging", "PROD", " prod"):
        for dry_run in (False, True):
            with pytest.raises(StampRefused, match=r"^prod: refusing to stamp: run config `conf"):
                env.stamp(untouched, environment="prod", protected=True, confirm=confirm,
                          dry_run=dry_run)
        assert state(untouched) == before
    # A dry run of a protected environment needs no confirmation: it writes nothing.
    assert env.stamp(untouched, environment="prod", protected=True).action == "dry_run"


def test_two_heads_refuse(env: Env, untouched: str, tmp_path: Path) -> None:
    """A history with two heads cannot be stamped: which one would it be?"""
    ini = write_project(
        tmp_path, [Rev(BASELINE, None), Rev("head_a", BASELINE), Rev("head_b", BASELINE)]
    )
    before = state(untouched)
    with pytest.raises(StampRefused, match=r"has 2 heads \(head_a, head_b\)"):
        env.stamp(untouched, script=load_project(ini_path=ini).script(), dry_run=False)
    assert state(untouched) == before


def test_unknown_schema_is_a_clear_error(env: Env, untouched: str) -> None:
    """A schema name that does not exist names the setting to fix; nothing written."""
    before = state(untouched)
    with pytest.raises(AbpartsOpsError, match="schema 'nope' does not exist"):
        env.stamp(untouched, schema="nope", dry_run=False)
    assert state(untouched) == before


def test_head_moved_past_the_baseline_refuses_and_says_to_upgrade(
    env: Env, staging: str, tmp_path: Path
) -> None:
    """Issue 12.1: a revision on top of the baseline; the stamp writes only the baseline.

    Without acknowledgement it refuses (upgrade instead); with ``allow_behind_head`` it
    records the baseline (never the head) and the environment is then behind.
    """
    ini = write_project(tmp_path, [Rev(BASELINE, None), Rev("r2r2r2r2r2r2", BASELINE)])
    script = load_project(ini_path=ini).script()
    with_column = Snapshot(schema="public", objects={})  # what r2 builds (never matched here)
    expected = env.expected({"r2r2r2r2r2r2": with_column})
    before = state(staging)
    for dry_run in (True, False):
        with pytest.raises(StampRefused) as caught:
            env.stamp(staging, script=script, expected=expected, dry_run=dry_run)
        message = str(caught.value)
        assert "moved on past the proven baseline " + BASELINE in message
        assert "upgrade_staging" in message and "r2r2r2r2r2r2" in message
        assert "nothing was written" in message
        assert state(staging) == before
    result = env.stamp(
        staging, script=script, expected=expected, dry_run=False, allow_behind_head=True
    )
    assert result.action == "stamped" and result.target == BASELINE
    assert version_rows(staging) == (BASELINE,)
    # now at the baseline, behind the head: a stamp cannot help, an upgrade can
    with pytest.raises(StampRefused, match="behind.*upgrade_staging"):
        env.stamp(staging, script=script, expected=expected, allow_behind_head=True)


def test_a_no_op_stamp_records_no_purge(env: Env, staging: str, tmp_path: Path) -> None:
    """Issue 16.7: at the head of a history that moved past the baseline, in sync, the
    stamp does nothing, and says it purged nothing (it used to list the head)."""
    ini = write_project(tmp_path, [Rev(BASELINE, None), Rev("r2r2r2r2r2r2", BASELINE)])
    script = load_project(ini_path=ini).script()
    expected = env.expected({"r2r2r2r2r2r2": env.reference})  # r2 builds nothing
    run_sql(staging, "UPDATE alembic_version SET version_num = 'r2r2r2r2r2r2'")
    before = state(staging)
    result = env.stamp(staging, script=script, expected=expected, dry_run=False)
    assert result.action == "noop" and result.state == "in_sync"
    assert (result.purged, result.purged_archived, result.purged_unknown) == ((), (), ())
    assert "Purged" not in result.message
    assert state(staging) == before


def test_purge_tells_archived_ids_from_ids_in_no_history(env: Env, staging: str) -> None:
    """Issue 10.5: ids of the archived history and ids found in no history, listed apart."""
    run_sql(
        staging,
        f"DELETE FROM alembic_version; INSERT INTO alembic_version VALUES ('{OLD_HEAD}'), "
        "('cafe00000002');",
    )
    result = env.stamp(staging, dry_run=False, archived={OLD_HEAD})
    assert result.purged_archived == (OLD_HEAD,)
    assert result.purged_unknown == ("cafe00000002",)
    assert f"Purged from the archived history: {OLD_HEAD}." in result.message
    assert "found in no history (neither on disk nor archived): cafe00000002" in result.message
    assert result.state == "unknown_revision"


def test_the_write_guard_refuses_before_anything_is_written(
    env: Env, untouched: str
) -> None:
    """The guard sees the database's identity inside the stamp; its refusal stands.

    "prod" resolves to the very database being stamped as staging: refused, nothing
    written; the same guard without that twin lets the stamp through and reports the
    identity it checked.
    """
    before = state(untouched)
    twin = database_identity(untouched)
    guard = WriteGuard("staging", environments=frozenset({"staging", "prod"}),
                       others={"prod": twin})
    with pytest.raises(StampRefused, match="is also the database of prod"):
        env.stamp(untouched, dry_run=False, guard=guard)
    assert state(untouched) == before
    result = env.stamp(untouched, guard=WriteGuard("staging"))
    assert result.identity == twin
    assert result.guard is not None and result.guard.identity == twin


# -- bad input ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rows", "purged"),
    [
        ((OLD_HEAD, "cafe00000002"), (OLD_HEAD, "cafe00000002")),
        ((BASELINE, "cafe00000002"), ("cafe00000002",)),
        ((), ()),
    ],
)
def test_several_or_unknown_rows_are_purged(
    env: Env, staging: str, rows: tuple[str, ...], purged: tuple[str, ...]
) -> None:
    """Several rows, unknown ids, an empty table: listed in the dry run, then replaced."""
    values = ", ".join(f"('{r}')" for r in rows)
    run_sql(
        staging,
        "DELETE FROM alembic_version;"
        + (f"INSERT INTO alembic_version VALUES {values};" if rows else ""),
    )
    dry = env.stamp(staging)
    assert dry.action == "dry_run"
    assert dry.before == tuple(sorted(rows))
    assert dry.purged == tuple(sorted(purged))
    expected = ", ".join(sorted(rows)) if rows else "empty version table"
    assert f"would replace {expected} with {BASELINE}" in dry.message
    result = env.stamp(staging, dry_run=False)
    assert result.action == "stamped"
    assert result.purged == dry.purged
    assert version_rows(staging) == (BASELINE,)


def test_wrong_password(env: Env, untouched: str) -> None:
    """A wrong password: one line naming the environment and the fix, no password."""
    url = sa.engine.make_url(untouched).set(password=PASSWORD_MARK)
    with pytest.raises(DatabaseError) as caught:
        env.stamp(url.render_as_string(hide_password=False), dry_run=False)
    message = str(caught.value)
    assert message.startswith("staging: cannot use")
    assert "password authentication failed" in message
    assert "check the user and password" in message
    assert PASSWORD_MARK not in message
    assert "\n" not in message


def test_unreachable_host_fails_within_the_connect_timeout(env: Env) -> None:
    """A host that does not answer (TEST-NET address) fails fast, with a clear line."""
    url = f"postgresql://ops:{PASSWORD_MARK}@192.0.2.1:5432/abparts"
    started = time.monotonic()
    with pytest.raises(DatabaseError) as caught:
        env.stamp(url, dry_run=False)
    assert time.monotonic() - started < 10
    message = str(caught.value)
    assert message.startswith("staging: cannot use postgresql://ops:***@192.0.2.1:5432/abparts")
    assert "check that the server is running" in message
    assert PASSWORD_MARK not in message


def test_silent_server_fails_within_the_connect_timeout(env: Env) -> None:
    """A server that accepts TCP but never speaks: the connect timeout bounds the wait."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)  # never accept(): the handshake completes, nothing answers
        port = listener.getsockname()[1]
        url = f"postgresql://ops:{PASSWORD_MARK}@127.0.0.1:{port}/abparts"
        started = time.monotonic()
        with pytest.raises(DatabaseError) as caught:
            env.stamp(url, dry_run=False, connect_timeout=2)
        elapsed = time.monotonic() - started
    assert 1.5 < elapsed < 10
    message = str(caught.value)
    assert message.startswith(f"staging: cannot use postgresql://ops:***@127.0.0.1:{port}")
    assert "timeout expired" in message
    assert "check that the server is running" in message
    assert PASSWORD_MARK not in message


@pytest.mark.parametrize("value", ["", "   "])
def test_empty_url_variable(env: Env, monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    """An environment variable set to an empty string: a ConfigError naming it."""
    monkeypatch.setenv("ABPARTS_STAMP_TEST_URL", value)
    settings = EnvironmentSettings.named("staging", url_env="ABPARTS_STAMP_TEST_URL")
    with pytest.raises(ConfigError, match="environment variable ABPARTS_STAMP_TEST_URL is empty"):
        settings.url()
    with pytest.raises(DatabaseError, match="staging: the database URL is not valid"):
        env.stamp(value, dry_run=False)


# -- concurrency -------------------------------------------------------------------------


def _slow_fetch_rows(monkeypatch: pytest.MonkeyPatch, hold_s: float) -> threading.Event:
    """Make the first stamp to read the catalog hold its lock for ``hold_s`` seconds.

    Returns an event set once that stamp holds the lock (it reads the catalog under it).
    """
    real = stamp_module.fetch_rows
    holding = threading.Event()
    first = threading.Lock()

    def fetch_rows(conn: Any, **kwargs: Any) -> Any:
        if first.acquire(blocking=False):
            holding.set()
            time.sleep(hold_s)
        return real(conn, **kwargs)

    monkeypatch.setattr(stamp_module, "fetch_rows", fetch_rows)
    return holding


def _run_in_thread(fn: Callable[[], StampResult]) -> tuple[threading.Thread, dict[str, Any]]:
    out: dict[str, Any] = {}

    def target() -> None:
        try:
            out["result"] = fn()
        except Exception as exc:  # noqa: BLE001 - the test inspects it
            out["error"] = exc

    thread = threading.Thread(target=target)
    thread.start()
    return thread, out


def test_concurrent_stamps_one_proceeds_one_fails(
    env: Env, staging: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two stamps of one environment at once: one stamps, the other fails on the lock."""
    holding = _slow_fetch_rows(monkeypatch, hold_s=1.5)
    script = env.project.script()

    def go() -> StampResult:
        return env.stamp(staging, script=script, dry_run=False, lock_timeout_s=0.4)

    first, first_out = _run_in_thread(go)
    assert holding.wait(10)
    second, second_out = _run_in_thread(go)
    first.join(30)
    second.join(30)
    assert first_out["result"].action == "stamped"
    error = second_out["error"]
    assert isinstance(error, StampRefused)
    assert str(error) == (
        "staging: another stamp or upgrade holds the lock on its version table; waited "
        "0.4 s (wait for that run to finish, then run this stamp again). Refusing to stamp; "
        "nothing was written."
    )
    assert version_rows(staging) == (BASELINE,)


def test_waiting_stamp_sees_the_first_one(
    env: Env, staging: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stamp that waits for the lock reads the rows the first one committed: a no-op."""
    holding = _slow_fetch_rows(monkeypatch, hold_s=0.8)
    script = env.project.script()

    def go() -> StampResult:
        return env.stamp(staging, script=script, dry_run=False, lock_timeout_s=20)

    first, first_out = _run_in_thread(go)
    assert holding.wait(10)
    second, second_out = _run_in_thread(go)
    first.join(30)
    second.join(30)
    assert "error" not in first_out and "error" not in second_out, (first_out, second_out)
    assert first_out["result"].action == "stamped"
    assert second_out["result"].action == "noop"
    assert second_out["result"].lock_wait_ms > 100
    assert version_rows(staging) == (BASELINE,)


# -- faults ------------------------------------------------------------------------------


def _terminate(admin_url: str, pid: int) -> None:
    engine = make_engine(admin_url)
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT pg_terminate_backend(:pid, 5000)"), {"pid": pid})
            conn.commit()
    finally:
        engine.dispose()


def _after_writes(monkeypatch: pytest.MonkeyPatch, action: Callable[[Any], None]) -> None:
    """Run ``action(conn)`` after the stamp replaced the rows, before it commits."""
    context_class = stamp_module.MigrationContext
    real = context_class.run_migrations

    def run_migrations(self: Any, **kw: Any) -> None:
        real(self, **kw)
        action(self.connection)

    monkeypatch.setattr(context_class, "run_migrations", run_migrations)


@pytest.mark.parametrize("when", ["while_reading", "after_writes"])
def test_connection_killed_mid_transaction(
    env: Env, staging: str, monkeypatch: pytest.MonkeyPatch, when: str
) -> None:
    """``pg_terminate_backend`` on the stamp's connection: nothing changed; rerun works."""
    before = state(staging)
    calls: list[int] = []

    def kill(conn: Any) -> None:
        pid = conn.exec_driver_sql("SELECT pg_backend_pid()").scalar()
        written = conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalars().all()
        calls.append(pid)
        if when == "after_writes":
            assert written == [BASELINE]  # the rows were replaced inside the transaction
        _terminate(env.admin_url, pid)

    if when == "while_reading":
        real = stamp_module.fetch_rows

        def fetch_rows(conn: Any, **kwargs: Any) -> Any:
            kill(conn)
            return real(conn, **kwargs)

        monkeypatch.setattr(stamp_module, "fetch_rows", fetch_rows)
    else:
        _after_writes(monkeypatch, kill)

    with pytest.raises(DatabaseError) as caught:
        env.stamp(staging, dry_run=False)
    assert calls
    assert str(caught.value).startswith("staging: cannot use")
    assert "terminat" in str(caught.value) or "closed the connection" in str(caught.value)
    assert "nothing was written" in str(caught.value)
    assert state(staging) == before
    monkeypatch.undo()
    assert env.stamp(staging, dry_run=False).action == "stamped"
    assert version_rows(staging) == (BASELINE,)


def test_server_stopped_mid_run(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    """The server goes away between the writes and the commit: nothing changed; rerun works.

    Uses a server of its own (never the shared test server), under the repository's
    git-ignored ``.abparts_ops`` folder (the ``postgres`` OS user cannot enter pytest's
    private temporary folders).
    """
    home = REPO / ".abparts_ops" / f"stamp_fault_{uuid.uuid4().hex[:8]}"
    server = EmbeddedPostgres(home)
    info = server.start()
    try:
        url = create_database(info.url("postgres"), "prod_copy")
        run_sql(url, SCHEMA_SQL)
        # The server runs with synchronous_commit=off: make the setup durable before the
        # immediate (crash-like) stop, so only the stamp's own transaction is at stake.
        run_sql(url, "CHECKPOINT")
        before = state(url)
        _after_writes(monkeypatch, lambda _conn: server.stop(mode="immediate"))
        with pytest.raises(DatabaseError) as caught:
            env.stamp(url, environment="prod", protected=True, confirm="prod", dry_run=False)
        assert str(caught.value).startswith("prod: cannot use")
        assert info.password not in str(caught.value)
        monkeypatch.undo()
        server.start()
        assert state(url) == before
        result = env.stamp(url, environment="prod", protected=True, confirm="prod", dry_run=False)
        assert result.action == "stamped"
        assert version_rows(url) == (BASELINE,)
    finally:
        server.stop(mode="immediate")
        shutil.rmtree(home, ignore_errors=True)
