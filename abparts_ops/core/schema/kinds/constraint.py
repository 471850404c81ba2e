"""The constraint kinds: ``primary_key``, ``unique``, ``check``, ``exclusion``, ``foreign_key``.

One branch of the catalog query reads them all (``pg_constraint``); a constraint a
partition or child table gets from its parent is marked ``inherited`` and not rendered
of its own. The first four (:data:`INLINE_KINDS`) are declared in their table's
``CREATE TABLE`` (:mod:`~abparts_ops.core.schema.kinds.table` renders them), or added
after it by ``ALTER TABLE ... ADD CONSTRAINT`` (:func:`add_constraint_step`) when they
cannot be declared inline (``NOT VALID``) or close a cycle; foreign keys are always
added after the tables, so that cycles between tables work. All go with their table's
``DROP TABLE``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from abparts_ops.core.quoting import quote_ident
from abparts_ops.core.schema.kind_order import PHASE
from abparts_ops.core.schema.kinds.base import (
    REL_CATALOGS,
    Kind,
    Renderer,
    comment_section,
    stable_expression,
)
from abparts_ops.core.schema.steps import Section, SnapshotView, Step, section

CONSTRAINTS_SQL = r"""
  -- constraints: primary key, foreign key, unique, check, exclusion; those a partition or
  -- child table gets from its parent are marked inherited (not rendered of their own);
  -- a key whose index is INVALID (a partitioned table's key added ONLY to the parent,
  -- a partition's index not attached yet) says index_valid false
  SELECT CASE c.contype WHEN 'p' THEN 'primary_key' WHEN 'f' THEN 'foreign_key'
                        WHEN 'u' THEN 'unique' WHEN 'c' THEN 'check' ELSE 'exclusion' END,
         r.relname || '.' || c.conname, CASE WHEN r.excluded THEN r.relname END,
         json_strip_nulls(json_build_object(
           'table', r.relname,
           'name', c.conname::text,
           'columns', CASE WHEN cardinality(c.conkey) = 1 AND c.conkey[1] > 0 THEN
             json_build_array((SELECT a.attname::text FROM pg_attribute a
                               WHERE a.attrelid = c.conrelid AND a.attnum = c.conkey[1]))
             ELSE (SELECT json_agg((SELECT a.attname::text FROM pg_attribute a
                                    WHERE a.attrelid = c.conrelid AND a.attnum = k.num)
                                   ORDER BY k.ord)
                   FROM unnest(c.conkey) WITH ORDINALITY k(num, ord) WHERE k.num > 0) END,
           'definition', pg_get_constraintdef(c.oid),
           'expression', CASE WHEN c.contype = 'c' THEN pg_get_expr(c.conbin, c.conrelid) END,
           'ref_table', CASE WHEN c.contype = 'f' THEN
             (SELECT CASE WHEN rn.nspname = %(schema)s THEN rc.relname::text
                          ELSE rn.nspname || '.' || rc.relname END
              FROM pg_class rc JOIN pg_namespace rn ON rn.oid = rc.relnamespace
              WHERE rc.oid = c.confrelid) END,
           'ref_columns', CASE WHEN c.contype = 'f' THEN
             CASE WHEN cardinality(c.confkey) = 1 AND c.confkey[1] > 0 THEN
               json_build_array((SELECT a.attname::text FROM pg_attribute a
                                 WHERE a.attrelid = c.confrelid AND a.attnum = c.confkey[1]))
             ELSE (SELECT json_agg((SELECT a.attname::text FROM pg_attribute a
                                    WHERE a.attrelid = c.confrelid AND a.attnum = k.num)
                                   ORDER BY k.ord)
                   FROM unnest(c.confkey) WITH ORDINALITY k(num, ord) WHERE k.num > 0) END
             END,
           'on_update', CASE WHEN c.contype = 'f' THEN CASE c.confupdtype
             WHEN 'a' THEN 'NO ACTION' WHEN 'r' THEN 'RESTRICT' WHEN 'c' THEN 'CASCADE'
             WHEN 'n' THEN 'SET NULL' ELSE 'SET DEFAULT' END END,
           'on_delete', CASE WHEN c.contype = 'f' THEN CASE c.confdeltype
             WHEN 'a' THEN 'NO ACTION' WHEN 'r' THEN 'RESTRICT' WHEN 'c' THEN 'CASCADE'
             WHEN 'n' THEN 'SET NULL' ELSE 'SET DEFAULT' END END,
           'match', CASE WHEN c.contype = 'f' THEN CASE c.confmatchtype
             WHEN 'f' THEN 'FULL' WHEN 'p' THEN 'PARTIAL' ELSE 'SIMPLE' END END,
           'deferrable', c.condeferrable,
           'initially_deferred', c.condeferred,
           'validated', c.convalidated,
           'no_inherit', c.connoinherit,
           'inherited', CASE WHEN c.conparentid <> 0 OR NOT c.conislocal THEN true END,
           'index_valid', CASE WHEN c.contype IN ('p', 'u', 'x') THEN
             (SELECT false FROM pg_index ix WHERE ix.indexrelid = c.conindid
                AND NOT (ix.indisvalid AND ix.indisready)) END,
           'comment', (SELECT description FROM pg_description
                       WHERE objoid = c.oid AND classoid = 'pg_constraint'::regclass)))
  FROM pg_constraint c JOIN rels r ON r.oid = c.conrelid
  WHERE c.contype IN ('p', 'f', 'u', 'c', 'x')
"""

CONSTRAINTS_ADDRESS = r"""
  -- constraints of tables; the index of a primary key, unique or exclusion constraint
  -- stands for it (not the referenced index of a foreign key: that is a dependency)
  SELECT x.classid, x.oid,
         CASE c.contype WHEN 'p' THEN 'primary_key' WHEN 'f' THEN 'foreign_key'
                        WHEN 'u' THEN 'unique' WHEN 'c' THEN 'check' ELSE 'exclusion' END,
         r.relname || '.' || c.conname
  FROM pg_constraint c JOIN rels r ON r.oid = c.conrelid
  CROSS JOIN LATERAL (VALUES ('pg_constraint'::regclass, c.oid),
    ('pg_class'::regclass, CASE WHEN c.contype IN ('p', 'u', 'x') THEN c.conindid END))
    x(classid, oid)
  WHERE c.contype IN ('p', 'f', 'u', 'c', 'x') AND x.oid IS NOT NULL AND x.oid <> 0
"""


#: Constraint kinds a table declares in its ``CREATE TABLE`` (foreign keys come after).
INLINE_KINDS = ("primary_key", "unique", "check", "exclusion")


def inline_constraint(attrs: Mapping[str, Any]) -> bool:
    """Whether a table constraint can be declared inside CREATE TABLE."""
    return bool(attrs.get("validated", True))


def add_constraint_step(con: Mapping[str, Any], kind: str) -> Step:
    """``ALTER TABLE ... ADD CONSTRAINT`` of a table constraint (after its table)."""
    return Step(
        f"ALTER TABLE {quote_ident(con['table'])} ADD CONSTRAINT {quote_ident(con['name'])} "
        f"{stable_expression(con['definition'])}",
        ((kind, f"{con['table']}.{con['name']}"),),
        (("table", con["table"]),),
    )


def foreign_keys_outside(snapshot: SnapshotView) -> list[tuple[str, str, str]]:
    """Foreign keys of compared tables that reference a table the snapshot does not hold.

    Returns ``(constraint key, table, referenced table)`` triples, sorted; a referenced
    table in another schema (``schema.table``) is not listed.
    """
    tables = set(snapshot.kind("table"))
    found = []
    for key in sorted(snapshot.kind("foreign_key")):
        fk = snapshot.kind("foreign_key")[key]
        ref = fk.get("ref_table") or ""
        if ref not in tables and (ref in snapshot.excluded or "." not in ref):
            found.append((key, fk["table"], ref))
    return found


def _foreign_key_ddl(snapshot: SnapshotView) -> list[Section]:
    fks = snapshot.kind("foreign_key")
    steps = [
        Step(
            f"ALTER TABLE {quote_ident(fk['table'])} ADD CONSTRAINT {quote_ident(fk['name'])} "
            f"{fk['definition']}",
            (("foreign_key", key),),
            (("table", fk["table"]),),
        )
        for key in sorted(fks)
        if not (fk := fks[key]).get("inherited")
    ]
    return [
        section(PHASE["foreign_key"], "Foreign keys", "foreign_key", steps),
        comment_section(snapshot, "foreign_key", lambda _k, con: (
            f"CONSTRAINT {quote_ident(con['name'])} ON {quote_ident(con['table'])}"
        )),
    ]


_CONSTRAINT_CATALOGS = REL_CATALOGS + (
    "pg_constraint", "pg_proc", "pg_operator", "pg_type", "pg_index",
)
_CONSTRAINT_ATTRS = (
    "table, name, columns, definition; checks add expression; foreign keys add ref_table, "
    "ref_columns, on_update, on_delete, match; all add deferrable, initially_deferred, "
    "validated, no_inherit, inherited (from a parent table or partitioned table), "
    "index_valid (false when the index of a primary key, unique or exclusion constraint is "
    "INVALID) and comment when set"
)


def _constraint(
    name: str, singular: str, plural: str, baseline: str, phase: int,
    create: Renderer | None = None,
) -> Kind:
    return Kind(
        name=name,
        singular=singular,
        plural=plural,
        key="table.constraint",
        attrs=_CONSTRAINT_ATTRS,
        sql=CONSTRAINTS_SQL,
        catalogs=_CONSTRAINT_CATALOGS,
        phase=phase,
        half=1,
        baseline=baseline,
        dropped_with=("table",),
        rendered_with=None if name == "foreign_key" else "table",
        address=CONSTRAINTS_ADDRESS,
        create=create,
    )


#: This module's kinds, with their renderers (collected by the registry, in this order).
REGISTERED: tuple[Kind, ...] = (
    _constraint("primary_key", "primary key", "primary keys", "op.create_table", PHASE["table"]),
    _constraint("unique", "unique constraint", "unique constraints", "op.create_table",
                PHASE["table"]),
    _constraint("check", "check constraint", "check constraints", "op.create_table",
                PHASE["table"]),
    _constraint("exclusion", "exclusion constraint", "exclusion constraints", "op.execute",
                PHASE["late_constraint"]),
    _constraint("foreign_key", "foreign key", "foreign keys", "op.create_foreign_key",
                PHASE["foreign_key"], create=_foreign_key_ddl),
)
