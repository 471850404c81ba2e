"""The ``extension`` kind: extensions and their versions.

Read from ``pg_extension`` (plpgsql, in every database, is left out); an extension's
members (types, functions, operator classes) are addressed as the extension itself, so
what uses them depends on it. Created by ``CREATE EXTENSION IF NOT EXISTS``, dropped by
``DROP EXTENSION IF EXISTS``.
"""

from __future__ import annotations

from abparts_ops.core.quoting import quote_ident, quote_literal
from abparts_ops.core.schema.kind_order import PHASE
from abparts_ops.core.schema.kinds.base import Kind, drop_named
from abparts_ops.core.schema.steps import Section, SnapshotView, Step, section

EXTENSIONS_SQL = r"""
  -- extensions with their versions (plpgsql is in every database and says nothing)
  SELECT 'extension', e.extname::text, NULL::text,
         json_build_object('schema', n.nspname::text, 'version', e.extversion)
  FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
  WHERE e.extname <> 'plpgsql'
"""

EXTENSIONS_ADDRESS = r"""
  SELECT 'pg_extension'::regclass, e.oid, 'extension', e.extname::text
  FROM pg_extension e WHERE e.extname <> 'plpgsql'
  UNION ALL
  -- an extension's members (types and their arrays, functions, operator classes ...)
  SELECT d.classid, x.objid, 'extension', e.extname::text
  FROM pg_depend d JOIN pg_extension e ON e.oid = d.refobjid
  CROSS JOIN LATERAL (SELECT d.objid UNION ALL
                      SELECT t.typarray FROM pg_type t
                      WHERE d.classid = 'pg_type'::regclass AND t.oid = d.objid
                        AND t.typarray <> 0) x(objid)
  WHERE d.refclassid = 'pg_extension'::regclass AND d.deptype = 'e'
    AND e.extname <> 'plpgsql'
"""


def _extension_ddl(snapshot: SnapshotView) -> list[Section]:
    steps = []
    for name in sorted(snapshot.kind("extension")):
        ext = snapshot.kind("extension")[name]
        statement = (
            f"CREATE EXTENSION IF NOT EXISTS {quote_ident(name)} "
            f"WITH SCHEMA {quote_ident(ext.get('schema') or snapshot.schema)}"
        )
        if ext.get("version"):
            statement += f" VERSION {quote_literal(ext['version'])}"
        steps.append(Step(statement, (("extension", name),)))
    return [section(PHASE["extension"], "Extensions", "extension", steps)]


#: This module's kinds, with their renderers (collected by the registry, in this order).
REGISTERED: tuple[Kind, ...] = (
    Kind(
        "extension", "extension", "extensions", "name", "schema, version",
        EXTENSIONS_SQL, ("pg_extension", "pg_namespace"),
        PHASE["extension"], 0, "op.execute", address=EXTENSIONS_ADDRESS,
        create=_extension_ddl,
        drop=drop_named("extension", "DROP EXTENSION IF EXISTS", "Extensions"),
    ),
)
