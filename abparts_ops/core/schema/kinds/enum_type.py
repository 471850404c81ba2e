"""The ``enum`` kind: enum types and their labels in sort order.

Created by ``CREATE TYPE ... AS ENUM``, dropped by ``DROP TYPE``. An extra enum in an
environment holds data; a change is destructive when the environment has labels the
reference lacks (removing a label can fail on rows that use it).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from abparts_ops.core.quoting import quote_ident, quote_literal
from abparts_ops.core.schema.kind_order import PHASE
from abparts_ops.core.schema.kinds.base import (
    TYPE_CATALOGS,
    Kind,
    comment_section,
    drop_named,
    type_address,
)
from abparts_ops.core.schema.steps import Section, SnapshotView, Step, section

ENUMS_SQL = r"""
  -- enum types with their labels in sort order
  SELECT 'enum', t.typname::text,
         CASE WHEN t.typname::text ~ ANY (%(excl)s::text[]) THEN t.typname::text END,
         json_build_object(
           'labels', (SELECT json_agg(e.enumlabel::text ORDER BY e.enumsortorder)
                      FROM pg_enum e WHERE e.enumtypid = t.oid),
           'comment', (SELECT description FROM pg_description
                       WHERE objoid = t.oid AND classoid = 'pg_type'::regclass))
  FROM pg_type t JOIN ns ON t.typnamespace = ns.oid
  WHERE t.typtype = 'e'
    AND NOT EXISTS (SELECT 1 FROM pg_depend e WHERE e.classid = 'pg_type'::regclass
                    AND e.objid = t.oid AND e.deptype = 'e')
"""


ENUMS_ADDRESS = type_address("enum", "e")


def _enum_ddl(snapshot: SnapshotView) -> list[Section]:
    steps = [
        Step(
            f"CREATE TYPE {quote_ident(name)} AS ENUM ("
            + ", ".join(quote_literal(v) for v in snapshot.kind("enum")[name]["labels"] or [])
            + ")",
            (("enum", name),),
        )
        for name in sorted(snapshot.kind("enum"))
    ]
    return [
        section(PHASE["enum"], "Enum types", "enum", steps),
        comment_section(snapshot, "enum", lambda name, _a: f"TYPE {quote_ident(name)}"),
    ]


def _enum_change(fields: Mapping[str, tuple[Any, Any]]) -> bool:
    """Labels only in the environment are lost when it is brought back to the reference."""
    if "labels" in fields:
        reference, actual = fields["labels"]
        return bool(set(actual or []) - set(reference or []))
    return False


#: This module's kinds, with their renderers (collected by the registry, in this order).
REGISTERED: tuple[Kind, ...] = (
    Kind(
        "enum", "enum", "enums", "name", "labels (ordered), comment",
        ENUMS_SQL, TYPE_CATALOGS + ("pg_enum",),
        PHASE["enum"], 0, "op.execute", extra_destructive=True, address=ENUMS_ADDRESS,
        create=_enum_ddl, drop=drop_named("enum", "DROP TYPE", "Enum types"),
        changed_destructive=_enum_change,
    ),
)
