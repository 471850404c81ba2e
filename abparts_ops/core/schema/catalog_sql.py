"""The catalog query behind both the snapshot and the cheap probe.

One statement returns one row per schema object: ``(kind, key, owner, attrs)``, where
``attrs`` is a ``jsonb`` object with everything that defines the object and nothing that
varies between databases (no OIDs, no creation order; column positions are ranks among
live columns). ``owner`` is the name of the excluded top-level object a row belongs to,
or NULL for objects that are compared. Because the snapshot and the probe read the very
same rows, a probe fingerprint changes exactly when the snapshot would.

Parameters: ``%(schema)s`` (the schema name) and ``%(excl)s`` (a text[] of anchored
POSIX regexes, see :mod:`abparts_ops.core.schema.exclusions`).
"""

from __future__ import annotations

OBJECTS_CTE = r"""
ns AS (
  SELECT oid, nspname FROM pg_namespace WHERE nspname = %(schema)s
),
rels AS (
  SELECT c.oid, c.relname::text AS relname, c.relkind, c.relpersistence,
         c.relname::text ~ ANY (%(excl)s::text[]) AS excluded
  FROM pg_class c JOIN ns ON c.relnamespace = ns.oid
  WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')
    AND NOT EXISTS (SELECT 1 FROM pg_depend e WHERE e.classid = 'pg_class'::regclass
                    AND e.objid = c.oid AND e.deptype = 'e')
),
descr AS (
  SELECT objoid, objsubid, description FROM pg_description
  WHERE classoid = 'pg_class'::regclass
),
seq_owner AS (
  SELECT d.objid AS seqoid, d.deptype, r.relname, r.excluded, a.attname::text AS attname
  FROM pg_depend d
  JOIN rels r ON r.oid = d.refobjid
  JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
  WHERE d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_class'::regclass
    AND d.deptype IN ('a', 'i')
),
objs AS MATERIALIZED (
  -- extensions (plpgsql is in every database and says nothing about the schema)
  SELECT 'extension'::text AS kind, e.extname::text AS key, NULL::text AS owner,
         jsonb_build_object('schema', n.nspname::text) AS attrs
  FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
  WHERE e.extname <> 'plpgsql'

  UNION ALL
  -- enum types with their labels in sort order
  SELECT 'enum', t.typname::text,
         CASE WHEN t.typname::text ~ ANY (%(excl)s::text[]) THEN t.typname::text END,
         jsonb_build_object(
           'labels', (SELECT jsonb_agg(e.enumlabel::text ORDER BY e.enumsortorder)
                      FROM pg_enum e WHERE e.enumtypid = t.oid),
           'comment', (SELECT description FROM pg_description
                       WHERE objoid = t.oid AND classoid = 'pg_type'::regclass))
  FROM pg_type t JOIN ns ON t.typnamespace = ns.oid
  WHERE t.typtype = 'e'
    AND NOT EXISTS (SELECT 1 FROM pg_depend e WHERE e.classid = 'pg_type'::regclass
                    AND e.objid = t.oid AND e.deptype = 'e')

  UNION ALL
  -- domains
  SELECT 'domain', t.typname::text,
         CASE WHEN t.typname::text ~ ANY (%(excl)s::text[]) THEN t.typname::text END,
         jsonb_build_object(
           'type', format_type(t.typbasetype, t.typtypmod),
           'nullable', NOT t.typnotnull,
           'default', t.typdefault,
           'checks', (SELECT jsonb_agg(pg_get_constraintdef(c.oid) ORDER BY c.conname)
                      FROM pg_constraint c WHERE c.contypid = t.oid))
  FROM pg_type t JOIN ns ON t.typnamespace = ns.oid
  WHERE t.typtype = 'd'
    AND NOT EXISTS (SELECT 1 FROM pg_depend e WHERE e.classid = 'pg_type'::regclass
                    AND e.objid = t.oid AND e.deptype = 'e')

  UNION ALL
  -- standalone sequences (identity sequences belong to their column)
  SELECT 'sequence', r.relname,
         CASE WHEN so.excluded THEN so.relname WHEN r.excluded THEN r.relname END,
         jsonb_build_object(
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

  UNION ALL
  -- tables
  SELECT 'table', r.relname, CASE WHEN r.excluded THEN r.relname END,
         jsonb_build_object(
           'partitioned', r.relkind = 'p',
           'partition_key', CASE WHEN r.relkind = 'p' THEN pg_get_partkeydef(r.oid) END,
           'unlogged', r.relpersistence = 'u',
           'foreign', r.relkind = 'f',
           'comment', d.description)
  FROM rels r
  LEFT JOIN descr d ON d.objoid = r.oid AND d.objsubid = 0
  WHERE r.relkind IN ('r', 'p', 'f')

  UNION ALL
  -- columns
  SELECT 'column', r.relname || '.' || a.attname, CASE WHEN r.excluded THEN r.relname END,
         jsonb_build_object(
           'table', r.relname,
           'name', a.attname::text,
           'position', row_number() OVER (PARTITION BY a.attrelid ORDER BY a.attnum),
           'type', format_type(a.atttypid, a.atttypmod),
           'nullable', NOT a.attnotnull,
           'default', CASE WHEN a.attgenerated = '' THEN pg_get_expr(ad.adbin, ad.adrelid) END,
           'generated', CASE WHEN a.attgenerated <> ''
                             THEN pg_get_expr(ad.adbin, ad.adrelid) END,
           'identity', CASE a.attidentity
             WHEN '' THEN NULL
             ELSE jsonb_build_object(
               'always', a.attidentity = 'a',
               'start', s.seqstart, 'increment', s.seqincrement,
               'min_value', s.seqmin, 'max_value', s.seqmax,
               'cache', s.seqcache, 'cycle', s.seqcycle) END,
           'collation', CASE WHEN a.attcollation <> t.typcollation
                             THEN (SELECT collname::text FROM pg_collation
                                   WHERE oid = a.attcollation) END,
           'comment', d.description)
  FROM rels r
  JOIN pg_attribute a ON a.attrelid = r.oid AND a.attnum > 0 AND NOT a.attisdropped
  JOIN pg_type t ON t.oid = a.atttypid
  LEFT JOIN pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
  LEFT JOIN descr d ON d.objoid = r.oid AND d.objsubid = a.attnum
  LEFT JOIN pg_depend dep ON a.attidentity <> '' AND dep.refobjid = a.attrelid
       AND dep.refobjsubid = a.attnum AND dep.deptype = 'i'
       AND dep.classid = 'pg_class'::regclass AND dep.refclassid = 'pg_class'::regclass
  LEFT JOIN pg_sequence s ON s.seqrelid = dep.objid
  WHERE r.relkind IN ('r', 'p', 'f')

  UNION ALL
  -- constraints: primary key, foreign key, unique, check, exclusion
  SELECT CASE c.contype WHEN 'p' THEN 'primary_key' WHEN 'f' THEN 'foreign_key'
                        WHEN 'u' THEN 'unique' WHEN 'c' THEN 'check' ELSE 'exclusion' END,
         r.relname || '.' || c.conname, CASE WHEN r.excluded THEN r.relname END,
         jsonb_strip_nulls(jsonb_build_object(
           'table', r.relname,
           'name', c.conname::text,
           'columns', (SELECT jsonb_agg(a.attname::text ORDER BY k.ord)
                       FROM unnest(c.conkey) WITH ORDINALITY k(num, ord)
                       JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.num),
           'definition', pg_get_constraintdef(c.oid),
           'expression', CASE WHEN c.contype = 'c' THEN pg_get_expr(c.conbin, c.conrelid) END,
           'ref_table', CASE WHEN c.contype = 'f' THEN
             (SELECT CASE WHEN rn.nspname = %(schema)s THEN rc.relname::text
                          ELSE rn.nspname || '.' || rc.relname END
              FROM pg_class rc JOIN pg_namespace rn ON rn.oid = rc.relnamespace
              WHERE rc.oid = c.confrelid) END,
           'ref_columns', CASE WHEN c.contype = 'f' THEN
             (SELECT jsonb_agg(a.attname::text ORDER BY k.ord)
              FROM unnest(c.confkey) WITH ORDINALITY k(num, ord)
              JOIN pg_attribute a ON a.attrelid = c.confrelid AND a.attnum = k.num) END,
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
           'comment', (SELECT description FROM pg_description
                       WHERE objoid = c.oid AND classoid = 'pg_constraint'::regclass)))
  FROM pg_constraint c JOIN rels r ON r.oid = c.conrelid
  WHERE c.contype IN ('p', 'f', 'u', 'c', 'x')

  UNION ALL
  -- indexes that do not back a constraint
  SELECT 'index', ic.relname::text, CASE WHEN r.excluded THEN r.relname END,
         jsonb_build_object(
           'table', r.relname,
           'unique', i.indisunique,
           'method', am.amname::text,
           'keys', (SELECT jsonb_agg(
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
           'include', (SELECT jsonb_agg(pg_get_indexdef(i.indexrelid, k.n, true) ORDER BY k.n)
                       FROM generate_series(i.indnkeyatts + 1, i.indnatts) k(n)),
           'predicate', pg_get_expr(i.indpred, i.indrelid, true),
           'nulls_not_distinct', i.indnullsnotdistinct,
           'definition', regexp_replace(pg_get_indexdef(i.indexrelid),
                                        ' ON (ONLY )?' || quote_ident(%(schema)s) || '\.',
                                        ' ON \1'),
           'comment', d.description)
  FROM pg_index i
  JOIN rels r ON r.oid = i.indrelid
  JOIN pg_class ic ON ic.oid = i.indexrelid
  JOIN pg_am am ON am.oid = ic.relam
  LEFT JOIN descr d ON d.objoid = i.indexrelid AND d.objsubid = 0
  WHERE NOT EXISTS (SELECT 1 FROM pg_constraint c
                    WHERE c.conindid = i.indexrelid AND c.conrelid = i.indrelid
                      AND c.contype IN ('p', 'u', 'x'))

  UNION ALL
  -- views and materialized views
  SELECT 'view', r.relname, CASE WHEN r.excluded THEN r.relname END,
         jsonb_build_object(
           'materialized', r.relkind = 'm',
           'definition', pg_get_viewdef(r.oid, true),
           'comment', d.description)
  FROM rels r
  LEFT JOIN descr d ON d.objoid = r.oid AND d.objsubid = 0
  WHERE r.relkind IN ('v', 'm')
)
"""

SNAPSHOT_SQL = (
    "WITH "
    + OBJECTS_CTE
    + r"""
SELECT kind, key, owner, attrs FROM objs
UNION ALL
SELECT '~probe', PROBE_HASH, NULL, NULL FROM objs WHERE owner IS NULL
"""
)

PROBE_HASH_EXPR = r"""encode(sha256(convert_to(coalesce(string_agg(
    kind || E'\x1f' || key || E'\x1f' || attrs::text, E'\x1e'
    ORDER BY kind COLLATE "C", key COLLATE "C"), ''), 'UTF8')), 'hex')"""

SNAPSHOT_SQL = SNAPSHOT_SQL.replace("PROBE_HASH", PROBE_HASH_EXPR)

SCHEMA_EXISTS_SQL = "SELECT 1 FROM pg_namespace WHERE nspname = %(schema)s"

PROBE_SQL = (
    "WITH "
    + OBJECTS_CTE
    + r"""
SELECT PROBE_HASH AS fingerprint,
       count(*) FILTER (WHERE kind = 'table') AS tables,
       CASE WHEN to_regclass(%(version_table)s) IS NULL THEN NULL ELSE
         (SELECT coalesce(array_agg(v::text ORDER BY v::text COLLATE "C"), '{}')
          FROM unnest(xpath('/table/row/version_num/text()',
                            query_to_xml('SELECT version_num FROM ' || %(version_table)s,
                                         false, false, ''))) v)
       END AS revisions,
       EXISTS (SELECT 1 FROM ns) AS schema_exists
FROM objs WHERE owner IS NULL
"""
).replace("PROBE_HASH", PROBE_HASH_EXPR)
