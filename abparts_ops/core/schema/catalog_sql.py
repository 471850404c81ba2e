"""The catalog query behind both the snapshot and the cheap probe.

One statement returns one row per schema object: ``(kind, key, owner, attrs)``, where
``attrs`` is a ``json`` object with everything that defines the object and nothing that
varies between databases (no OIDs, no creation order; column positions are ranks among
live columns). ``owner`` is the name of the excluded top-level object a row belongs to,
or NULL for objects that are compared. Because the snapshot and the probe read the very
same rows and hash them the same way (see "Fingerprints" below), a probe fingerprint
changes exactly when the snapshot would.

Performance notes (see ``benchmarks/bench_snapshot.py``): ``json`` is built instead of
``jsonb`` (about half the cost, and the Python side parses both the same way); the helper
CTEs are ``NOT MATERIALIZED`` so the planner sees real catalog statistics (materialized,
their bad row estimates produced nested loops that were quadratic in the number of
sequences); column positions avoid a window sort; per-column lookups (defaults, identity)
run only for the columns that have one; constraint columns are looked up by index, one
key at a time. Callers disable JIT: its compile time alone exceeded the query time.
The relations that belong to an extension are left out through an array of their oids
built once per statement (an init plan over the few extensions' pg_depend rows), not
an anti-join probing pg_depend for every relation each time ``rels`` is read. The
branches added with functions, triggers and policies follow the same rules: their
lookups (comments, partition parents, a partition index's parent, role names) go through
a catalog index by oid, and only for the rows that need one, so the cost stays linear
(at 5,000 tables: triggers ~65 ms for 1,667 rows, policies ~25 ms, functions ~5 ms).

Where the server's CPU goes (1,000 tables, a fresh backend each, measured per branch):
columns ~51 ms, constraints ~74, indexes ~70, the dependency query ~80, the other
branches with planning and the backends' start ~45. The deparse functions account for
about a third of it (with them replaced by constants: columns ~43, constraints ~40,
indexes ~22); those that print an expression in its table's context (checks, expression
and partial indexes, triggers, policies) open the table, building its relation-cache
entry in the backend that calls them (~20 us a table), so those kinds share one of the
two statements (``Kind.half``). The deparse output is PostgreSQL's own text on purpose:
the snapshot does not re-implement it. Even with free deparsing the server's share
(~0.22 s) would be about pg_dump's (~0.26 s), which reads fewer catalogs and builds no
json: that is why the snapshot costs about pg_dump's CPU, not a fraction of it.
``benchmarks/bench_snapshot_floor.py`` measures each part's share in one run (without
the dependency query the snapshot costs 0.78x pg_dump's CPU at 1,000 tables, 0.64x at
5,000).

The branches themselves are declared with their kinds, one module per kind, in
:mod:`abparts_ops.core.schema.kinds`; this module assembles them.

Parameters: ``%(schema)s`` (the schema name), ``%(excl)s`` (a text[] of anchored POSIX
regexes, see :mod:`abparts_ops.core.schema.exclusions`) and ``%(privileges)s`` (a
boolean: read the granted privileges too); the probe also takes ``%(version_table)s`` (a
quoted, schema-qualified name).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from abparts_ops.core.schema.kinds import addresses, branches

HELPERS_CTE = r"""
ns AS NOT MATERIALIZED (
  SELECT oid, nspname FROM pg_namespace WHERE nspname = %(schema)s
),
rels AS NOT MATERIALIZED (
  SELECT c.oid, c.relname::text AS relname, c.relkind, c.relpersistence, c.relispartition,
         c.relpartbound, c.relrowsecurity, c.relforcerowsecurity, c.relacl, c.relowner,
         c.reltype,
         c.relname::text ~ ANY (%(excl)s::text[]) AS excluded
  FROM pg_class c JOIN ns ON c.relnamespace = ns.oid
  WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')
    AND c.oid <> ALL (ARRAY(
      SELECT e.objid FROM pg_extension x JOIN pg_depend e
        ON e.refclassid = 'pg_extension'::regclass AND e.refobjid = x.oid
      WHERE e.classid = 'pg_class'::regclass AND e.deptype = 'e'))
),
descr AS NOT MATERIALIZED (
  SELECT objoid, objsubid, description FROM pg_description
  WHERE classoid = 'pg_class'::regclass
),
dropped AS (
  SELECT attrelid, array_agg(attnum) AS nums FROM pg_attribute
  WHERE attisdropped GROUP BY attrelid
),
seq_owner AS NOT MATERIALIZED (
  SELECT d.objid AS seqoid, d.deptype, r.relname, r.excluded, a.attname::text AS attname
  FROM pg_depend d
  JOIN rels r ON r.oid = d.refobjid
  JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
  WHERE d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_class'::regclass
    AND d.deptype IN ('a', 'i')
),
"""

# The branches, in the order they are read. The snapshot reads them in two halves of
# about equal cost on two connections sharing one exported snapshot (see introspect.py);
# the probe reads them all in one statement.
# The branches come from the registry of kinds (kinds/, one module per kind), each
# declared there once, beside its kind.
BRANCHES: tuple[str, ...] = branches()


def objects_cte(branches: tuple[str, ...] = BRANCHES) -> str:
    """The CTEs ending in ``objs(kind, key, owner, attrs)``: the union of ``branches``."""
    return (
        HELPERS_CTE
        + "objs(kind, key, owner, attrs) AS (\n"
        + "\n  UNION ALL\n".join(branches)
        + ")\n"
    )


OBJECTS_CTE = objects_cte()


# Fingerprints. Every compared row has a digest, the sha256 of
# kind \x1f key \x1f attrs-as-text; the probe fingerprint is the sha256 of those digests
# joined by \x1e in (kind, key, digest) order ("C" collation: byte order, which is also
# the code point order Python sorts strings by). The probe computes both on the server
# (ROW_DIGEST_EXPR, PROBE_HASH_EXPR). The snapshot receives every row's json text anyway,
# so it computes the very same digests and hash in Python (row_digest, probe_hash) and the
# server never hashes or sorts the rows for it.
ROW_DIGEST_EXPR = r"""encode(sha256(convert_to(
    kind || E'\x1f' || key || E'\x1f' || attrs::text, 'UTF8')), 'hex')"""

PROBE_HASH_EXPR = r"""encode(sha256(convert_to(coalesce(string_agg(digest, E'\x1e'
    ORDER BY kind COLLATE "C", key COLLATE "C", digest COLLATE "C"), ''), 'UTF8')), 'hex')"""

SNAPSHOT_SQL = "WITH " + OBJECTS_CTE + "SELECT kind, key, owner, attrs FROM objs\n"

# The same rows as SNAPSHOT_SQL, in two statements of about equal cost for two connections
# reading in parallel: columns and the small kinds (the dependencies follow on the same
# connection); constraints, indexes, triggers and policies (the kinds whose deparse opens
# their tables, so that each table is opened by one backend only).
SNAPSHOT_PARTS: tuple[str, str] = (
    "WITH " + objects_cte(branches(0)) + "SELECT kind, key, owner, attrs FROM objs\n",
    "WITH " + objects_cte(branches(1)) + "SELECT kind, key, owner, attrs FROM objs\n",
)

SCHEMA_EXISTS_SQL = "SELECT 1 FROM pg_namespace WHERE nspname = %(schema)s"

# Dependencies: what PostgreSQL records between the schema's objects (pg_depend: what a
# view's _RETURN rule reads, a trigger's function, a foreign key's referenced unique
# index, a default's sequence or function, a function's argument and result types, the
# tables a BEGIN ATOMIC body reads ...), as pairs of snapshot keys: (kind, key) depends on
# (ref_kind, ref_key). The address branches of the registry (kinds/) map catalog rows
# to keys; a dependency between two rows of one object is dropped, and so is a sequence's
# ownership by a column (OWNED BY is set after both exist: it is no creation order). An
# object that depends on something the snapshot cannot hold (an object of another schema,
# or one of this schema of a kind that is not modelled, such as a collation or an
# aggregate; extension members and pg_catalog excepted) gets a row whose ref_kind is
# 'outside' and whose ref_key says what that is (pg_identify_object: type, identity).
# These rows are not part of any fingerprint: they only order the DDL (see order.py) and
# let the baseline refuse what it cannot build. Read in the snapshot's own transaction.
# Rows may repeat (no DISTINCT, UNION ALL): the reader keeps a set of them anyway, and
# deduplicating ~90,000 rows of four texts on the server cost a fifth of the query. The
# reader also turns merge joins off for it: sorting pg_depend and the addresses twice
# over (spilling to disk at 5,000 tables) cost more than hashing the addresses once
# (at 5,000 tables: 840 ms of server CPU before, ~330 ms after).
DEPENDENCIES_SQL = (
    "WITH "
    + HELPERS_CTE
    + "addr(classid, objid, kind, key) AS (\n  SELECT a.classid::oid, a.objid::oid, a.kind, "
    + "a.key FROM (\n"
    + "\n  UNION ALL\n".join(addresses())
    + r""") a(classid, objid, kind, key)
),
deps AS (
  SELECT dep.classid, dep.objid, dep.refclassid, dep.refobjid, dep.deptype
  FROM pg_depend dep
  WHERE dep.deptype IN ('n', 'a', 'i', 'P', 'S')
    AND dep.refclassid <> 'pg_namespace'::regclass
),
outside AS MATERIALIZED (
  SELECT DISTINCT d.kind, d.key, deps.refclassid, deps.refobjid
  FROM deps JOIN addr d ON d.classid = deps.classid AND d.objid = deps.objid
  WHERE deps.deptype IN ('n', 'a')
    AND NOT EXISTS (SELECT 1 FROM addr r
                    WHERE r.classid = deps.refclassid AND r.objid = deps.refobjid)
    AND NOT EXISTS (SELECT 1 FROM pg_depend e WHERE e.classid = deps.refclassid
                    AND e.objid = deps.refobjid AND e.deptype = 'e')
)
SELECT d.kind, d.key, r.kind, r.key
FROM deps
JOIN addr d ON d.classid = deps.classid AND d.objid = deps.objid
JOIN addr r ON r.classid = deps.refclassid AND r.objid = deps.refobjid
WHERE (d.kind <> r.kind OR d.key <> r.key)
  AND NOT (deps.deptype = 'a' AND d.kind = 'sequence')
UNION ALL
SELECT o.kind, o.key, 'outside', i.type || ' ' || i.identity
FROM outside o
CROSS JOIN LATERAL pg_identify_object(o.refclassid, o.refobjid, 0) i
WHERE i.schema IS NOT NULL
  AND i.schema NOT IN ('pg_catalog', 'information_schema')
  AND i.schema !~ '^pg_(toast|temp_|toast_temp_)'
"""
)

# The catalog token: a cheap answer to "could the snapshot have changed?". Every DDL
# statement writes new row versions into the catalogs that the snapshot, and the deparse
# functions it calls, read; a new row version has a new (ctid, xmin), and a dropped
# object removes rows. Per catalog, the token holds the row count and the xor of a hash
# of every row's (ctid, xmin) (the ctid hashed with the xmin as seed), which stay the
# same only while no row is inserted, updated or deleted. With the settings that change
# how the server prints expressions, equal tokens mean equal snapshots. The converse
# does not hold (VACUUM FULL of a catalog, a TRUNCATE or a temporary table also write
# rows): that costs one full probe, never a wrong answer. VACUUM and ANALYZE update
# statistics in place, without new row versions. xid has no cast to a number, so xmin
# is made absolute as age('3') - age(xmin), both relative to the same transaction;
# age() of the special xids (bootstrap rows) is always 2147483647, and those count as 0.
# About 7 ms on the demo schema (~21,000 catalog rows), a tenth of the objects query.
TOKEN_CATALOGS: tuple[str, ...] = (
    "pg_namespace", "pg_class", "pg_attribute", "pg_attrdef", "pg_constraint", "pg_index",
    "pg_type", "pg_enum", "pg_sequence", "pg_description", "pg_depend", "pg_collation",
    "pg_am", "pg_opclass", "pg_extension", "pg_rewrite", "pg_proc", "pg_operator",
    "pg_partitioned_table", "pg_ts_config", "pg_ts_dict", "pg_language", "pg_trigger",
    "pg_policy", "pg_inherits", "pg_range",
)

# Roles are named in policies and grants, but pg_authid (a shared catalog) is readable
# by superusers only: the token covers it through pg_roles, whose rows it hashes whole
# (a handful of rows).
ROLES_TOKEN_SQL = (
    "(SELECT md5(coalesce(string_agg(oid::text || ' ' || rolname, ',' ORDER BY oid), '')) "
    "FROM pg_roles)"
)
#: Catalogs the token covers by other means than a row-version hash.
TOKEN_COVERED: dict[str, str] = {"pg_authid": ROLES_TOKEN_SQL}

TOKEN_SETTINGS: tuple[str, ...] = (
    "server_version_num", "search_path", "DateStyle", "IntervalStyle", "TimeZone",
    "extra_float_digits", "quote_all_identifiers", "bytea_output", "lc_monetary",
    "lc_numeric", "standard_conforming_strings",
)

CATALOG_TOKEN_SQL = (
    "SELECT md5(concat_ws(E'\\x1f', "
    + ", ".join(f"current_setting('{name}')" for name in TOKEN_SETTINGS)
    + ",\n    "
    + ",\n    ".join(
        f"(SELECT count(*) || '.' || coalesce(bit_xor(hashtidextended(ctid, "
        f"CASE age(xmin) WHEN 2147483647 THEN 0 ELSE xb.base - age(xmin) END)), 0) "
        f"FROM {catalog})"
        for catalog in TOKEN_CATALOGS
    )
    + ",\n    "
    + ",\n    ".join(TOKEN_COVERED.values())
    + ")) AS token\n  FROM (SELECT age('3'::xid)::bigint AS base) xb"
)

REVISIONS_EXPR = r"""CASE WHEN to_regclass(%(version_table)s) IS NULL THEN NULL ELSE
         (SELECT coalesce(array_agg(v::text ORDER BY v::text COLLATE "C"), '{}')
          FROM unnest(xpath('/table/row/version_num/text()',
                            query_to_xml('SELECT version_num FROM ' || %(version_table)s,
                                         false, false, ''))) v)
       END"""

# The probe's first statement: the version rows and the catalog token (about 8 ms on
# top of a bare connection). When the token is the one of a fingerprint the caller holds,
# this is the whole probe; the objects query is not even planned (planning it alone
# costs ~25 ms).
TOKEN_SQL = f"""SELECT token.token,
       {REVISIONS_EXPR} AS revisions,
       EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = %(schema)s) AS schema_exists
FROM ({CATALOG_TOKEN_SQL}) token
"""

# The full probe: everything in one statement, so the token and the fingerprint it
# returns describe the very same catalog snapshot.
PROBE_SQL = (
    "WITH "
    + OBJECTS_CTE
    + f""",
digests AS (
  SELECT kind, key, {ROW_DIGEST_EXPR} AS digest FROM objs WHERE owner IS NULL
),
summary AS (
  SELECT {PROBE_HASH_EXPR} AS fingerprint,
         count(*) FILTER (WHERE kind = 'table') AS tables
  FROM digests
)
SELECT summary.fingerprint, summary.tables,
       {REVISIONS_EXPR} AS revisions,
       EXISTS (SELECT 1 FROM ns) AS schema_exists,
       token.token
FROM summary, ({CATALOG_TOKEN_SQL}) token
"""
)


def row_digest(kind: str, key: str, attrs_text: str) -> str:
    """The digest of one row, as ROW_DIGEST_EXPR computes it from the same json text."""
    return hashlib.sha256(f"{kind}\x1f{key}\x1f{attrs_text}".encode()).hexdigest()


def probe_hash(digests: Iterable[tuple[str, str, str]]) -> str:
    """The probe fingerprint of ``(kind, key, digest)`` rows, as PROBE_HASH_EXPR computes it.

    Sorted by each row joined with NUL, which no name or digest contains: the same order
    as the tuples' (code point order, field by field), at a third of the cost.
    """
    joined = "\x1e".join(row[2] for row in sorted(digests, key="\x00".join))
    return hashlib.sha256(joined.encode("utf-8")).hexdigest()
