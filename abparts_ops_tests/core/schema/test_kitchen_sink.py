"""Every object kind at once: snapshot, canonical DDL, baseline and diff on the kitchen sink.

The kitchen-sink schema (:mod:`abparts_ops_tests.core.schema.kitchen_sink`) holds one or
more objects of every kind the registry declares. Its snapshot must be rebuilt exactly by
the canonical DDL applied to an empty database and by the rendered baseline (the
``round_trip``, ``dump_parity`` and ``downgrade_clean`` proofs), privileges included when
asked for; and removing any one object from the built database must show in the diff
(destructive for a trigger or a policy).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path

import pytest
from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy.engine import make_url

from abparts_ops.core.db import connect, create_database, drop_database, make_engine
from abparts_ops.core.history.project import load_project
from abparts_ops.core.reset.baseline_render import render_baseline
from abparts_ops.core.reset.proofs import prove_baseline
from abparts_ops.core.schema.ddl import render_ddl
from abparts_ops.core.schema.diff import diff_snapshots
from abparts_ops.core.schema.dump_parity import dump_parity
from abparts_ops.core.schema.introspect import take_snapshot
from abparts_ops.core.schema.kinds import KINDS
from abparts_ops.core.schema.model import Snapshot
from abparts_ops_tests.core.history.projects import write_project
from abparts_ops_tests.core.reset.test_baseline import make_project
from abparts_ops_tests.core.schema.kitchen_sink import (
    EXTENSION,
    KITCHEN_SINK_SQL,
    REMOVALS,
)
from abparts_ops_tests.core.schema.test_snapshot import query
from abparts_ops_tests.sql import run_sql

REVISION = "ab12cd34ef56"


@pytest.fixture(scope="module")
def sink_url(admin_url: str) -> Iterator[str]:
    """A database holding the kitchen sink (skipped without the extension it uses)."""
    available = {row[0] for row in query(admin_url, "SELECT name FROM pg_available_extensions")}
    if EXTENSION not in available:
        pytest.skip(f"the test server has no {EXTENSION} extension (install postgresql-contrib)")
    name = f"sink_{uuid.uuid4().hex[:12]}"
    url = create_database(admin_url, name)
    try:
        run_sql(url, KITCHEN_SINK_SQL)
        yield url
    finally:
        drop_database(admin_url, name)


@pytest.fixture(scope="module")
def sink(sink_url: str) -> Snapshot:
    """The kitchen sink's snapshot, privileges included."""
    return take_snapshot(sink_url, source="sink", privileges=True)


def test_the_kitchen_sink_holds_every_kind(sink: Snapshot) -> None:
    counts = sink.counts()
    empty = {kind for kind in KINDS if not counts[kind]}
    assert empty == {"domain", "unique", "exclusion", "foreign_key"}  # covered by RICH_GROUPS
    functions = sink.kind("function")
    assert functions["archive_tickets(IN older_than interval)"]["procedure"] is True
    assert functions["next_code(prefix text)"]["comment"] == "business keys"
    assert not any(key.startswith("float_span") for key in functions)  # range constructors
    assert not any("citext" in key for key in functions)  # extension members
    tickets = sink.kind("table")["tickets"]
    assert tickets["row_security"] is True and tickets["force_row_security"] is True
    rest = sink.kind("table")["measurements_rest"]
    assert (rest["partition_of"], rest["partition_bound"]) == ("measurements", "DEFAULT")
    indexes = sink.kind("index")
    assert indexes["measurements_2024_value_idx"]["parent_index"] == "measurements_value_idx"
    assert sink.kind("primary_key")["measurements_2024.measurements_2024_pkey"]["inherited"]
    touch = sink.kind("trigger")["tickets.tickets_touch"]
    assert "WHEN ((old.* IS DISTINCT FROM new.*))" in touch["definition"]
    assert "UPDATE OF code, quantity" in touch["definition"]
    assert sink.kind("trigger")["tickets.tickets_quantity"]["constraint"] is True
    restrictive = sink.kind("policy")["tickets.tickets_not_high"]
    assert (restrictive["permissive"], restrictive["command"]) == (False, "SELECT")
    assert sink.kind("extension")[EXTENSION]["version"]
    assert sink.kind("composite")["money_amount"]["attributes"][0] == {
        "name": "currency",
        "type": "character(3)",
        "collation": None,
    }


def test_privileges_are_opt_in(sink_url: str, sink: Snapshot) -> None:
    plain = take_snapshot(sink_url, source="sink")
    assert plain.kind("privilege") == {}
    assert {k: v for k, v in plain.objects.items() if k != "privilege"} == {
        k: v for k, v in sink.objects.items() if k != "privilege"
    }
    sequence = sink.kind("privilege")["SEQUENCE ticket_no abparts_ops_sink_reader"]
    assert sequence["grantable"] == ["USAGE"]


def test_canonical_ddl_rebuilds_the_snapshot(
    sink: Snapshot, db_factory: Callable[..., str]
) -> None:
    url = db_factory("ddl")
    run_sql(url, render_ddl(sink))
    rebuilt = take_snapshot(url, source="ddl", privileges=True)
    diff = diff_snapshots(sink, rebuilt, actual_label="canonical DDL on an empty db")
    assert diff.is_empty, diff.to_markdown()


@pytest.mark.parametrize("compact", [False, True], ids=["alembic operations", "compact"])
def test_baseline_round_trip_dump_parity_and_downgrade_clean(
    sink: Snapshot, sink_url: str, admin_url: str, tmp_path: Path, compact: bool
) -> None:
    """Both renderings of the baseline: Alembic's operations, and the compact one (every
    statement of the canonical DDL as op.execute) used past a size."""
    root = write_project(tmp_path / "proj", []).parent
    text = render_baseline(sink, revision=REVISION, created=datetime(2026, 1, 1),
                           compact=compact)
    assert ("op.create_table(" in text) is not compact
    versions = root / "migrations" / "versions"
    (versions / f"{REVISION}_baseline_schema_20260101_000000.py").write_text(text)
    project = load_project(ini_path=root / "alembic.ini")
    results = prove_baseline(admin_url, project, sink, privileges=True, source_url=sink_url)
    failed = {name: (r.summary, r.details) for name, r in results.items() if not r.passed}
    assert not failed, failed
    assert set(results) == {"single_head", "round_trip", "dump_parity", "downgrade_clean"}


def test_plain_alembic_upgrade_head_gives_the_same_pg_dump(
    sink: Snapshot, sink_url: str, fresh_db: str, tmp_path: Path
) -> None:
    """Alembic's own ``upgrade head`` (the project's env.py, no abparts_ops in between) on
    a fresh database gives the source's normalized ``pg_dump``, object for object."""
    versions = make_project(tmp_path)
    text = render_baseline(sink, revision=REVISION, created=datetime(2026, 1, 1))
    (versions / f"{REVISION}_baseline_schema_20260101_000000.py").write_text(text)
    config = AlembicConfig(str(tmp_path / "alembic.ini"))
    engine = make_engine(fresh_db)
    try:
        with connect(engine) as conn:
            config.attributes["connection"] = conn
            command.upgrade(config, "head")
            conn.commit()
    finally:
        engine.dispose()
    result = dump_parity(sink_url, fresh_db, server_version=sink.server_version)
    assert result.problem is None, result.problem
    assert result.identical, result.diff
    assert result.entries > 40


@pytest.mark.parametrize(("kind", "key", "sql"), REMOVALS, ids=[r[1] for r in REMOVALS])
def test_removing_one_object_shows_in_the_diff(
    sink: Snapshot, sink_url: str, admin_url: str, kind: str, key: str, sql: str
) -> None:
    name = f"sink_rm_{uuid.uuid4().hex[:10]}"
    url = create_database(admin_url, name, template=make_url(sink_url).database)
    try:
        run_sql(url, sql)
        actual = take_snapshot(url, source="env", privileges=True)
    finally:
        drop_database(admin_url, name)
    diff = diff_snapshots(sink, actual, actual_label="env")
    changes = {(c.kind, c.key): c for c in diff.changes}
    assert (kind, key) in changes, diff.to_markdown()
    change = changes[(kind, key)]
    if kind in ("trigger", "policy"):
        assert change.change == "missing" and change.destructive
        assert f"| missing ⚠ | {kind} | `{key}` |" in diff.to_markdown()
