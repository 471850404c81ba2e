"""The ``composite`` kind: composite types (``CREATE TYPE ... AS (...)``).

Their attributes in order, with a collation where it is not the type's default; dropped
by ``DROP TYPE``.
"""

from __future__ import annotations

from abparts_ops.core.quoting import quote_collation, quote_ident
from abparts_ops.core.schema.kind_order import PHASE
from abparts_ops.core.schema.kinds.base import (
    TYPE_CATALOGS,
    Kind,
    comment_section,
    drop_named,
)
from abparts_ops.core.schema.steps import Section, SnapshotView, Step, section

COMPOSITES_SQL = r"""
  -- composite types (CREATE TYPE ... AS (...)), attributes in order
  SELECT 'composite', t.typname::text,
         CASE WHEN t.typname::text ~ ANY (%(excl)s::text[]) THEN t.typname::text END,
         json_build_object(
           'attributes', (SELECT json_agg(json_build_object(
                              'name', a.attname::text,
                              'type', format_type(a.atttypid, a.atttypmod),
                              'collation', CASE WHEN a.attcollation <> at.typcollation THEN
                                (SELECT collname::text FROM pg_collation
                                 WHERE oid = a.attcollation) END)
                            ORDER BY a.attnum)
                          FROM pg_attribute a JOIN pg_type at ON at.oid = a.atttypid
                          WHERE a.attrelid = t.typrelid AND a.attnum > 0
                            AND NOT a.attisdropped),
           'comment', (SELECT description FROM pg_description
                       WHERE objoid = t.oid AND classoid = 'pg_type'::regclass))
  FROM pg_type t
  JOIN ns ON t.typnamespace = ns.oid
  JOIN pg_class c ON c.oid = t.typrelid
  WHERE t.typtype = 'c' AND c.relkind = 'c'
    AND NOT EXISTS (SELECT 1 FROM pg_depend e WHERE e.classid = 'pg_type'::regclass
                    AND e.objid = t.oid AND e.deptype = 'e')
"""

COMPOSITES_ADDRESS = r"""
  SELECT x.classid, x.oid, 'composite', t.typname::text
  FROM pg_type t JOIN ns ON t.typnamespace = ns.oid
  JOIN pg_class c ON c.oid = t.typrelid
  CROSS JOIN LATERAL (VALUES ('pg_type'::regclass, t.oid), ('pg_type'::regclass, t.typarray),
                             ('pg_class'::regclass, c.oid)) x(classid, oid)
  WHERE t.typtype = 'c' AND c.relkind = 'c' AND x.oid <> 0
"""


def _composite_ddl(snapshot: SnapshotView) -> list[Section]:
    steps = []
    for name in sorted(snapshot.kind("composite")):
        attributes = []
        for attr in snapshot.kind("composite")[name].get("attributes") or []:
            text = f"{quote_ident(attr['name'])} {attr['type']}"
            if attr.get("collation"):
                text += f" COLLATE {quote_collation(attr['collation'])}"
            attributes.append(text)
        steps.append(Step(
            f"CREATE TYPE {quote_ident(name)} AS ({', '.join(attributes)})",
            (("composite", name),),
        ))
    return [
        section(PHASE["composite"], "Composite types", "composite", steps),
        comment_section(snapshot, "composite", lambda name, _a: f"TYPE {quote_ident(name)}"),
    ]


#: This module's kinds, with their renderers (collected by the registry, in this order).
REGISTERED: tuple[Kind, ...] = (
    Kind(
        "composite", "composite type", "composite types", "name",
        "attributes (ordered: name, type, collation), comment",
        COMPOSITES_SQL, TYPE_CATALOGS + ("pg_class", "pg_attribute", "pg_collation"),
        PHASE["composite"], 0, "op.execute", extra_destructive=True,
        address=COMPOSITES_ADDRESS, create=_composite_ddl,
        drop=drop_named("composite", "DROP TYPE", "Composite types"),
    ),
)
