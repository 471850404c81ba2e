"""Dependency order of the DDL, the baseline, the drops and the downgrade (no database).

Hand-written snapshots, with and without the catalog's dependencies, go through the
canonical DDL and the baseline renderer; the order of the statements is checked against
what PostgreSQL needs. Random graphs check :func:`order_sections` itself: every
dependency respected, the phase order kept where no dependency says otherwise, the same
answer every time.
"""

from __future__ import annotations

import random
from datetime import datetime
from typing import Any

import pytest

from abparts_ops.core.errors import MigrationError
from abparts_ops.core.reset.baseline_render import render_baseline
from abparts_ops.core.schema.ddl import (
    ddl_sections,
    drop_statements,
    phase_drops,
    phase_sections,
    render_ddl,
)
from abparts_ops.core.schema.model import Snapshot
from abparts_ops.core.schema.order import (
    DependencyCycle,
    dependency_graph,
    order_sections,
)
from abparts_ops.core.schema.steps import Section, Step


def _table(**extra: Any) -> dict[str, Any]:
    attrs = {
        "partitioned": False, "partition_key": None, "partition_of": None,
        "partition_bound": None, "unlogged": False, "foreign": False, "row_security": False,
        "force_row_security": False, "comment": None,
    }
    return {**attrs, **extra}


def _column(table: str, name: str, position: int, type_: str, **extra: Any) -> dict[str, Any]:
    attrs = {
        "table": table, "name": name, "position": position, "type": type_, "nullable": True,
        "default": None, "generated": None, "identity": None, "collation": None, "comment": None,
    }
    return {**attrs, **extra}


def _pk(table: str, column: str) -> dict[str, Any]:
    return {
        "table": table, "name": f"{table}_pkey", "columns": [column],
        "definition": f"PRIMARY KEY ({column})", "deferrable": False,
        "initially_deferred": False, "validated": True, "no_inherit": False,
    }


def _fk(table: str, name: str, column: str, ref: str, ref_column: str) -> dict[str, Any]:
    return {
        "table": table, "name": name, "columns": [column], "ref_table": ref,
        "ref_columns": [ref_column], "on_update": "NO ACTION", "on_delete": "NO ACTION",
        "match": "SIMPLE", "deferrable": False, "initially_deferred": False, "validated": True,
        "no_inherit": False,
        "definition": f"FOREIGN KEY ({column}) REFERENCES {ref}({ref_column})",
    }


def unique_index_snapshot(dependencies: tuple[tuple[str, str, str, str], ...] | None = None
                          ) -> Snapshot:
    """A foreign key to columns covered by a unique index only (no unique constraint)."""
    return Snapshot(
        schema="public",
        objects={
            "table": {"currencies": _table(), "prices": _table()},
            "column": {
                "currencies.code": _column("currencies", "code", 1, "character(3)",
                                           nullable=False),
                "prices.id": _column("prices", "id", 1, "integer", nullable=False),
                "prices.currency": _column("prices", "currency", 2, "character(3)"),
            },
            "primary_key": {"prices.prices_pkey": _pk("prices", "id")},
            "foreign_key": {"prices.prices_currency_fkey": _fk(
                "prices", "prices_currency_fkey", "currency", "currencies", "code"
            )},
            "index": {"currencies_code_uidx": {
                "table": "currencies", "unique": True, "method": "btree", "keys": ["code"],
                "include": None, "predicate": None, "nulls_not_distinct": False,
                "parent_index": None, "comment": None,
                "definition": "CREATE UNIQUE INDEX currencies_code_uidx ON currencies "
                "USING btree (code)",
            }},
        },
        dependencies=dependencies,
    )


def _position(text: str, needle: str) -> int:
    assert needle in text, needle
    return text.index(needle)


@pytest.mark.parametrize("catalog", [False, True], ids=["attributes only", "catalog"])
def test_a_foreign_key_to_a_unique_index_comes_after_the_index(catalog: bool) -> None:
    """PostgreSQL needs the unique index before a foreign key can reference its columns
    ("there is no unique constraint matching given keys for referenced table"); a fixed
    order of kinds created indexes after foreign keys."""
    deps = (
        ("foreign_key", "prices.prices_currency_fkey", "index", "currencies_code_uidx"),
        ("foreign_key", "prices.prices_currency_fkey", "table", "currencies"),
        ("index", "currencies_code_uidx", "table", "currencies"),
    ) if catalog else None
    snap = unique_index_snapshot(deps)
    ddl = render_ddl(snap)
    assert _position(ddl, "CREATE UNIQUE INDEX currencies_code_uidx") < _position(
        ddl, "ADD CONSTRAINT prices_currency_fkey"
    )
    baseline = render_baseline(snap, revision="abc123", created=datetime(2026, 1, 1))
    upgrade, downgrade = baseline.split("def downgrade() -> None:")
    assert _position(upgrade, 'op.create_index("currencies_code_uidx"') < _position(
        upgrade, 'op.create_foreign_key("prices_currency_fkey"'
    )
    assert _position(downgrade, 'op.drop_table("prices")') < _position(
        downgrade, 'op.drop_table("currencies")'
    )


def test_the_phase_order_is_kept_where_no_dependency_says_otherwise() -> None:
    """Without a dependency against it, the order is the phases' order, statement for
    statement: an existing schema's DDL does not change."""
    snap = unique_index_snapshot()
    snap = Snapshot(schema="public", objects={
        k: v for k, v in snap.objects.items() if k != "foreign_key"
    })
    flat = [s for sec in phase_sections(snap) for s in sec.statements]
    assert [s for sec in ddl_sections(snap) for s in sec.statements] == flat
    drops = [s for sec in phase_drops(snap) for s in sec.statements]
    assert [s for sec in drop_statements(snap) for s in sec.statements] == drops


FUNCTION_DEF = (
    "CREATE OR REPLACE FUNCTION public.account_count()\n RETURNS bigint\n LANGUAGE sql\n"
    " STABLE\nBEGIN ATOMIC\n SELECT count(*) AS count\n    FROM accounts;\nEND\n"
)
VIEW_FUNCTION_DEF = (
    "CREATE OR REPLACE FUNCTION public.cheapest()\n RETURNS price_list\n LANGUAGE sql\n"
    "AS $function$ SELECT * FROM price_list LIMIT 1 $function$\n"
)


def cycle_snapshot() -> Snapshot:
    """A table whose default and check call a function whose body reads the table; a
    function returning a view's row type; two tables referencing each other."""
    return Snapshot(
        schema="public",
        objects={
            "table": {"accounts": _table(), "authors": _table(), "books": _table()},
            "column": {
                "accounts.id": _column("accounts", "id", 1, "integer", nullable=False),
                "accounts.rank": _column("accounts", "rank", 2, "bigint",
                                         default="(account_count() + 1)"),
                "authors.id": _column("authors", "id", 1, "integer", nullable=False),
                "authors.book": _column("authors", "book", 2, "integer"),
                "books.id": _column("books", "id", 1, "integer", nullable=False),
                "books.author": _column("books", "author", 2, "integer"),
            },
            "primary_key": {
                "accounts.accounts_pkey": _pk("accounts", "id"),
                "authors.authors_pkey": _pk("authors", "id"),
                "books.books_pkey": _pk("books", "id"),
            },
            "check": {"accounts.accounts_limit": {
                "table": "accounts", "name": "accounts_limit", "columns": None,
                "definition": "CHECK ((account_count() < 1000))",
                "expression": "(account_count() < 1000)", "deferrable": False,
                "initially_deferred": False, "validated": True, "no_inherit": False,
            }},
            "foreign_key": {
                "authors.authors_book_fk": _fk("authors", "authors_book_fk", "book", "books",
                                               "id"),
                "books.books_author_fk": _fk("books", "books_author_fk", "author", "authors",
                                             "id"),
            },
            "function": {
                "account_count()": {"name": "account_count", "procedure": False,
                                    "arguments": "", "definition": FUNCTION_DEF,
                                    "comment": None},
                "cheapest()": {"name": "cheapest", "procedure": False, "arguments": "",
                               "definition": VIEW_FUNCTION_DEF, "comment": None},
            },
            "view": {"price_list": {"materialized": False, "comment": None,
                                    "definition": " SELECT 1 AS gross;"}},
        },
        dependencies=(
            ("check", "accounts.accounts_limit", "function", "account_count()"),
            ("check", "accounts.accounts_limit", "table", "accounts"),
            ("column_default", "accounts.rank", "function", "account_count()"),
            ("column_default", "accounts.rank", "table", "accounts"),
            ("function", "account_count()", "table", "accounts"),
            ("function", "cheapest()", "view", "price_list"),
        ),
    )


def test_a_cycle_through_a_default_and_a_check_is_split_as_pg_dump_splits_it() -> None:
    ddl = render_ddl(cycle_snapshot())
    table = ddl[_position(ddl, "CREATE TABLE accounts ("):]
    table = table[: table.index(");")]
    assert "DEFAULT" not in table and "accounts_limit" not in table
    assert _position(ddl, "CREATE TABLE accounts (") < _position(
        ddl, "FUNCTION public.account_count()"
    ) < _position(ddl, "ALTER TABLE accounts ADD CONSTRAINT accounts_limit CHECK") < _position(
        ddl, "ALTER TABLE accounts ALTER COLUMN rank SET DEFAULT (account_count() + 1)"
    )
    assert _position(ddl, "CREATE VIEW price_list") < _position(
        ddl, "FUNCTION public.cheapest()"
    )
    drops = [s for sec in drop_statements(cycle_snapshot()) for s in sec.statements]
    assert drops.index("ALTER TABLE accounts DROP CONSTRAINT accounts_limit") < drops.index(
        "DROP FUNCTION account_count()"
    ) < drops.index("DROP TABLE accounts")
    assert drops.index("ALTER TABLE accounts ALTER COLUMN rank DROP DEFAULT") < drops.index(
        "DROP FUNCTION account_count()"
    )
    assert drops.index("DROP FUNCTION cheapest()") < drops.index("DROP VIEW price_list")


def test_the_baseline_splits_the_same_cycles() -> None:
    text = render_baseline(cycle_snapshot(), revision="abc123", created=datetime(2026, 1, 1))
    upgrade, downgrade = text.split("def downgrade() -> None:")
    create = upgrade[_position(upgrade, 'op.create_table(\n        "accounts"'):]
    create = create[: create.index("\n    )\n")]
    assert "server_default" not in create and "accounts_limit" not in create
    assert _position(upgrade, "FUNCTION public.account_count()") < _position(
        upgrade, "ADD CONSTRAINT accounts_limit CHECK"
    )
    assert _position(upgrade, "FUNCTION public.account_count()") < _position(
        upgrade, "ALTER COLUMN rank SET DEFAULT"
    )
    # two tables whose foreign keys reference each other: one key is dropped first
    assert _position(downgrade, "# Foreign keys that close a cycle between tables") < min(
        _position(downgrade, 'op.drop_table("authors")'),
        _position(downgrade, 'op.drop_table("books")'),
    )
    assert downgrade.count('op.drop_constraint("') == 1
    assert _position(downgrade, 'op.execute("DROP FUNCTION account_count()")') < _position(
        downgrade, 'op.drop_table("accounts")'
    )


def test_a_cycle_nothing_can_split_is_refused_with_its_objects() -> None:
    snap = cycle_snapshot()
    deps = (*(snap.dependencies or ()), ("view", "price_list", "function", "cheapest()"))
    looped = Snapshot(schema="public", objects=snap.objects, dependencies=deps)
    with pytest.raises(DependencyCycle) as caught:
        render_ddl(looped)
    assert "function cheapest()" in str(caught.value)
    assert "view price_list" in str(caught.value)
    with pytest.raises(MigrationError, match="view price_list"):
        render_baseline(looped, revision="abc123", created=datetime(2026, 1, 1))


def test_a_dependency_outside_the_schema_is_refused_by_name() -> None:
    snap = unique_index_snapshot()
    outside = Snapshot(schema="public", objects=snap.objects, dependencies=(
        ("column_default", "prices.id", "outside", "sequence billing.invoice_numbers"),
    ))
    render_ddl(outside)  # the canonical DDL is what it is; the baseline cannot build it
    with pytest.raises(MigrationError) as caught:
        render_baseline(outside, revision="abc123", created=datetime(2026, 1, 1))
    message = str(caught.value)
    assert "the default of column 'prices.id'" in message
    assert "sequence billing.invoice_numbers" in message and "writes nothing" in message


def test_dependency_graph_adds_what_the_attributes_say() -> None:
    graph = dependency_graph(unique_index_snapshot())
    assert graph[("foreign_key", "prices.prices_currency_fkey")] == {
        ("table", "currencies"),
        ("index", "currencies_code_uidx"),
    }


def _random_sections(rng: random.Random) -> tuple[list[Section], dict[tuple[str, str], set]]:
    phases = sorted(rng.sample(range(10, 200, 10), rng.randint(1, 6)))
    sections = []
    names = []
    for phase in phases:
        steps = []
        for _ in range(rng.randint(0, 6)):
            name = f"o{len(names)}"
            names.append(name)
            steps.append(Step(f"CREATE {name}", (("thing", name),)))
        sections.append(Section(phase, f"phase {phase}", f"t{phase}", tuple(steps)))
    graph: dict[tuple[str, str], set] = {}
    for i in range(len(names)):
        for _ in range(rng.randint(0, 3)):
            j = rng.randrange(len(names))
            if j != i:  # no cycle: a step depends on steps given before it
                low, high = sorted((i, j))
                graph.setdefault(("thing", names[high]), set()).add(("thing", names[low]))
    if rng.random() < 0.7:
        order = list(range(len(names)))
        rng.shuffle(order)  # renumber, so that dependencies run against the phases
        rename = {f"o{k}": f"o{v}" for k, v in zip(range(len(names)), order, strict=True)}
        graph = {("thing", rename[a[1]]): {("thing", rename[b[1]]) for b in deps}
                 for a, deps in graph.items()}
    return sections, graph


def test_order_sections_on_random_graphs() -> None:
    for seed in range(300):
        rng = random.Random(seed)
        sections, graph = _random_sections(rng)
        flat = [step.creates[0] for sec in sections for step in sec.steps]
        for removing in (False, True):
            given = list(reversed(sections)) if removing else sections
            ordered = order_sections(given, graph, removing=removing)
            out = [step.creates[0] for sec in ordered for step in sec.steps]
            assert sorted(out) == sorted(flat), seed
            assert order_sections(given, graph, removing=removing) == ordered, seed
            where = {obj: i for i, obj in enumerate(out)}
            for obj, deps in graph.items():
                for dep in deps:
                    if removing:
                        assert where[obj] < where[dep], (seed, obj, dep)
                    else:
                        assert where[dep] < where[obj], (seed, obj, dep)
            respected = all(
                flat.index(dep) < flat.index(obj) for obj, deps in graph.items() for dep in deps
            )
            if respected and not removing:
                assert out == flat, seed  # nothing to reorder: the phase order, unchanged
