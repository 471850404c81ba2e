"""An INVALID index is shown by the snapshot, the probe and the diff: never in sync.

Two databases of one schema: in ``valid`` every index was built; in ``invalid`` the same
indexes were left INVALID the ways PostgreSQL leaves them: a ``CREATE UNIQUE INDEX
CONCURRENTLY`` that failed on duplicate rows (on a table and on a materialized view), a
partitioned index created ``ON ONLY`` the parent, and a primary key added to ``ONLY`` a
partitioned table (its partition has no key attached yet).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from abparts_ops.core.db import create_database, drop_database, make_engine
from abparts_ops.core.errors import MigrationError
from abparts_ops.core.history.expected import ExpectedSchemas
from abparts_ops.core.reset.baseline_render import render_baseline
from abparts_ops.core.schema.ddl import render_ddl
from abparts_ops.core.schema.diff import diff_snapshots
from abparts_ops.core.schema.introspect import take_snapshot
from abparts_ops.core.schema.model import Snapshot
from abparts_ops.core.schema.validity import (
    FAILED_BUILD,
    KEY_NOT_ATTACHED,
    NOT_ATTACHED,
    invalid_objects,
)
from abparts_ops.core.watch.probe import probe
from abparts_ops.core.watch.reference import assess_fingerprint, assess_snapshot
from abparts_ops.core.watch.states import EnvironmentState
from abparts_ops_tests.sql import run_sql

SCHEMA = """
CREATE TABLE parts (id int PRIMARY KEY, code text, qty int);
INSERT INTO parts VALUES (1, 'a', 1), (2, 'a', 2);
CREATE MATERIALIZED VIEW part_codes AS SELECT code FROM parts;
CREATE TABLE events (at date NOT NULL, v int) PARTITION BY RANGE (at);
CREATE TABLE events_2024 PARTITION OF events FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
"""

# The same objects, built (on rows without duplicates) ...
BUILT = """
DELETE FROM parts WHERE id = 2;
REFRESH MATERIALIZED VIEW part_codes;
CREATE UNIQUE INDEX parts_code_key ON parts (code);
CREATE UNIQUE INDEX part_codes_code ON part_codes (code);
CREATE INDEX events_v_idx ON events (v);
ALTER TABLE events ADD PRIMARY KEY (at);
"""

# ... and left INVALID: these two builds fail on the duplicate 'a' (each on its own, in
# autocommit: CONCURRENTLY cannot run in a transaction) ...
FAILING_BUILDS = (
    "CREATE UNIQUE INDEX CONCURRENTLY parts_code_key ON parts (code)",
    "CREATE UNIQUE INDEX CONCURRENTLY part_codes_code ON part_codes (code)",
)
# ... and these succeed, leaving the partitioned table's index and key INVALID until the
# partition's are attached.
ONLY_PARENT = """
CREATE INDEX events_v_idx ON ONLY events (v);
ALTER TABLE ONLY events ADD PRIMARY KEY (at);
"""


def autocommit(url: str, statement: str) -> None:
    """Run one statement outside a transaction block."""
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql(statement)
    finally:
        engine.dispose()


def fail_concurrently(url: str, statement: str) -> None:
    """Run a ``CREATE UNIQUE INDEX CONCURRENTLY`` that fails on duplicate rows."""
    with pytest.raises(sa.exc.IntegrityError, match="could not create unique index"):
        autocommit(url, statement)


@dataclass(frozen=True)
class Pair:
    valid_url: str
    invalid_url: str
    invalid_name: str
    valid: Snapshot
    invalid: Snapshot


@pytest.fixture(scope="module")
def pair(admin_url: str) -> Iterator[Pair]:
    suffix = uuid.uuid4().hex[:10]
    names = (f"idx_valid_{suffix}", f"idx_invalid_{suffix}")
    try:
        valid_url, invalid_url = (create_database(admin_url, name) for name in names)
        run_sql(valid_url, SCHEMA + BUILT)
        run_sql(invalid_url, SCHEMA)
        for statement in FAILING_BUILDS:
            fail_concurrently(invalid_url, statement)
        run_sql(invalid_url, ONLY_PARENT)
        yield Pair(
            valid_url,
            invalid_url,
            names[1],
            take_snapshot(valid_url, source="valid"),
            take_snapshot(invalid_url, source="invalid"),
        )
    finally:
        for name in names:
            drop_database(admin_url, name)


def test_the_snapshot_shows_an_invalid_index(pair: Pair) -> None:
    """``valid: false`` on each INVALID index (``index_valid: false`` on the key), and
    nothing else differs from the built index; a valid index has no such attribute."""
    indexes = pair.invalid.kind("index")
    for name in ("parts_code_key", "part_codes_code", "events_v_idx"):
        assert indexes[name]["valid"] is False, name
        built = pair.valid.kind("index")[name]
        assert "valid" not in built
        assert {k: v for k, v in indexes[name].items() if k != "valid"} == built
    key = pair.invalid.kind("primary_key")["events.events_pkey"]
    assert key["index_valid"] is False
    assert "index_valid" not in pair.valid.kind("primary_key")["events.events_pkey"]
    assert "index_valid" not in pair.invalid.kind("primary_key")["parts.parts_pkey"]
    assert [(kind, key) for kind, key, _ in invalid_objects(pair.invalid)] == [
        ("index", "events_v_idx"),
        ("index", "part_codes_code"),
        ("index", "parts_code_key"),
        ("primary_key", "events.events_pkey"),
    ]
    assert invalid_objects(pair.valid) == []
    assert pair.invalid.fingerprint != pair.valid.fingerprint


def test_the_probe_agrees_with_the_snapshot(pair: Pair) -> None:
    invalid = probe(pair.invalid_url, environment="invalid")
    assert invalid.fingerprint == pair.invalid.probe_fingerprint
    assert invalid.fingerprint != pair.valid.probe_fingerprint
    assert probe(pair.valid_url, environment="valid").fingerprint == pair.valid.probe_fingerprint


def test_the_diff_names_the_invalid_index_and_how_to_repair_it(pair: Pair) -> None:
    diff = diff_snapshots(pair.valid, pair.invalid, reference_label="dev", actual_label="prod")
    changes = {(c.kind, c.key): c for c in diff.changes}
    failed = changes[("index", "parts_code_key")]
    assert failed.change == "changed"
    assert dict(failed.fields) == {"valid": (None, False)}
    assert failed.describe() == FAILED_BUILD == (
        "INVALID (a failed CREATE INDEX CONCURRENTLY): drop it with DROP INDEX CONCURRENTLY "
        "and build it again"
    )
    assert failed.destructive  # unique: building it again can fail on the rows there
    assert changes[("index", "part_codes_code")].describe() == FAILED_BUILD
    partitioned = changes[("index", "events_v_idx")]
    assert partitioned.describe() == NOT_ATTACHED and not partitioned.destructive
    key = changes[("primary_key", "events.events_pkey")]
    assert dict(key.fields) == {"index_valid": (None, False)}
    assert key.describe() == KEY_NOT_ATTACHED and key.destructive
    # the partition's own index and key were never built in prod
    assert changes[("index", "events_2024_v_idx")].change == "missing"
    row = next(line for line in diff.to_markdown().splitlines() if "`parts_code_key`" in line)
    assert row.startswith("| changed ⚠ | index |") and FAILED_BUILD in row
    entry = next(c for c in diff.to_dict()["changes"] if c["key"] == "parts_code_key")
    assert entry["notes"] == {"valid": FAILED_BUILD}
    assert entry["fields"] == {"valid": {"reference": None, "actual": False}}

    reverse = diff_snapshots(pair.invalid, pair.valid)
    back = next(c for c in reverse.changes if c.key == "parts_code_key")
    assert back.describe() == f"in the reference, {FAILED_BUILD}; valid in this database"
    assert not back.destructive


def test_an_environment_with_an_invalid_index_is_schema_drift(pair: Pair) -> None:
    """At its revision, with the index INVALID where the history builds it valid: drift,
    from the full snapshot (checks) and from the probe (sensor) alike."""
    expected = ExpectedSchemas(
        history_fingerprint="h" * 64,
        schema="public",
        exclude=(),
        version_table="alembic_version",
        heads=("r1",),
        order=("r1",),
        parents={"r1": ()},
        snapshots={"r1": pair.valid},
    )
    drift = assess_snapshot("prod", ("r1",), pair.invalid, expected)
    assert drift.state is EnvironmentState.SCHEMA_DRIFT
    assert drift.diff is not None and "parts_code_key" in drift.diff.to_markdown()
    assert FAILED_BUILD in drift.diff.to_markdown()
    assert assess_snapshot("dev", ("r1",), pair.valid, expected).state is (
        EnvironmentState.IN_SYNC
    )
    fingerprint = probe(pair.invalid_url, environment="prod").fingerprint
    sensed = assess_fingerprint("prod", ("r1",), fingerprint, expected.index())
    assert sensed.state is EnvironmentState.SCHEMA_DRIFT


def _pg_index_row(url: str, index: str) -> tuple[str, str]:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            row = conn.exec_driver_sql(
                "SELECT ctid::text, xmin::text FROM pg_index WHERE indexrelid = %s::regclass",
                (index,),
            ).one()
            return row[0], row[1]
    finally:
        engine.dispose()


def test_repairing_the_index_moves_the_token_and_the_fingerprint(
    pair: Pair, db_factory: Callable[..., str]
) -> None:
    """REINDEX makes the INVALID index valid in place (same index, its pg_index row
    updated): a probe holding the old token does not reuse the old fingerprint, and the
    index is valid again for snapshot and probe alike."""
    url = db_factory("idx_repair", template=pair.invalid_name)
    known = probe(url, environment="repair").known()
    assert known is not None and known.fingerprint == pair.invalid.probe_fingerprint
    before = _pg_index_row(url, "parts_code_key")
    run_sql(url, "DELETE FROM parts WHERE id = 2; REINDEX INDEX parts_code_key")
    assert _pg_index_row(url, "parts_code_key") != before
    cached = probe(url, environment="repair", known=known)
    repaired = take_snapshot(url, source="repaired")
    assert not cached.reused
    assert cached.fingerprint == repaired.probe_fingerprint != known.fingerprint
    assert "valid" not in repaired.kind("index")["parts_code_key"]
    assert repaired.kind("index")["parts_code_key"] == pair.valid.kind("index")["parts_code_key"]


def test_the_token_moves_when_only_pg_index_changes(db_factory: Callable[..., str]) -> None:
    """Validity flipped by an update of the pg_index row alone (nothing else written):
    the catalog token's (ctid, xmin) hash of pg_index still sees it."""
    url = db_factory("idx_token")
    run_sql(url, "CREATE TABLE t (id int); CREATE INDEX t_id ON t (id)")
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            superuser = conn.exec_driver_sql(
                "SELECT rolsuper FROM pg_roles WHERE rolname = current_user"
            ).scalar()
    finally:
        engine.dispose()
    if not superuser:
        pytest.skip("updating pg_index directly needs a superuser")
    known = probe(url, environment="token").known()
    assert known is not None
    run_sql(url, "UPDATE pg_index SET indisvalid = false WHERE indexrelid = 't_id'::regclass")
    cached = probe(url, environment="token", known=known)
    assert not cached.reused
    assert cached.fingerprint == take_snapshot(url).probe_fingerprint != known.fingerprint
    assert take_snapshot(url).kind("index")["t_id"]["valid"] is False


def test_the_ddl_warns_and_the_baseline_refuses(pair: Pair) -> None:
    """The canonical DDL names each INVALID index in a WARNING of its header; the baseline
    will not build, as valid, indexes the source has INVALID."""
    ddl = render_ddl(pair.invalid)
    warnings = [line for line in ddl.splitlines() if line.startswith("-- WARNING:")]
    assert len(warnings) == 4
    assert any("index parts_code_key of the source: " + FAILED_BUILD in w for w in warnings)
    assert "INVALID" not in render_ddl(pair.valid)
    created = datetime(2024, 1, 1, tzinfo=UTC)
    with pytest.raises(MigrationError) as refused:
        render_baseline(pair.invalid, revision="abc123", created=created)
    message = str(refused.value)
    assert message.startswith("index 'events_v_idx' of the source: " + NOT_ATTACHED)
    assert "(and 3 more INVALID index(es))" in message and "\n" not in message
    render_baseline(pair.valid, revision="abc123", created=created)
