"""The registry of object kinds: every kind the snapshot models, declared once.

Each :class:`Kind` says what the kind is called, how its rows are keyed, which branch of
the catalog query reads it (the ``UNION ALL`` part, with the catalogs that branch reads,
so the catalog token can be checked to cover them), where it comes in dependency order,
how the baseline creates it (an Alembic ``op`` where one exists, else ``op.execute`` of
the canonical DDL), and how the downgrade removes it (by itself, or together with the
kind that owns it). The snapshot (:mod:`~abparts_ops.core.schema.catalog_sql`), the
canonical DDL (:mod:`~abparts_ops.core.schema.ddl`), the diff, the baseline renderer and
the format's documentation (:mod:`~abparts_ops.core.schema.model`) read this registry;
adding a kind is one entry here, its renderers, and its tests.

Branch SQL conventions (see ``catalog_sql``'s performance notes): each branch returns
``(kind, key, owner, attrs json)``; per-row lookups go through a catalog index (by oid)
and run only for the rows that need them (``CASE WHEN ... THEN (SELECT ...) END``), never
as a scan per row. Parameters: ``%(schema)s``, ``%(excl)s`` and ``%(privileges)s``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

EXTENSIONS_SQL = r"""
  -- extensions with their versions (plpgsql is in every database and says nothing)
  SELECT 'extension', e.extname::text, NULL::text,
         json_build_object('schema', n.nspname::text, 'version', e.extversion)
  FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
  WHERE e.extname <> 'plpgsql'
"""

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

DOMAINS_SQL = r"""
  -- domains
  SELECT 'domain', t.typname::text,
         CASE WHEN t.typname::text ~ ANY (%(excl)s::text[]) THEN t.typname::text END,
         json_build_object(
           'type', format_type(t.typbasetype, t.typtypmod),
           'nullable', NOT t.typnotnull,
           'default', t.typdefault,
           'checks', (SELECT json_agg(pg_get_constraintdef(c.oid) ORDER BY c.conname)
                      FROM pg_constraint c WHERE c.contypid = t.oid))
  FROM pg_type t JOIN ns ON t.typnamespace = ns.oid
  WHERE t.typtype = 'd'
    AND NOT EXISTS (SELECT 1 FROM pg_depend e WHERE e.classid = 'pg_type'::regclass
                    AND e.objid = t.oid AND e.deptype = 'e')
"""

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

FUNCTIONS_SQL = r"""
  -- functions and procedures, as the server prints them (pg_get_functiondef); members
  -- of extensions and the constructors of range types (internal dependencies) are left
  -- out; aggregates and window functions are not modelled
  SELECT 'function', p.proname::text || '(' || pg_get_function_identity_arguments(p.oid) || ')',
         CASE WHEN p.proname::text ~ ANY (%(excl)s::text[]) THEN p.proname::text END,
         json_build_object(
           'name', p.proname::text,
           'procedure', p.prokind = 'p',
           'arguments', pg_get_function_identity_arguments(p.oid),
           'definition', pg_get_functiondef(p.oid),
           'comment', (SELECT description FROM pg_description
                       WHERE objoid = p.oid AND classoid = 'pg_proc'::regclass))
  FROM pg_proc p JOIN ns ON p.pronamespace = ns.oid
  WHERE p.prokind IN ('f', 'p')
    AND NOT EXISTS (SELECT 1 FROM pg_depend e WHERE e.classid = 'pg_proc'::regclass
                    AND e.objid = p.oid AND e.deptype IN ('e', 'i'))
"""

SEQUENCES_SQL = r"""
  -- standalone sequences (identity sequences belong to their column)
  SELECT 'sequence', r.relname,
         CASE WHEN so.excluded THEN so.relname WHEN r.excluded THEN r.relname END,
         json_build_object(
           'data_type', format_type(s.seqtypid, NULL),
           'start', s.seqstart, 'increment', s.seqincrement,
           'min_value', s.seqmin, 'max_value', s.seqmax,
           'cache', s.seqcache, 'cycle', s.seqcycle,
           'owned_by', CASE WHEN so.relname IS NOT NULL
                            THEN so.relname || '.' || so.attname END,
           'comment', d.description)
  FROM rels r
  JOIN pg_sequence s ON s.seqrelid = r.oid
  LEFT JOIN seq_owner so ON so.seqoid = r.oid AND so.deptype = 'a'
  LEFT JOIN descr d ON d.objoid = r.oid AND d.objsubid = 0
  WHERE r.relkind = 'S'
    AND NOT EXISTS (SELECT 1 FROM seq_owner i WHERE i.seqoid = r.oid AND i.deptype = 'i')
"""

TABLES_SQL = r"""
  -- tables: partitioning (key; parent and bound of a partition), persistence, row security
  SELECT 'table', r.relname, CASE WHEN r.excluded THEN r.relname END,
         json_build_object(
           'partitioned', r.relkind = 'p',
           'partition_key', CASE WHEN r.relkind = 'p' THEN pg_get_partkeydef(r.oid) END,
           'partition_of', CASE WHEN r.relispartition THEN
             (SELECT pc.relname::text FROM pg_inherits inh
              JOIN pg_class pc ON pc.oid = inh.inhparent WHERE inh.inhrelid = r.oid) END,
           'partition_bound', CASE WHEN r.relispartition THEN
             pg_get_expr(r.relpartbound, r.oid) END,
           'unlogged', r.relpersistence = 'u',
           'foreign', r.relkind = 'f',
           'row_security', r.relrowsecurity,
           'force_row_security', r.relforcerowsecurity,
           'comment', d.description)
  FROM rels r
  LEFT JOIN descr d ON d.objoid = r.oid AND d.objsubid = 0
  WHERE r.relkind IN ('r', 'p', 'f')
"""

COLUMNS_SQL = r"""
  -- columns (the most numerous rows: built with row_to_json, which costs a quarter less
  -- than json_build_object; position is attnum minus the dropped columns before it, i.e.
  -- the rank among live columns, without sorting every column; defaults have no Vars,
  -- so they deparse without a relation context; identity and default lookups run only
  -- for the columns that have one)
  SELECT 'column', r.relname || '.' || a.attname, CASE WHEN r.excluded THEN r.relname END,
         row_to_json(x)
  FROM rels r
  JOIN pg_attribute a ON a.attrelid = r.oid AND a.attnum > 0 AND NOT a.attisdropped
  JOIN pg_type t ON t.oid = a.atttypid
  LEFT JOIN descr d ON d.objoid = r.oid AND d.objsubid = a.attnum
  LEFT JOIN dropped dr ON dr.attrelid = r.oid
  CROSS JOIN LATERAL (SELECT
    r.relname AS "table",
    a.attname::text AS "name",
    a.attnum - CASE WHEN dr.nums IS NULL THEN 0 ELSE
      (SELECT count(*) FROM unnest(dr.nums) n WHERE n < a.attnum) END AS "position",
    format_type(a.atttypid, a.atttypmod) AS "type",
    NOT a.attnotnull AS "nullable",
    CASE WHEN a.atthasdef AND a.attgenerated = '' THEN
      (SELECT pg_get_expr(ad.adbin, 0) FROM pg_attrdef ad
       WHERE ad.adrelid = a.attrelid AND ad.adnum = a.attnum) END AS "default",
    CASE WHEN a.atthasdef AND a.attgenerated <> '' THEN
      (SELECT pg_get_expr(ad.adbin, ad.adrelid) FROM pg_attrdef ad
       WHERE ad.adrelid = a.attrelid AND ad.adnum = a.attnum) END AS "generated",
    CASE WHEN a.attidentity <> '' THEN
      (SELECT json_build_object(
         'always', a.attidentity = 'a',
         'start', s.seqstart, 'increment', s.seqincrement,
         'min_value', s.seqmin, 'max_value', s.seqmax,
         'cache', s.seqcache, 'cycle', s.seqcycle)
       FROM pg_depend dep JOIN pg_sequence s ON s.seqrelid = dep.objid
       WHERE dep.refclassid = 'pg_class'::regclass AND dep.refobjid = a.attrelid
         AND dep.refobjsubid = a.attnum AND dep.deptype = 'i'
         AND dep.classid = 'pg_class'::regclass) END AS "identity",
    CASE WHEN a.attcollation <> t.typcollation THEN
      (SELECT collname::text FROM pg_collation WHERE oid = a.attcollation) END AS "collation",
    d.description AS "comment") x
  WHERE r.relkind IN ('r', 'p', 'f')
"""

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

INDEXES_SQL = r"""
  -- indexes that do not back a constraint (a partition's index attached to its parent's
  -- partitioned index names it in parent_index). An INVALID index (indisvalid or
  -- indisready false: a failed CREATE INDEX CONCURRENTLY, or a partitioned index created
  -- ON ONLY whose partitions' indexes are not all attached) adds "valid": false; a
  -- valid one has no such key, so its row (and every fingerprint) is what it was before
  -- validity was read
  SELECT 'index', ic.relname::text, CASE WHEN r.excluded THEN r.relname END,
         CASE WHEN i.indisvalid AND i.indisready THEN x.attrs
              ELSE (x.attrs::jsonb || '{"valid": false}'::jsonb)::json END
  FROM pg_index i
  JOIN rels r ON r.oid = i.indrelid
  JOIN pg_class ic ON ic.oid = i.indexrelid
  JOIN pg_am am ON am.oid = ic.relam
  LEFT JOIN descr d ON d.objoid = i.indexrelid AND d.objsubid = 0
  CROSS JOIN LATERAL (SELECT json_build_object(
           'table', r.relname,
           'unique', i.indisunique,
           'method', am.amname::text,
           'keys', (SELECT json_agg(
                      pg_get_indexdef(i.indexrelid, k.n, true)
                      || CASE WHEN opc.opcdefault OR opc.opcname IS NULL THEN ''
                              ELSE ' ' || opc.opcname END
                      || CASE WHEN i.indoption[k.n - 1] & 1 = 1 THEN ' DESC' ELSE '' END
                      || CASE WHEN i.indoption[k.n - 1] & 3 = 2 THEN ' NULLS FIRST'
                              WHEN i.indoption[k.n - 1] & 3 = 1 THEN ' NULLS LAST'
                              ELSE '' END
                      ORDER BY k.n)
                    FROM generate_series(1, i.indnkeyatts) k(n)
                    LEFT JOIN pg_opclass opc ON opc.oid = i.indclass[k.n - 1]),
           'include', (SELECT json_agg(pg_get_indexdef(i.indexrelid, k.n, true) ORDER BY k.n)
                       FROM generate_series(i.indnkeyatts + 1, i.indnatts) k(n)),
           'predicate', pg_get_expr(i.indpred, i.indrelid, true),
           'nulls_not_distinct', i.indnullsnotdistinct,
           'parent_index', CASE WHEN r.relispartition THEN
             (SELECT pc.relname::text FROM pg_inherits inh
              JOIN pg_class pc ON pc.oid = inh.inhparent WHERE inh.inhrelid = i.indexrelid) END,
           'definition', regexp_replace(pg_get_indexdef(i.indexrelid),
                                        ' ON (ONLY )?' || quote_ident(%(schema)s) || '\.',
                                        ' ON \1'),
           'comment', d.description) AS attrs) x
  WHERE NOT EXISTS (SELECT 1 FROM pg_constraint c
                    WHERE c.conindid = i.indexrelid AND c.conrelid = i.indrelid
                      AND c.contype IN ('p', 'u', 'x'))
"""

VIEWS_SQL = r"""
  -- views and materialized views
  SELECT 'view', r.relname, CASE WHEN r.excluded THEN r.relname END,
         json_build_object(
           'materialized', r.relkind = 'm',
           'definition', pg_get_viewdef(r.oid, true),
           'comment', d.description)
  FROM rels r
  LEFT JOIN descr d ON d.objoid = r.oid AND d.objsubid = 0
  WHERE r.relkind IN ('v', 'm')
"""

TRIGGERS_SQL = r"""
  -- triggers, constraint triggers included (not the internal ones of foreign keys, nor
  -- the clones a partition gets from its partitioned table's trigger)
  SELECT 'trigger', r.relname || '.' || t.tgname, CASE WHEN r.excluded THEN r.relname END,
         json_build_object(
           'table', r.relname,
           'name', t.tgname::text,
           'constraint', t.tgconstraint <> 0,
           'enabled', t.tgenabled::text,
           'definition', pg_get_triggerdef(t.oid),
           'comment', (SELECT description FROM pg_description
                       WHERE objoid = t.oid AND classoid = 'pg_trigger'::regclass))
  FROM pg_trigger t JOIN rels r ON r.oid = t.tgrelid
  WHERE NOT t.tgisinternal AND t.tgparentid = 0
"""

POLICIES_SQL = r"""
  -- row-level security policies
  SELECT 'policy', r.relname || '.' || p.polname, CASE WHEN r.excluded THEN r.relname END,
         json_build_object(
           'table', r.relname,
           'name', p.polname::text,
           'permissive', p.polpermissive,
           'command', CASE p.polcmd WHEN 'r' THEN 'SELECT' WHEN 'a' THEN 'INSERT'
                      WHEN 'w' THEN 'UPDATE' WHEN 'd' THEN 'DELETE' ELSE 'ALL' END,
           'roles', (SELECT json_agg(g.name ORDER BY g.name)
                     FROM (SELECT CASE WHEN x.role = 0 THEN 'PUBLIC'
                                       ELSE pg_get_userbyid(x.role)::text END AS name
                           FROM unnest(p.polroles) x(role)) g),
           'using', pg_get_expr(p.polqual, p.polrelid),
           'with_check', pg_get_expr(p.polwithcheck, p.polrelid),
           'comment', (SELECT description FROM pg_description
                       WHERE objoid = p.oid AND classoid = 'pg_policy'::regclass))
  FROM pg_policy p JOIN rels r ON r.oid = p.polrelid
"""

RULES_SQL = r"""
  -- rewrite rules (not the _RETURN rule that makes a view)
  SELECT 'rule', r.relname || '.' || w.rulename, CASE WHEN r.excluded THEN r.relname END,
         json_build_object(
           'table', r.relname,
           'name', w.rulename::text,
           'enabled', w.ev_enabled::text,
           'definition', pg_get_ruledef(w.oid),
           'comment', (SELECT description FROM pg_description
                       WHERE objoid = w.oid AND classoid = 'pg_rewrite'::regclass))
  FROM pg_rewrite w JOIN rels r ON r.oid = w.ev_class
  WHERE w.rulename <> '_RETURN'
"""

PRIVILEGES_SQL = r"""
  -- privileges granted on tables, views, sequences, functions and procedures, one row
  -- per object and grantee (only with %(privileges)s: roles differ between environments;
  -- the owner's own privileges are left out, as ownership is)
  SELECT 'privilege', o.what || ' ' || o.name || ' ' || g.grantee, o.owner,
         json_build_object('object_type', o.what, 'object', o.name, 'grantee', g.grantee,
                           'privileges', g.privileges, 'grantable', g.grantable)
  FROM (
    SELECT CASE r.relkind WHEN 'S' THEN 'SEQUENCE' ELSE 'TABLE' END AS what, r.relname AS name,
           CASE WHEN r.excluded THEN r.relname END AS owner, r.relacl AS acl,
           r.relowner AS ownerid
    FROM rels r
    WHERE %(privileges)s AND r.relacl IS NOT NULL
    UNION ALL
    SELECT CASE p.prokind WHEN 'p' THEN 'PROCEDURE' ELSE 'FUNCTION' END,
           p.proname::text || '(' || pg_get_function_identity_arguments(p.oid) || ')',
           CASE WHEN p.proname::text ~ ANY (%(excl)s::text[]) THEN p.proname::text END,
           p.proacl, p.proowner
    FROM pg_proc p JOIN ns ON p.pronamespace = ns.oid
    WHERE %(privileges)s AND p.proacl IS NOT NULL AND p.prokind IN ('f', 'p')
      AND NOT EXISTS (SELECT 1 FROM pg_depend e WHERE e.classid = 'pg_proc'::regclass
                      AND e.objid = p.oid AND e.deptype IN ('e', 'i'))
  ) o
  CROSS JOIN LATERAL (
    SELECT CASE WHEN x.grantee = 0 THEN 'PUBLIC'
                ELSE pg_get_userbyid(x.grantee)::text END AS grantee,
           json_agg(x.privilege_type ORDER BY x.privilege_type) AS privileges,
           coalesce(json_agg(x.privilege_type ORDER BY x.privilege_type)
                    FILTER (WHERE x.is_grantable), '[]') AS grantable
    FROM aclexplode(o.acl) x
    WHERE x.grantee <> o.ownerid
    GROUP BY x.grantee
  ) g
"""

# -- Object addresses: how the catalog's (classid, objid) of each kind's objects map to
# their snapshot keys, for the dependency query (catalog_sql.DEPENDENCIES_SQL). Each
# branch returns (classid, objid, kind, key); the catalog rows that stand for an object
# (its row type and array type, the index of a key, the _RETURN rule of a view, the
# members of an extension) map to the object itself, so PostgreSQL's dependencies
# between them become dependencies between the snapshot's objects. Sub-objects (columns)
# are addressed by their relation: the join ignores objsubid. A column's default is the
# one sub-object of its own ("column_default", table.column), so that a cycle through it
# can be broken by setting it after the table (pg_dump does the same).

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


def _type_address(kind: str, typtype: str) -> str:
    return rf"""
  SELECT 'pg_type'::regclass, x.oid, '{kind}', t.typname::text
  FROM pg_type t JOIN ns ON t.typnamespace = ns.oid
  CROSS JOIN LATERAL unnest(ARRAY[t.oid, t.typarray]) x(oid)
  WHERE t.typtype = '{typtype}' AND x.oid <> 0
"""


ENUMS_ADDRESS = _type_address("enum", "e")

DOMAINS_ADDRESS = _type_address("domain", "d") + r"""
  UNION ALL
  SELECT 'pg_constraint'::regclass, c.oid, 'domain', t.typname::text
  FROM pg_constraint c JOIN pg_type t ON t.oid = c.contypid
  JOIN ns ON t.typnamespace = ns.oid
"""

RANGES_ADDRESS = _type_address("range", "r") + r"""
  UNION ALL
  SELECT 'pg_type'::regclass, x.oid, 'range', t.typname::text
  FROM pg_range g JOIN pg_type t ON t.oid = g.rngtypid
  JOIN ns ON t.typnamespace = ns.oid
  JOIN pg_type m ON m.oid = g.rngmultitypid
  CROSS JOIN LATERAL unnest(ARRAY[m.oid, m.typarray]) x(oid)
  WHERE x.oid <> 0
"""

COMPOSITES_ADDRESS = r"""
  SELECT x.classid, x.oid, 'composite', t.typname::text
  FROM pg_type t JOIN ns ON t.typnamespace = ns.oid
  JOIN pg_class c ON c.oid = t.typrelid
  CROSS JOIN LATERAL (VALUES ('pg_type'::regclass, t.oid), ('pg_type'::regclass, t.typarray),
                             ('pg_class'::regclass, c.oid)) x(classid, oid)
  WHERE t.typtype = 'c' AND c.relkind = 'c' AND x.oid <> 0
"""

FUNCTIONS_ADDRESS = r"""
  SELECT 'pg_proc'::regclass, p.oid, 'function',
         p.proname::text || '(' || pg_get_function_identity_arguments(p.oid) || ')'
  FROM pg_proc p JOIN ns ON p.pronamespace = ns.oid
  WHERE p.prokind IN ('f', 'p')
"""

SEQUENCES_ADDRESS = r"""
  -- an identity sequence stands for its table (it is part of the column)
  SELECT 'pg_class'::regclass, r.oid,
         CASE WHEN i.seqoid IS NULL THEN 'sequence' ELSE 'table' END,
         CASE WHEN i.seqoid IS NULL THEN r.relname ELSE i.relname END
  FROM rels r LEFT JOIN seq_owner i ON i.seqoid = r.oid AND i.deptype = 'i'
  WHERE r.relkind = 'S'
"""

TABLES_ADDRESS = r"""
  SELECT x.classid, x.oid, 'table', r.relname
  FROM rels r
  CROSS JOIN LATERAL (VALUES ('pg_class'::regclass, r.oid), ('pg_type'::regclass, r.reltype),
    ('pg_type'::regclass, (SELECT t.typarray FROM pg_type t WHERE t.oid = r.reltype)))
    x(classid, oid)
  WHERE r.relkind IN ('r', 'p', 'f') AND x.oid <> 0
"""

COLUMNS_ADDRESS = r"""
  -- a column's default (a generated column's expression is part of its table)
  SELECT 'pg_attrdef'::regclass, ad.oid,
         CASE WHEN a.attgenerated = '' THEN 'column_default' ELSE 'table' END,
         CASE WHEN a.attgenerated = '' THEN r.relname || '.' || a.attname ELSE r.relname END
  FROM pg_attrdef ad
  JOIN rels r ON r.oid = ad.adrelid
  JOIN pg_attribute a ON a.attrelid = ad.adrelid AND a.attnum = ad.adnum
  WHERE r.relkind IN ('r', 'p', 'f')
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

INDEXES_ADDRESS = r"""
  SELECT 'pg_class'::regclass, i.indexrelid, 'index', ic.relname::text
  FROM pg_index i
  JOIN rels r ON r.oid = i.indrelid
  JOIN pg_class ic ON ic.oid = i.indexrelid
  WHERE NOT EXISTS (SELECT 1 FROM pg_constraint c
                    WHERE c.conindid = i.indexrelid AND c.conrelid = i.indrelid
                      AND c.contype IN ('p', 'u', 'x'))
"""

VIEWS_ADDRESS = r"""
  -- a view, its row type and array type, and its _RETURN rule (what it reads)
  SELECT x.classid, x.oid, 'view', r.relname
  FROM rels r
  CROSS JOIN LATERAL (VALUES ('pg_class'::regclass, r.oid), ('pg_type'::regclass, r.reltype),
    ('pg_type'::regclass, (SELECT t.typarray FROM pg_type t WHERE t.oid = r.reltype)),
    ('pg_rewrite'::regclass, (SELECT w.oid FROM pg_rewrite w
                              WHERE w.ev_class = r.oid AND w.rulename = '_RETURN')))
    x(classid, oid)
  WHERE r.relkind IN ('v', 'm') AND x.oid IS NOT NULL AND x.oid <> 0
"""

TRIGGERS_ADDRESS = r"""
  -- triggers (a constraint trigger's pg_constraint row stands for it)
  SELECT x.classid, x.oid, 'trigger', r.relname || '.' || t.tgname
  FROM pg_trigger t JOIN rels r ON r.oid = t.tgrelid
  CROSS JOIN LATERAL (VALUES ('pg_trigger'::regclass, t.oid),
                             ('pg_constraint'::regclass, t.tgconstraint)) x(classid, oid)
  WHERE NOT t.tgisinternal AND t.tgparentid = 0 AND x.oid <> 0
"""

POLICIES_ADDRESS = r"""
  SELECT 'pg_policy'::regclass, p.oid, 'policy', r.relname || '.' || p.polname
  FROM pg_policy p JOIN rels r ON r.oid = p.polrelid
"""

RULES_ADDRESS = r"""
  SELECT 'pg_rewrite'::regclass, w.oid, 'rule', r.relname || '.' || w.rulename
  FROM pg_rewrite w JOIN rels r ON r.oid = w.ev_class
  WHERE w.rulename <> '_RETURN'
"""


#: Dependency order of creation (ascending) and of removal (descending). A kind's own
#: statements come in its phase; some kinds add statements to later phases (constraints
#: that must wait for every table, sequence ownership, row security, comments).
PHASE: Mapping[str, int] = {
    "extension": 10,
    "enum": 20,
    "domain": 30,
    "range": 32,
    "composite": 34,
    "function": 40,  # before tables: defaults and checks call them
    "sequence": 50,
    "table": 60,
    "partition": 62,  # after every partitioned table
    "foreign_key": 70,
    "late_constraint": 75,
    "late_default": 76,  # column defaults set after the objects they use (a cycle broken)
    "table_function": 78,  # functions whose signature names a table's row type
    "sequence_owner": 80,
    "view": 90,
    "index": 100,
    "row_security": 105,
    "trigger": 110,  # after its table and its function
    "policy": 120,
    "rule": 130,
    "comment": 200,
    "privilege": 210,
}


@dataclass(frozen=True)
class Kind:
    """One object kind of the snapshot.

    ``sql`` is its branch of the catalog query (kinds read by one branch share it);
    ``catalogs`` every catalog that branch reads, directly or through the deparse
    functions it calls; ``phase`` its place in :data:`PHASE`; ``half`` which of the two
    statements of a parallel read holds it; ``baseline`` the Alembic operation the
    baseline creates it with (``op.execute`` means the canonical DDL statement);
    ``rendered_with`` the kind whose DDL renderer declares it too (columns and inline
    constraints: in CREATE TABLE); ``dropped_with`` the kinds whose removal removes it
    too (empty: removed by a statement of its own); ``missing_destructive`` and
    ``extra_destructive`` whether an object missing from / extra in an environment is a
    destructive difference; ``opt_in`` the snapshot parameter without which the kind is
    not read. ``address`` is its branch of the dependency query: how the catalog rows
    that make up its objects map to their keys (empty: the kind has no dependencies of
    its own, e.g. privileges).
    """

    name: str
    singular: str
    plural: str
    key: str
    attrs: str
    sql: str
    catalogs: tuple[str, ...]
    phase: int
    half: int
    baseline: str
    dropped_with: tuple[str, ...] = ()
    rendered_with: str | None = None
    missing_destructive: bool = False
    extra_destructive: bool = False
    opt_in: str | None = None
    address: str = ""


_TYPE_CATALOGS = ("pg_type", "pg_namespace", "pg_depend", "pg_description")
_REL_CATALOGS = ("pg_class", "pg_namespace", "pg_depend", "pg_description", "pg_attribute")
_CONSTRAINT_CATALOGS = _REL_CATALOGS + (
    "pg_constraint", "pg_proc", "pg_operator", "pg_type", "pg_index",
)
_CONSTRAINT_ATTRS = (
    "table, name, columns, definition; checks add expression; foreign keys add ref_table, "
    "ref_columns, on_update, on_delete, match; all add deferrable, initially_deferred, "
    "validated, no_inherit, inherited (from a parent table or partitioned table), "
    "index_valid (false when the index of a primary key, unique or exclusion constraint is "
    "INVALID) and comment when set"
)


def _constraint(name: str, singular: str, plural: str, baseline: str, phase: int) -> Kind:
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
    )


REGISTRY: tuple[Kind, ...] = (
    Kind(
        "extension", "extension", "extensions", "name", "schema, version",
        EXTENSIONS_SQL, ("pg_extension", "pg_namespace"),
        PHASE["extension"], 0, "op.execute", address=EXTENSIONS_ADDRESS,
    ),
    Kind(
        "enum", "enum", "enums", "name", "labels (ordered), comment",
        ENUMS_SQL, _TYPE_CATALOGS + ("pg_enum",),
        PHASE["enum"], 0, "op.execute", extra_destructive=True, address=ENUMS_ADDRESS,
    ),
    Kind(
        "domain", "domain", "domains", "name", "type, nullable, default, checks",
        DOMAINS_SQL, _TYPE_CATALOGS + ("pg_constraint", "pg_proc", "pg_operator", "pg_attribute"),
        PHASE["domain"], 0, "op.execute", extra_destructive=True, address=DOMAINS_ADDRESS,
    ),
    Kind(
        "range", "range type", "range types", "name",
        "subtype, multirange, collation, subtype_opclass, canonical, subtype_diff, comment",
        RANGES_SQL, _TYPE_CATALOGS + ("pg_range", "pg_collation", "pg_opclass", "pg_proc"),
        PHASE["range"], 0, "op.execute", extra_destructive=True, address=RANGES_ADDRESS,
    ),
    Kind(
        "composite", "composite type", "composite types", "name",
        "attributes (ordered: name, type, collation), comment",
        COMPOSITES_SQL, _TYPE_CATALOGS + ("pg_class", "pg_attribute", "pg_collation"),
        PHASE["composite"], 0, "op.execute", extra_destructive=True,
        address=COMPOSITES_ADDRESS,
    ),
    Kind(
        "function", "function", "functions", "name(identity arguments)",
        "name, procedure, arguments, definition (pg_get_functiondef), comment",
        FUNCTIONS_SQL,
        ("pg_proc", "pg_namespace", "pg_depend", "pg_description", "pg_type", "pg_language",
         "pg_class", "pg_attribute", "pg_operator", "pg_collation"),
        PHASE["function"], 0, "op.execute", address=FUNCTIONS_ADDRESS,
    ),
    Kind(
        "sequence", "sequence", "sequences", "name",
        "data_type, start, increment, min_value, max_value, cache, cycle, owned_by "
        "(table.column or None), comment",
        SEQUENCES_SQL, _REL_CATALOGS + ("pg_sequence", "pg_type"),
        PHASE["sequence"], 0, "op.execute", extra_destructive=True,
        address=SEQUENCES_ADDRESS,
    ),
    Kind(
        "table", "table", "tables", "name",
        "partitioned, partition_key, partition_of, partition_bound, unlogged, foreign, "
        "row_security, force_row_security, comment",
        TABLES_SQL,
        _REL_CATALOGS + ("pg_inherits", "pg_partitioned_table", "pg_opclass", "pg_collation",
                         "pg_proc", "pg_type", "pg_operator"),
        PHASE["table"], 0, "op.create_table", extra_destructive=True,
        address=TABLES_ADDRESS,
    ),
    Kind(
        "column", "column", "columns", "table.column",
        "table, name, position, type, nullable, default, generated, identity (None or "
        "{always, start, increment, min_value, max_value, cache, cycle}), collation, comment",
        COLUMNS_SQL,
        _REL_CATALOGS + ("pg_type", "pg_attrdef", "pg_sequence", "pg_collation", "pg_proc",
                         "pg_operator"),
        PHASE["table"], 0, "op.create_table", dropped_with=("table",), extra_destructive=True,
        rendered_with="table", address=COLUMNS_ADDRESS,
    ),
    _constraint("primary_key", "primary key", "primary keys", "op.create_table", PHASE["table"]),
    _constraint("unique", "unique constraint", "unique constraints", "op.create_table",
                PHASE["table"]),
    _constraint("check", "check constraint", "check constraints", "op.create_table",
                PHASE["table"]),
    _constraint("exclusion", "exclusion constraint", "exclusion constraints", "op.execute",
                PHASE["late_constraint"]),
    _constraint("foreign_key", "foreign key", "foreign keys", "op.create_foreign_key",
                PHASE["foreign_key"]),
    Kind(
        "index", "index", "indexes", "name",
        "table, unique, method, keys, include, predicate, nulls_not_distinct, parent_index, "
        "definition, comment; valid (false, only on an INVALID index: a failed CREATE INDEX "
        "CONCURRENTLY, or a partitioned index not attached on every partition)",
        INDEXES_SQL,
        _REL_CATALOGS + ("pg_index", "pg_am", "pg_opclass", "pg_constraint", "pg_inherits",
                         "pg_collation", "pg_proc", "pg_operator", "pg_type"),
        PHASE["index"], 1, "op.create_index", dropped_with=("table",),
        address=INDEXES_ADDRESS,
    ),
    Kind(
        "view", "view", "views", "name", "materialized, definition, comment",
        VIEWS_SQL,
        _REL_CATALOGS + ("pg_rewrite", "pg_proc", "pg_operator", "pg_type", "pg_collation"),
        PHASE["view"], 0, "op.execute", address=VIEWS_ADDRESS,
    ),
    Kind(
        "trigger", "trigger", "triggers", "table.trigger",
        "table, name, constraint, enabled, definition (pg_get_triggerdef), comment",
        TRIGGERS_SQL,
        _REL_CATALOGS + ("pg_trigger", "pg_proc", "pg_type", "pg_operator", "pg_constraint"),
        PHASE["trigger"], 0, "op.execute", dropped_with=("table",), missing_destructive=True,
        address=TRIGGERS_ADDRESS,
    ),
    Kind(
        "policy", "policy", "policies", "table.policy",
        "table, name, permissive, command, roles, using, with_check, comment",
        POLICIES_SQL,
        _REL_CATALOGS + ("pg_policy", "pg_authid", "pg_proc", "pg_type", "pg_operator"),
        PHASE["policy"], 0, "op.execute", missing_destructive=True,
        address=POLICIES_ADDRESS,
    ),
    Kind(
        "rule", "rule", "rules", "table.rule", "table, name, enabled, definition, comment",
        RULES_SQL,
        _REL_CATALOGS + ("pg_rewrite", "pg_proc", "pg_type", "pg_operator"),
        PHASE["rule"], 0, "op.execute", address=RULES_ADDRESS,
    ),
    Kind(
        "privilege", "privilege", "privileges", "OBJECT_TYPE object grantee",
        "object_type (TABLE, SEQUENCE, FUNCTION, PROCEDURE), object, grantee, privileges, "
        "grantable",
        PRIVILEGES_SQL,
        _REL_CATALOGS + ("pg_proc", "pg_authid", "pg_type"),
        PHASE["privilege"], 1, "op.execute", dropped_with=("table", "sequence", "function"),
        opt_in="privileges",
    ),
)

KINDS: tuple[str, ...] = tuple(kind.name for kind in REGISTRY)
BY_NAME: Mapping[str, Kind] = {kind.name: kind for kind in REGISTRY}


def branches(half: int | None = None) -> tuple[str, ...]:
    """The distinct query branches, in registry order (only those of ``half`` if given)."""
    seen: list[str] = []
    for kind in REGISTRY:
        if (half is None or kind.half == half) and kind.sql not in seen:
            seen.append(kind.sql)
    return tuple(seen)


def addresses() -> tuple[str, ...]:
    """The distinct address branches of the dependency query, in registry order."""
    seen: list[str] = []
    for kind in REGISTRY:
        if kind.address and kind.address not in seen:
            seen.append(kind.address)
    return tuple(seen)


def format_doc() -> str:
    """The kinds and their attributes as a reST list (the snapshot format's documentation)."""
    lines = []
    for kind in REGISTRY:
        extra = f" (only with ``{kind.opt_in}=True``)" if kind.opt_in else ""
        lines.append(f"- ``{kind.name}`` (key ``{kind.key}``){extra}: {kind.attrs}")
    return "\n".join(lines)
