"""The ``table`` and ``column`` kinds: tables (partitions included) and their columns.

Read from ``pg_class`` (tables, partitioned tables, foreign tables: partitioning, persistence,
row security) and ``pg_attribute`` (columns: type, nullability, default or generated
expression, identity, collation). A table's ``CREATE TABLE`` declares its columns and the
valid constraints it holds itself (:func:`create_table_step`; the constraint kinds are in
:mod:`~abparts_ops.core.schema.kinds.constraint`); a partition is created ``PARTITION
OF`` its parent after every partitioned table (:func:`partition_steps`); row-level
security and the comments on tables, columns and inline constraints come later. ``DROP
TABLE`` removes a table with everything that goes with it (:func:`_dropped_with_tables`),
partitions first, referencing tables before the tables they reference. An extra table
or column holds data; changing a column's type or making it NOT NULL is destructive.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from abparts_ops.core.errors import SchemaError
from abparts_ops.core.quoting import quote_collation, quote_ident, quote_literal
from abparts_ops.core.schema.kind_order import PHASE, partition_order, table_order
from abparts_ops.core.schema.kinds.base import (
    REL_CATALOGS,
    Kind,
    by_table,
    columns_by_table,
    columns_of,
    comment_section,
    stable_expression,
)
from abparts_ops.core.schema.kinds.constraint import (
    INLINE_KINDS,
    add_constraint_step,
    inline_constraint,
)
from abparts_ops.core.schema.kinds.sequence import (
    identity_type,
    sequence_clauses,
    sequence_options,
)
from abparts_ops.core.schema.steps import ObjId, Section, SnapshotView, Step, section

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


#: (title, tag) of the sections of the statements a creation split adds (also the late
#: constraints of :func:`_table_ddl`).
LATE_CONSTRAINTS = ("Constraints added after the tables", "table:late")
LATE_DEFAULTS = ("Column defaults set after the objects they use", "column_default")


def _column_sql(col: Mapping[str, Any]) -> str:
    parts = [quote_ident(col["name"]), col["type"]]
    if col.get("collation"):
        parts.append("COLLATE " + quote_collation(col["collation"]))
    if col.get("generated") is not None:
        parts.append(f"GENERATED ALWAYS AS ({col['generated']}) STORED")
    elif col.get("default") is not None:
        parts.append(f"DEFAULT {col['default']}")
    identity = col.get("identity")
    if identity:
        kind = "ALWAYS" if identity.get("always") else "BY DEFAULT"
        clauses = sequence_clauses(sequence_options(identity_type(col["type"]), identity))
        parts.append(
            f"GENERATED {kind} AS IDENTITY" + (f" ({' '.join(clauses)})" if clauses else "")
        )
    if not col.get("nullable", True):
        parts.append("NOT NULL")
    return " ".join(parts)


def is_partition(snapshot: SnapshotView, name: str) -> bool:
    """Whether table ``name`` is a partition of a table of the snapshot."""
    return snapshot.kind("table")[name].get("partition_of") in snapshot.kind("table")


def partition_statements(snapshot: SnapshotView, name: str) -> list[str]:
    """``CREATE TABLE ... PARTITION OF`` for one partition, and the column settings where
    it differs from its parent (NOT NULL, defaults)."""
    return [step.statement for step in partition_steps(snapshot, name)]


def partition_steps(snapshot: SnapshotView, name: str) -> list[Step]:
    """The steps of :func:`partition_statements`, with what each creates."""
    attrs = snapshot.kind("table")[name]
    parent = attrs["partition_of"]
    head = "CREATE UNLOGGED TABLE" if attrs.get("unlogged") else "CREATE TABLE"
    statement = (
        f"{head} {quote_ident(name)} PARTITION OF {quote_ident(parent)} "
        f"{attrs.get('partition_bound') or 'DEFAULT'}"
    )
    if attrs.get("partitioned"):
        statement += f" PARTITION BY {attrs['partition_key']}"
    table = ("table", name)
    out = [Step(statement, (table,), (("table", parent),))]
    columns = snapshot.kind("column")
    for col in columns_of(snapshot, name):
        inherited = columns.get(f"{parent}.{col['name']}")
        if inherited is None:
            continue
        where = f"ALTER TABLE {quote_ident(name)} ALTER COLUMN {quote_ident(col['name'])}"
        if not col.get("nullable", True) and inherited.get("nullable", True):
            out.append(Step(f"{where} SET NOT NULL", after=(table,)))
        if col.get("default") != inherited.get("default") and col.get("generated") is None:
            if col.get("default") is None:
                out.append(Step(f"{where} DROP DEFAULT", after=(table,)))
            else:
                out.append(Step(
                    f"{where} SET DEFAULT {col['default']}",
                    (("column_default", f"{name}.{col['name']}"),),
                    (table,),
                ))
    return out


def create_table_step(
    snapshot: SnapshotView,
    name: str,
    columns: list[Mapping[str, Any]],
    constraints: Mapping[str, list[Mapping[str, Any]]],
    keep: Collection[ObjId] | None = None,
) -> Step:
    """``CREATE TABLE`` of a table that is not a partition: its columns and the valid
    constraints it declares itself (``constraints`` by kind). With ``keep``, only the
    constraints and column defaults in it are declared (the others are added after it,
    see :func:`split_step`)."""
    attrs = snapshot.kind("table")[name]
    creates: list[ObjId] = [("table", name)]
    lines = []
    for col in columns:
        if col.get("default") is not None and col.get("generated") is None:
            default = ("column_default", f"{name}.{col['name']}")
            if keep is None or default in keep:
                creates.append(default)
            else:
                col = {**col, "default": None}
        lines.append(f"    {_column_sql(col)}")
    for kind in INLINE_KINDS:
        for con in constraints.get(kind, []):
            obj = (kind, f"{name}.{con['name']}")
            if con.get("inherited") or not inline_constraint(con):
                continue
            if keep is not None and obj not in keep:
                continue
            creates.append(obj)
            lines.append(
                f"    CONSTRAINT {quote_ident(con['name'])} {stable_expression(con['definition'])}"
            )
    prefix = "CREATE UNLOGGED TABLE" if attrs.get("unlogged") else "CREATE TABLE"
    suffix = f" PARTITION BY {attrs['partition_key']}" if attrs.get("partitioned") else ""
    body = ",\n".join(lines)
    return Step(f"{prefix} {quote_ident(name)} (\n{body}\n){suffix}", tuple(creates))


def table_constraints(snapshot: SnapshotView, name: str) -> dict[str, list[Mapping[str, Any]]]:
    """The inline constraints of one table by kind, sorted by name."""
    return {
        kind: sorted(
            (c for c in snapshot.kind(kind).values() if c["table"] == name),
            key=lambda c: c.get("name") or "",
        )
        for kind in INLINE_KINDS
    }


def _table_ddl(snapshot: SnapshotView) -> list[Section]:
    grouped = {kind: by_table(snapshot, kind) for kind in INLINE_KINDS}
    table_columns = columns_by_table(snapshot)
    tables = []
    later = []
    partition_constraints = []
    partitions = []
    for name in sorted(snapshot.kind("table")):
        attrs = snapshot.kind("table")[name]
        if attrs.get("foreign"):
            raise SchemaError(
                f"table {name!r} is a foreign table; its server and options are not in the "
                "snapshot, so it cannot be rendered (exclude it)."
            )
        partition = is_partition(snapshot, name)
        for kind in INLINE_KINDS:
            for con in grouped[kind].get(name, []):
                if con.get("inherited"):
                    continue
                if partition:
                    partition_constraints.append(add_constraint_step(con, kind))
                elif not inline_constraint(con):
                    later.append(add_constraint_step(con, kind))
        if not partition:
            tables.append(create_table_step(
                snapshot, name, table_columns.get(name, []),
                {kind: grouped[kind].get(name, []) for kind in INLINE_KINDS},
            ))
    for name in partition_order(snapshot):
        partitions.extend(partition_steps(snapshot, name))
    security = []
    for name in sorted(snapshot.kind("table")):
        attrs = snapshot.kind("table")[name]
        table = (("table", name),)
        if attrs.get("row_security"):
            security.append(Step(
                f"ALTER TABLE {quote_ident(name)} ENABLE ROW LEVEL SECURITY", after=table
            ))
        if attrs.get("force_row_security"):
            security.append(Step(
                f"ALTER TABLE {quote_ident(name)} FORCE ROW LEVEL SECURITY", after=table
            ))
    return [
        section(PHASE["table"], "Tables", "table", tables),
        section(PHASE["partition"], "Partitions (after their partitioned tables)",
                "table:partition", partitions),
        section(PHASE["late_constraint"], *LATE_CONSTRAINTS, later),
        section(PHASE["late_constraint"], "Constraints of partitions",
                "table:partition_constraint", partition_constraints),
        section(PHASE["row_security"], "Row-level security", "table:row_security", security),
        *_table_comments(snapshot),
        *[
            comment_section(snapshot, kind, lambda _k, con: (
                f"CONSTRAINT {quote_ident(con['name'])} ON {quote_ident(con['table'])}"
            ))
            for kind in INLINE_KINDS
        ],
    ]


def _table_comments(snapshot: SnapshotView) -> list[Section]:
    """Comments on tables and columns; those of partitions in a section of their own
    (the baseline sets the others in ``op.create_table``)."""
    tables = snapshot.kind("table")
    partitions = set(partition_order(snapshot))
    own: dict[str, list[Step]] = {"table": [], "column": [], "partition": []}
    for name in sorted(tables):
        if tables[name].get("comment") is not None:
            own["partition" if name in partitions else "table"].append(Step(
                f"COMMENT ON TABLE {quote_ident(name)} IS {quote_literal(tables[name]['comment'])}",
                after=(("table", name),),
            ))
    for key in sorted(snapshot.kind("column"), key=lambda k: _column_sort(snapshot, k)):
        col = snapshot.kind("column")[key]
        if col.get("comment") is not None:
            own["partition" if col["table"] in partitions else "column"].append(Step(
                f"COMMENT ON COLUMN {quote_ident(col['table'])}.{quote_ident(col['name'])} "
                f"IS {quote_literal(col['comment'])}",
                after=(("table", col["table"]),),
            ))
    return [
        section(PHASE["comment"], "Comments", "table:comment", own["table"]),
        section(PHASE["comment"], "Comments", "column:comment", own["column"]),
        section(PHASE["comment"], "Comments", "table:partition_comment", own["partition"]),
    ]


def _column_sort(snapshot: SnapshotView, key: str) -> tuple[str, int]:
    col = snapshot.kind("column")[key]
    return (col["table"], int(col["position"]))


def _dropped_with_tables(snapshot: SnapshotView) -> dict[str, list[ObjId]]:
    """Per table, the objects its ``DROP TABLE`` removes too: constraints, indexes,
    triggers, column defaults and the sequences owned by its columns."""
    out: dict[str, list[ObjId]] = {name: [] for name in snapshot.kind("table")}
    for kind in (*INLINE_KINDS, "foreign_key", "index", "trigger"):
        for key, attrs in snapshot.kind(kind).items():
            if attrs.get("table") in out:
                out[attrs["table"]].append((kind, key))
    for key, col in snapshot.kind("column").items():
        if col.get("default") is not None and col.get("generated") is None:
            out[col["table"]].append(("column_default", key))
    columns = snapshot.kind("column")
    for name, seq in snapshot.kind("sequence").items():
        owner = columns.get(seq.get("owned_by") or "")
        if owner is not None and owner["table"] in out:
            out[owner["table"]].append(("sequence", name))
    for items in out.values():
        items.sort()
    return out


def _drop_tables(snapshot: SnapshotView) -> list[Section]:
    order, _cycles = table_order(snapshot)
    partitions = partition_order(snapshot)
    parts = set(partitions)
    tables = [t for t in order if t not in parts]
    owned = _dropped_with_tables(snapshot)

    def step(name: str) -> Step:
        return Step(f"DROP TABLE {quote_ident(name)}", (("table", name), *owned[name]))

    return [
        section(PHASE["partition"], "Partitions", "table:partition",
                [step(t) for t in reversed(partitions)]),
        section(PHASE["table"], "Tables", "table", [step(t) for t in reversed(tables)]),
    ]


def _column_change(fields: Mapping[str, tuple[Any, Any]]) -> bool:
    """Another type, or NOT NULL where the environment allows NULL, can fail on its rows."""
    if "type" in fields:
        return True
    if "nullable" in fields and fields["nullable"][0] is False:
        return True
    return False


#: This module's kinds, with their renderers (collected by the registry, in this order).
REGISTERED: tuple[Kind, ...] = (
    Kind(
        "table", "table", "tables", "name",
        "partitioned, partition_key, partition_of, partition_bound, unlogged, foreign, "
        "row_security, force_row_security, comment",
        TABLES_SQL,
        REL_CATALOGS + ("pg_inherits", "pg_partitioned_table", "pg_opclass", "pg_collation",
                        "pg_proc", "pg_type", "pg_operator"),
        PHASE["table"], 0, "op.create_table", extra_destructive=True,
        address=TABLES_ADDRESS, create=_table_ddl, drop=_drop_tables,
    ),
    Kind(
        "column", "column", "columns", "table.column",
        "table, name, position, type, nullable, default, generated, identity (None or "
        "{always, start, increment, min_value, max_value, cache, cycle}), collation, comment",
        COLUMNS_SQL,
        REL_CATALOGS + ("pg_type", "pg_attrdef", "pg_sequence", "pg_collation", "pg_proc",
                        "pg_operator"),
        PHASE["table"], 0, "op.create_table", dropped_with=("table",), extra_destructive=True,
        rendered_with="table", address=COLUMNS_ADDRESS, changed_destructive=_column_change,
    ),
)
