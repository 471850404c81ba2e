"""The ``index`` kind: indexes that do not back a constraint.

A partition's index attached to its parent's partitioned index is created by the
parent's ``CREATE INDEX`` (:func:`attached_indexes`); an INVALID index is read with
``"valid": false`` (see :mod:`~abparts_ops.core.schema.validity`) and rendered as the
valid index its definition describes. Indexes come after the views (indexes of
materialized views) and go with their table's ``DROP TABLE``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from abparts_ops.core.quoting import quote_ident
from abparts_ops.core.schema.kind_order import PHASE
from abparts_ops.core.schema.kinds.base import (
    REL_CATALOGS,
    Kind,
    comment_section,
    relation_of,
    stable_expression,
)
from abparts_ops.core.schema.steps import Section, SnapshotView, Step, section

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

INDEXES_ADDRESS = r"""
  SELECT 'pg_class'::regclass, i.indexrelid, 'index', ic.relname::text
  FROM pg_index i
  JOIN rels r ON r.oid = i.indrelid
  JOIN pg_class ic ON ic.oid = i.indexrelid
  WHERE NOT EXISTS (SELECT 1 FROM pg_constraint c
                    WHERE c.conindid = i.indexrelid AND c.conrelid = i.indrelid
                      AND c.contype IN ('p', 'u', 'x'))
"""


def index_statement(idx: Mapping[str, Any]) -> str:
    """The ``CREATE INDEX`` that recreates an index (a partitioned table's index without
    ``ONLY``, so that it is created on every partition too, as the source has it)."""
    return stable_expression(idx["definition"].replace(" ON ONLY ", " ON ", 1))


def rendered_indexes(snapshot: SnapshotView) -> list[str]:
    """Names of the indexes created of their own (not a partition's attached index)."""
    indexes = snapshot.kind("index")
    return [name for name in sorted(indexes) if not indexes[name].get("parent_index")]


def attached_indexes(snapshot: SnapshotView) -> dict[str, list[str]]:
    """Per partitioned index, the partitions' indexes attached to it, at every depth
    (created by its ``CREATE INDEX``), sorted."""
    indexes = snapshot.kind("index")
    children: dict[str, list[str]] = {}
    for name in sorted(indexes):
        parent = indexes[name].get("parent_index")
        if parent:
            children.setdefault(parent, []).append(name)
    out: dict[str, list[str]] = {}
    for name in children:
        if indexes.get(name, {}).get("parent_index"):
            continue
        found, todo = [], list(children[name])
        while todo:
            child = todo.pop(0)
            found.append(child)
            todo.extend(children.get(child, []))
        out[name] = sorted(found)
    return out


def _index_ddl(snapshot: SnapshotView) -> list[Section]:
    indexes = snapshot.kind("index")
    attached = attached_indexes(snapshot)
    steps = [
        Step(
            index_statement(indexes[name]),
            (("index", name), *(("index", child) for child in attached.get(name, []))),
            (relation_of(snapshot, indexes[name]["table"]),),
        )
        for name in rendered_indexes(snapshot)
    ]
    return [
        section(PHASE["index"], "Indexes", "index", steps),
        comment_section(snapshot, "index", lambda name, _a: f"INDEX {quote_ident(name)}"),
    ]


#: This module's kinds, with their renderers (collected by the registry, in this order).
REGISTERED: tuple[Kind, ...] = (
    Kind(
        "index", "index", "indexes", "name",
        "table, unique, method, keys, include, predicate, nulls_not_distinct, parent_index, "
        "definition, comment; valid (false, only on an INVALID index: a failed CREATE INDEX "
        "CONCURRENTLY, or a partitioned index not attached on every partition)",
        INDEXES_SQL,
        REL_CATALOGS + ("pg_index", "pg_am", "pg_opclass", "pg_constraint", "pg_inherits",
                        "pg_collation", "pg_proc", "pg_operator", "pg_type"),
        PHASE["index"], 1, "op.create_index", dropped_with=("table",),
        address=INDEXES_ADDRESS, create=_index_ddl,
    ),
)
