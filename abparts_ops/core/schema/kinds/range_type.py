"""The ``range`` kind: range types (their multirange type comes with them).

Created by ``CREATE TYPE ... AS RANGE`` with the options that differ from the defaults,
dropped by ``DROP TYPE``.
"""

from __future__ import annotations

from abparts_ops.core.quoting import quote_collation, quote_ident
from abparts_ops.core.schema.kind_order import PHASE
from abparts_ops.core.schema.kinds.base import (
    TYPE_CATALOGS,
    Kind,
    comment_section,
    drop_named,
    type_address,
)
from abparts_ops.core.schema.steps import Section, SnapshotView, Step, section

RANGES_SQL = r"""
  -- range types (their multirange type comes with them)
  SELECT 'range', t.typname::text,
         CASE WHEN t.typname::text ~ ANY (%(excl)s::text[]) THEN t.typname::text END,
         json_build_object(
           'subtype', format_type(g.rngsubtype, NULL),
           'multirange', (SELECT m.typname::text FROM pg_type m WHERE m.oid = g.rngmultitypid),
           'collation', CASE WHEN g.rngcollation <> 0 AND g.rngcollation <> st.typcollation
             THEN (SELECT collname::text FROM pg_collation WHERE oid = g.rngcollation) END,
           'subtype_opclass', CASE WHEN NOT opc.opcdefault THEN opc.opcname::text END,
           'canonical', CASE WHEN g.rngcanonical <> 0 THEN g.rngcanonical::regproc::text END,
           'subtype_diff', CASE WHEN g.rngsubdiff <> 0 THEN g.rngsubdiff::regproc::text END,
           'comment', (SELECT description FROM pg_description
                       WHERE objoid = t.oid AND classoid = 'pg_type'::regclass))
  FROM pg_range g
  JOIN pg_type t ON t.oid = g.rngtypid
  JOIN ns ON t.typnamespace = ns.oid
  JOIN pg_type st ON st.oid = g.rngsubtype
  JOIN pg_opclass opc ON opc.oid = g.rngsubopc
  WHERE NOT EXISTS (SELECT 1 FROM pg_depend e WHERE e.classid = 'pg_type'::regclass
                    AND e.objid = t.oid AND e.deptype = 'e')
"""

RANGES_ADDRESS = type_address("range", "r") + r"""
  UNION ALL
  SELECT 'pg_type'::regclass, x.oid, 'range', t.typname::text
  FROM pg_range g JOIN pg_type t ON t.oid = g.rngtypid
  JOIN ns ON t.typnamespace = ns.oid
  JOIN pg_type m ON m.oid = g.rngmultitypid
  CROSS JOIN LATERAL unnest(ARRAY[m.oid, m.typarray]) x(oid)
  WHERE x.oid <> 0
"""


def _range_ddl(snapshot: SnapshotView) -> list[Section]:
    steps = []
    for name in sorted(snapshot.kind("range")):
        rng = snapshot.kind("range")[name]
        options = [f"SUBTYPE = {rng['subtype']}"]
        if rng.get("subtype_opclass"):
            options.append(f"SUBTYPE_OPCLASS = {quote_ident(rng['subtype_opclass'])}")
        if rng.get("collation"):
            options.append(f"COLLATION = {quote_collation(rng['collation'])}")
        if rng.get("canonical"):
            options.append(f"CANONICAL = {rng['canonical']}")
        if rng.get("subtype_diff"):
            options.append(f"SUBTYPE_DIFF = {rng['subtype_diff']}")
        if rng.get("multirange"):
            options.append(f"MULTIRANGE_TYPE_NAME = {quote_ident(rng['multirange'])}")
        steps.append(Step(
            f"CREATE TYPE {quote_ident(name)} AS RANGE ({', '.join(options)})",
            (("range", name),),
        ))
    return [
        section(PHASE["range"], "Range types", "range", steps),
        comment_section(snapshot, "range", lambda name, _a: f"TYPE {quote_ident(name)}"),
    ]


#: This module's kinds, with their renderers (collected by the registry, in this order).
REGISTERED: tuple[Kind, ...] = (
    Kind(
        "range", "range type", "range types", "name",
        "subtype, multirange, collation, subtype_opclass, canonical, subtype_diff, comment",
        RANGES_SQL, TYPE_CATALOGS + ("pg_range", "pg_collation", "pg_opclass", "pg_proc"),
        PHASE["range"], 0, "op.execute", extra_destructive=True, address=RANGES_ADDRESS,
        create=_range_ddl, drop=drop_named("range", "DROP TYPE", "Range types"),
    ),
)
