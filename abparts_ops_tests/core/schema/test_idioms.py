"""The reset on a schema of real-world idioms (:mod:`abparts_ops_tests.core.schema.idioms`).

Built on a real PostgreSQL 15, its snapshot records the dependencies the catalog knows
(outside the fingerprint); the canonical DDL rebuilds it; the whole reset (render, prove
on a copy, archive the old history, write) is green with every proof: ``round_trip``,
``dump_parity`` and ``downgrade_clean``. An idiom a baseline cannot build yet is refused
by name, and nothing is written.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from abparts_ops.core.db import connect, create_database, drop_database, make_engine
from abparts_ops.core.errors import MigrationError
from abparts_ops.core.history.project import load_project
from abparts_ops.core.reset.baseline_render import render_baseline
from abparts_ops.core.reset.proofs import prove_baseline
from abparts_ops.core.reset.runbook import prove_and_write_baseline
from abparts_ops.core.schema.ddl import render_ddl
from abparts_ops.core.schema.diff import diff_snapshots
from abparts_ops.core.schema.dump import reference_dump
from abparts_ops.core.schema.introspect import snapshot_connection, take_snapshot
from abparts_ops.core.schema.model import Snapshot
from abparts_ops_tests.core.history.projects import linear, write_project
from abparts_ops_tests.core.schema.idioms import EXTENSION, IDIOMS, REFUSED
from abparts_ops_tests.core.schema.test_snapshot import query
from abparts_ops_tests.sql import run_sql

NOW = datetime(2026, 3, 4, 5, 6, 7)
PROOFS = {"single_head", "round_trip", "dump_parity", "downgrade_clean"}


@pytest.fixture(scope="module")
def idioms_url(admin_url: str) -> Iterator[str]:
    """A database holding the idioms (skipped without the extension they use)."""
    available = {row[0] for row in query(admin_url, "SELECT name FROM pg_available_extensions")}
    if EXTENSION not in available:
        pytest.skip(f"the test server has no {EXTENSION} extension (install postgresql-contrib)")
    name = f"idioms_{uuid.uuid4().hex[:12]}"
    url = create_database(admin_url, name)
    try:
        for idiom, sql in IDIOMS:
            try:
                run_sql(url, sql)
            except Exception as exc:  # name the idiom the server refused
                raise AssertionError(f"building idiom {idiom!r} failed: {exc}") from exc
        yield url
    finally:
        drop_database(admin_url, name)


@pytest.fixture(scope="module")
def idioms(idioms_url: str) -> Snapshot:
    """The idioms' snapshot, with the catalog's dependencies."""
    return take_snapshot(idioms_url, source="idioms")


def tree(root: Path) -> dict[str, str]:
    """sha256 of every file under ``root`` (and the empty folders), by relative path."""
    return {
        str(path.relative_to(root)): (
            hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "dir"
        )
        for path in sorted(root.rglob("*"))
        if "__pycache__" not in str(path)
    }


def reset(admin_url: str, url: str, snapshot: Snapshot, root: Path):  # noqa: ANN201
    """The reset's whole write path on the project under ``root``."""
    project = load_project(ini_path=root / "alembic.ini")
    return prove_and_write_baseline(
        snapshot,
        project,
        scratch_url=admin_url,
        source_url=url,
        reference_text=reference_dump(url, snapshot, exclude=()).text,
        reference_path=root / "schema" / "reference.sql",
        now=NOW,
        revision="1d10a5000001",
    )


def test_the_catalog_records_the_dependencies_the_order_needs(
    idioms: Snapshot, idioms_url: str
) -> None:
    deps = set(idioms.dependencies or ())
    expected = {
        # a foreign key to columns covered by a unique index only
        ("foreign_key", "prices.prices_currency_fkey", "index", "currencies_code_uidx"),
        # ... to a partitioned table, to a NULLS NOT DISTINCT unique constraint
        ("foreign_key", "event_notes.event_notes_event_fk", "primary_key", "events.events_pkey"),
        ("foreign_key", "slug_uses.slug_uses_slug_fkey", "unique", "slugs.slugs_slug_key"),
        ("table", "events_2024", "table", "events"),
        # a view over a function, functions returning the view's row type
        ("view", "price_list", "function", "with_tax(amount numeric)"),
        ("function", "expensive_prices(minimum numeric)", "view", "price_list"),
        ("function", "cheapest_price()", "view", "price_list"),
        # an INSTEAD OF trigger on the view, a check calling a SQL function
        ("trigger", "price_list.price_list_insert", "function", "price_list_insert()"),
        ("check", "products.products_sku_check", "function", "is_valid_sku(sku text)"),
        # a default from a sequence owned by another table's column
        ("column_default", "orders.number", "sequence", "order_numbers"),
        # an exclusion constraint's operator classes belong to btree_gist
        ("exclusion", "bookings.bookings_no_overlap", "extension", EXTENSION),
        # the cycle: a default and a check calling a function that reads their table
        ("column_default", "accounts.opened_rank", "function", "account_count()"),
        ("function", "account_count()", "table", "accounts"),
    }
    assert expected <= deps, sorted(expected - deps)
    assert not [row for row in deps if row[2] == "outside"]
    # ownership is no creation order: the sequence is created before its owner
    assert not [row for row in deps if row[0] == "sequence" and row[2] == "table"]
    # dependencies are read with the snapshot but are not part of what is compared
    engine = make_engine(idioms_url)
    try:
        with connect(engine) as conn:
            plain = snapshot_connection(conn, source="idioms")
    finally:
        engine.dispose()
    assert plain.dependencies is None
    assert plain == idioms and plain.fingerprint == idioms.fingerprint
    assert "dependencies" not in plain.to_dict()
    again = Snapshot.from_json(idioms.to_json())
    assert again.dependencies == idioms.dependencies and again == idioms


def test_the_canonical_ddl_rebuilds_the_idioms(
    idioms: Snapshot, db_factory: Callable[..., str]
) -> None:
    url = db_factory("idioms_ddl")
    run_sql(url, render_ddl(idioms))
    diff = diff_snapshots(idioms, take_snapshot(url), actual_label="canonical DDL")
    assert diff.is_empty, diff.to_markdown()


def test_the_idioms_reset_green_with_every_proof(
    admin_url: str, idioms_url: str, idioms: Snapshot, tmp_path: Path
) -> None:
    root = write_project(tmp_path / "proj", linear(3)).parent
    outcome = reset(admin_url, idioms_url, idioms, root)
    assert outcome.action == "written", outcome.failure_report()
    assert set(outcome.results) == PROOFS
    assert all(r.passed for r in outcome.results.values()), outcome.failure_report()
    written = root / "migrations" / "versions" / outcome.plan.filename
    assert written.read_text() == outcome.plan.source
    assert "op.create_foreign_key(\"prices_currency_fkey\"" in outcome.plan.source


def prove(admin_url: str, url: str, snapshot: Snapshot, root: Path, **render: bool) -> None:
    """Render ``snapshot``'s baseline into a new project under ``root``, prove it there."""
    root = write_project(root, []).parent
    text = render_baseline(snapshot, revision="ab12cd34ef56", created=NOW, **render)
    (root / "migrations" / "versions" / "ab12cd34ef56_baseline_schema_20260304_050607.py"
     ).write_text(text)
    results = prove_baseline(
        admin_url, load_project(ini_path=root / "alembic.ini"), snapshot, source_url=url
    )
    failed = {name: r.summary for name, r in results.items() if not r.passed}
    assert not failed, failed
    assert set(results) == PROOFS


def test_a_foreign_key_to_a_unique_index_only_is_proven(
    admin_url: str, db_factory: Callable[..., str], tmp_path: Path
) -> None:
    """The issue's first failure, on its own: "there is no unique constraint matching
    given keys for referenced table" when indexes came after foreign keys."""
    url = db_factory("uidx")
    run_sql(url, dict(IDIOMS)["foreign key to columns covered by a unique index only"])
    prove(admin_url, url, take_snapshot(url, source="uidx"), tmp_path / "proj")


def test_the_compact_baseline_of_the_idioms_is_proven_too(
    admin_url: str, idioms_url: str, idioms: Snapshot, tmp_path: Path
) -> None:
    """The rendering used past a size: the canonical DDL's statements, same order."""
    prove(admin_url, idioms_url, idioms, tmp_path / "proj", compact=True)


@pytest.mark.parametrize(("idiom", "sql", "named"), REFUSED, ids=[r[0] for r in REFUSED])
def test_an_idiom_a_baseline_cannot_build_is_refused_by_name_writing_nothing(
    admin_url: str, idioms_url: str, tmp_path: Path, idiom: str, sql: str, named: str
) -> None:
    name = f"idioms_refused_{uuid.uuid4().hex[:10]}"
    url = create_database(admin_url, name, template=make_url(idioms_url).database)
    try:
        run_sql(url, sql)
        snapshot = take_snapshot(url, source="idioms")
        root = write_project(tmp_path / "proj", linear(3)).parent
        before = tree(root)
        with pytest.raises(MigrationError) as caught:
            reset(admin_url, url, snapshot, root)
    finally:
        drop_database(admin_url, name)
    message = str(caught.value)
    assert named in message and "writes nothing" in message, message
    assert tree(root) == before
    assert not (root / "schema").exists()
