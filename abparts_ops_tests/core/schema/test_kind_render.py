"""Rendered text of every new kind, compared exactly (no database needed).

Like Alembic's own render tests: a hand-written snapshot holding one object of a kind
goes through the canonical DDL renderer and the baseline renderer, and the text each
produces is compared with the text expected, creation and removal alike.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from abparts_ops.core.reset.baseline_render import render_baseline
from abparts_ops.core.schema.ddl import DDL, DROP, ddl_sections, drop_statements, render_ddl
from abparts_ops.core.schema.model import Snapshot

FUNCTION_DEF = (
    "CREATE OR REPLACE FUNCTION public.touch()\n RETURNS trigger\n LANGUAGE plpgsql\n"
    "AS $function$ BEGIN NEW.at := now(); RETURN NEW; END $function$\n"
)
ROWTYPE_DEF = (
    "CREATE OR REPLACE FUNCTION public.open_parts()\n RETURNS SETOF parts\n LANGUAGE sql\n"
    "AS $function$ SELECT * FROM parts $function$\n"
)


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


def snapshot() -> Snapshot:
    """One object of every new kind, on two tables (one partitioned)."""
    return Snapshot(
        schema="public",
        objects={
            "extension": {"citext": {"schema": "public", "version": "1.6"}},
            "range": {"span": {
                "subtype": "double precision", "multirange": "span_multirange",
                "collation": None, "subtype_opclass": None, "canonical": None,
                "subtype_diff": "float8mi", "comment": "a span",
            }},
            "composite": {"amount": {
                "attributes": [
                    {"name": "currency", "type": "character(3)", "collation": "C"},
                    {"name": "value", "type": "numeric(12,2)", "collation": None},
                ],
                "comment": None,
            }},
            "function": {
                "touch()": {"name": "touch", "procedure": False, "arguments": "",
                            "definition": FUNCTION_DEF, "comment": "sets at"},
                "open_parts()": {"name": "open_parts", "procedure": False, "arguments": "",
                                 "definition": ROWTYPE_DEF, "comment": None},
            },
            "table": {
                "parts": _table(row_security=True, force_row_security=True),
                "events": _table(partitioned=True, partition_key="RANGE (at)"),
                "events_old": _table(partition_of="events", partition_bound="DEFAULT",
                                     comment="the rest"),
            },
            "column": {
                "parts.id": _column("parts", "id", 1, "integer", nullable=False),
                "parts.at": _column("parts", "at", 2, "timestamp with time zone"),
                "parts.price": _column("parts", "price", 3, "amount"),
                "events.at": _column("events", "at", 1, "date", nullable=False),
                "events.v": _column("events", "v", 2, "integer"),
                "events_old.at": _column("events_old", "at", 1, "date", nullable=False),
                "events_old.v": _column("events_old", "v", 2, "integer", nullable=False),
            },
            "index": {
                "events_v_idx": {
                    "table": "events", "unique": False, "method": "btree", "keys": ["v"],
                    "include": None, "predicate": None, "nulls_not_distinct": False,
                    "parent_index": None, "comment": None,
                    "definition": "CREATE INDEX events_v_idx ON ONLY events USING btree (v)",
                },
                "events_old_v_idx": {
                    "table": "events_old", "unique": False, "method": "btree", "keys": ["v"],
                    "include": None, "predicate": None, "nulls_not_distinct": False,
                    "parent_index": "events_v_idx", "comment": None,
                    "definition": "CREATE INDEX events_old_v_idx ON events_old USING btree (v)",
                },
            },
            "trigger": {"parts.parts_touch": {
                "table": "parts", "name": "parts_touch", "constraint": False, "enabled": "D",
                "comment": None,
                "definition": "CREATE TRIGGER parts_touch BEFORE UPDATE OF at ON public.parts "
                "FOR EACH ROW WHEN ((old.* IS DISTINCT FROM new.*)) EXECUTE FUNCTION touch()",
            }},
            "policy": {"parts.parts_read": {
                "table": "parts", "name": "parts_read", "permissive": False, "command": "SELECT",
                "roles": ["PUBLIC", "Readers"], "using": "(id > 0)", "with_check": None,
                "comment": "restrictive",
            }},
            "rule": {"parts.parts_keep": {
                "table": "parts", "name": "parts_keep", "enabled": "O", "comment": None,
                "definition": "CREATE RULE parts_keep AS\n    ON DELETE TO public.parts DO "
                "INSTEAD NOTHING;",
            }},
            "privilege": {
                "TABLE parts reader": {
                    "object_type": "TABLE", "object": "parts", "grantee": "reader",
                    "privileges": ["SELECT", "UPDATE"], "grantable": ["UPDATE"],
                },
                "FUNCTION touch() PUBLIC": {
                    "object_type": "FUNCTION", "object": "touch()", "grantee": "PUBLIC",
                    "privileges": ["EXECUTE"], "grantable": [],
                },
            },
        },
    )


def statements(kind: str) -> list[str]:
    """The DDL statements of one kind's renderer, in its order."""
    return [s for section in DDL[kind](snapshot()) for s in section.statements]


def test_extension_range_composite() -> None:
    assert statements("extension") == [
        "CREATE EXTENSION IF NOT EXISTS citext WITH SCHEMA public VERSION '1.6'"
    ]
    assert statements("range") == [
        "CREATE TYPE span AS RANGE (SUBTYPE = double precision, SUBTYPE_DIFF = float8mi, "
        "MULTIRANGE_TYPE_NAME = span_multirange)",
        "COMMENT ON TYPE span IS 'a span'",
    ]
    assert statements("composite") == [
        'CREATE TYPE amount AS (currency character(3) COLLATE "C", value numeric(12,2))'
    ]


def test_functions_before_tables_unless_they_use_a_row_type() -> None:
    sections = DDL["function"](snapshot())
    assert [(s.phase < 60, s.statements) for s in sections if s.tag == "function"] == [
        (True, (FUNCTION_DEF.rstrip(),)),
        (False, (ROWTYPE_DEF.rstrip(),)),
    ]
    assert statements("function")[-1] == "COMMENT ON FUNCTION touch() IS 'sets at'"


def test_partitions_row_security_and_partitioned_indexes() -> None:
    text = statements("table")
    assert "CREATE TABLE events_old PARTITION OF events DEFAULT" in text
    assert "ALTER TABLE events_old ALTER COLUMN v SET NOT NULL" in text
    assert "ALTER TABLE parts ENABLE ROW LEVEL SECURITY" in text
    assert "ALTER TABLE parts FORCE ROW LEVEL SECURITY" in text
    assert "COMMENT ON TABLE events_old IS 'the rest'" in text
    assert not any(s.startswith("CREATE TABLE events_old (") for s in text)
    # the parent's index without ONLY (so every partition gets one); the child's is implied
    assert statements("index") == ["CREATE INDEX events_v_idx ON events USING btree (v)"]


def test_trigger_policy_rule_privilege() -> None:
    assert statements("trigger") == [
        "CREATE TRIGGER parts_touch BEFORE UPDATE OF at ON public.parts FOR EACH ROW WHEN "
        "((old.* IS DISTINCT FROM new.*)) EXECUTE FUNCTION touch()",
        "ALTER TABLE parts DISABLE TRIGGER parts_touch",
    ]
    assert statements("policy") == [
        'CREATE POLICY parts_read ON parts AS RESTRICTIVE FOR SELECT TO PUBLIC, "Readers" '
        "USING ((id > 0))",
        "COMMENT ON POLICY parts_read ON parts IS 'restrictive'",
    ]
    assert statements("rule") == [
        "CREATE RULE parts_keep AS\n    ON DELETE TO public.parts DO INSTEAD NOTHING"
    ]
    assert statements("privilege") == [
        "GRANT EXECUTE ON FUNCTION touch() TO PUBLIC",
        "GRANT SELECT ON TABLE parts TO reader",
        "GRANT UPDATE ON TABLE parts TO reader WITH GRANT OPTION",
    ]


def test_order_of_the_whole_ddl() -> None:
    tags = [s.tag for s in ddl_sections(snapshot()) if s.statements]
    first = {tag: tags.index(tag) for tag in tags}
    assert first["range"] < first["composite"] < first["function"] < first["table"]
    assert first["table"] < first["table:partition"] < first["index"] < first["trigger"]
    assert first["trigger"] < first["policy"] < first["rule"] < first["privilege"]
    assert render_ddl(snapshot()).count("SET check_function_bodies = false;") == 1


def test_drops_in_reverse_order() -> None:
    drops = [(s.tag, s.statements) for s in drop_statements(snapshot()) if s.statements]
    assert drops == [
        ("rule", ("DROP RULE parts_keep ON parts",)),
        ("policy", ("DROP POLICY parts_read ON parts",)),
        ("function", ("DROP FUNCTION open_parts()",)),
        ("table:partition", ("DROP TABLE events_old",)),
        ("table", ("DROP TABLE parts", "DROP TABLE events")),
        ("function", ("DROP FUNCTION touch()",)),
        ("composite", ("DROP TYPE amount",)),
        ("range", ("DROP TYPE span",)),
        ("extension", ("DROP EXTENSION IF EXISTS citext",)),
    ]
    assert set(DROP) >= {"function", "range", "composite", "policy", "rule"}


def test_baseline_text_of_the_new_kinds() -> None:
    text = render_baseline(snapshot(), revision="abc123", created=datetime(2026, 1, 1))
    upgrade, downgrade = text.split("def downgrade() -> None:")
    expected_upgrade = [
        '    op.execute("SET LOCAL check_function_bodies = false")',
        "    # Functions and procedures\n"
        '    op.execute("""CREATE OR REPLACE FUNCTION public.touch()\n'
        " RETURNS trigger\n LANGUAGE plpgsql\n"
        'AS $function$ BEGIN NEW.at := now(); RETURN NEW; END $function$""")',
        "    # Partitions (after their partitioned tables)\n"
        '    op.execute("CREATE TABLE events_old PARTITION OF events DEFAULT")\n'
        '    op.execute("ALTER TABLE events_old ALTER COLUMN v SET NOT NULL")',
        "    # Indexes\n"
        '    op.create_index("events_v_idx", "events", ["v"], unique=False)',
        "    # Row-level security\n"
        '    op.execute("ALTER TABLE parts ENABLE ROW LEVEL SECURITY")\n'
        '    op.execute("ALTER TABLE parts FORCE ROW LEVEL SECURITY")',
        '    op.execute("ALTER TABLE parts DISABLE TRIGGER parts_touch")',
        '    op.execute("COMMENT ON TABLE events_old IS \'the rest\'")',
        "    # Privileges\n"
        '    op.execute("GRANT EXECUTE ON FUNCTION touch() TO PUBLIC")',
    ]
    for chunk in expected_upgrade:
        assert chunk in upgrade, chunk
    assert "events_old_v_idx" not in upgrade
    assert 'op.create_table(\n        "events_old"' not in upgrade
    expected_downgrade = (
        "    # Rules\n"
        '    op.execute("DROP RULE parts_keep ON parts")\n\n'
        "    # Row-level security policies\n"
        '    op.execute("DROP POLICY parts_read ON parts")\n\n'
        "    # Functions that use a table's row type\n"
        '    op.execute("DROP FUNCTION open_parts()")\n\n'
        "    # Partitions\n"
        '    op.drop_table("events_old")\n\n'
        "    # Tables (referencing tables first; owned sequences go with them)\n"
        '    op.drop_table("parts")\n'
        '    op.drop_table("events")\n\n'
        "    # Functions and procedures\n"
        '    op.execute("DROP FUNCTION touch()")\n\n'
        "    # Composite types\n"
        '    op.execute("DROP TYPE amount")\n\n'
        "    # Range types\n"
        '    op.execute("DROP TYPE span")\n\n'
        "    # Extensions\n"
        '    op.execute("DROP EXTENSION IF EXISTS citext")\n'
    )
    assert expected_downgrade in downgrade


def test_table_order_puts_referenced_tables_first_and_breaks_cycles() -> None:
    """On random foreign-key graphs: every table once; a table after every table it
    references, except through the keys set aside to break cycles; no key set aside in a
    graph without cycles; deterministic."""
    import random

    from abparts_ops.core.schema.kind_order import table_order

    for seed in range(300):
        rng = random.Random(seed)
        names = sorted({f"t{rng.randint(0, 25)}" for _ in range(rng.randint(1, 12))})
        acyclic = seed % 2 == 0
        fks = {}
        for i in range(rng.randint(0, 20)):
            src, ref = rng.choice(names), rng.choice([*names, "elsewhere"])
            if acyclic and ref in names and ref >= src:
                continue  # only references to smaller names: no cycle possible
            fks[f"{src}.fk{i}"] = {"table": src, "ref_table": ref}
        snap = Snapshot(
            schema="public",
            objects={"table": {n: _table() for n in names}, "foreign_key": fks},
        )
        order, cycle_keys = table_order(snap)
        assert sorted(order) == names and table_order(snap) == (order, cycle_keys)
        position = {name: i for i, name in enumerate(order)}
        for key, fk in fks.items():
            if fk["ref_table"] in position and fk["ref_table"] != fk["table"]:
                if key not in cycle_keys:
                    assert position[fk["ref_table"]] < position[fk["table"]], (seed, key)
        if acyclic:
            assert cycle_keys == []
