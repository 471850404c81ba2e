"""What every kind module shares: the :class:`Kind` record and the renderers' helpers.

A kind module (one per kind, or per family of kinds rendered together) declares its
kinds as :class:`Kind` entries holding their catalog read, their place in the order and
their renderers; :mod:`abparts_ops.core.schema.kinds` collects them into the registry.
The helpers here are those several kinds' renderers use: the ``COMMENT ON`` section of a
kind, the relation an object is on, a role's name, grouping by table, the rewrite of
catalog expressions that would not parse back to the same tree, and the drops of kinds
removed by a plain ``DROP``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from abparts_ops.core.quoting import quote_ident, quote_literal
from abparts_ops.core.schema.kind_order import PHASE
from abparts_ops.core.schema.steps import ObjId, Section, SnapshotView, Step, section

#: A kind's renderer: the snapshot's objects of the kind as sections of steps.
Renderer = Callable[[SnapshotView], list[Section]]
#: Whether a change of an object's attributes (attribute -> (reference, actual)) would
#: lose data or could fail on existing rows.
ChangeRule = Callable[[Mapping[str, tuple[Any, Any]]], bool]


@dataclass(frozen=True)
class Kind:
    """One object kind of the snapshot, with everything that is particular to it.

    ``sql`` is its branch of the catalog query (kinds read by one branch share it);
    ``catalogs`` every catalog that branch reads, directly or through the deparse functions
    it calls; ``phase`` its place in :data:`~abparts_ops.core.schema.kind_order.PHASE`;
    ``half`` which of the two statements of a parallel read holds it (the kinds whose
    deparse functions open their table, i.e. build its relation-cache entry in the backend
    that calls them: checks, expression and partial indexes, triggers and policies, share
    half 1, so that a table is opened by one backend, not both); ``baseline`` the Alembic
    operation the baseline creates it with (``op.execute`` means the canonical DDL
    statement); ``rendered_with`` the kind whose DDL renderer declares it too (columns and
    inline constraints: in CREATE TABLE); ``dropped_with`` the kinds whose removal removes
    it too (empty: removed by a statement of its own); ``missing_destructive`` and
    ``extra_destructive`` whether an object missing from / extra in an environment is a
    destructive difference; ``opt_in`` the snapshot parameter without which the kind is not
    read. ``address`` is its branch of the dependency query: how the catalog rows that make
    up its objects map to their keys (empty: the kind has no dependencies of its own, e.g.
    privileges).

    The callables are the kind's renderers, registered beside its read: ``create`` its
    canonical DDL (None when ``rendered_with`` another kind), ``drop`` the statements
    that remove its objects (None when ``dropped_with`` another kind), and
    ``changed_destructive`` whether a change of an object's attributes is a destructive
    difference (None: never).
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
    create: Renderer | None = None
    drop: Renderer | None = None
    changed_destructive: ChangeRule | None = None


def type_address(kind: str, typtype: str) -> str:
    """The address branch of a type kind: the type and its array type."""
    return rf"""
  SELECT 'pg_type'::regclass, x.oid, '{kind}', t.typname::text
  FROM pg_type t JOIN ns ON t.typnamespace = ns.oid
  CROSS JOIN LATERAL unnest(ARRAY[t.oid, t.typarray]) x(oid)
  WHERE t.typtype = '{typtype}' AND x.oid <> 0
"""


#: The catalogs every read of a type (``TYPE_CATALOGS``) or of a relation
#: (``REL_CATALOGS``) reads; a kind adds those of its own.
TYPE_CATALOGS = ("pg_type", "pg_namespace", "pg_depend", "pg_description")
REL_CATALOGS = ("pg_class", "pg_namespace", "pg_depend", "pg_description", "pg_attribute")


_LITERAL = r"'(?:[^']|'')*'"
_ITEMS = (
    r"(?P<items>" + _LITERAL + r"::character varying(?:, " + _LITERAL + r"::character varying)*)"
)
_VARCHAR_IN = re.compile(
    r"\(\((?P<col>[^()]+?)\)::text = ANY \(\(ARRAY\[" + _ITEMS + r"\]\)::text\[\]\)\)"
)
_VARCHAR_IN_PRETTY = re.compile(
    r"(?P<col>[\w\"]+)::text = ANY \(ARRAY\[" + _ITEMS + r"\]::text\[\]\)"
)


def stable_expression(sql: str) -> str:
    """Rewrite catalog text that PostgreSQL would not parse back to the same tree.

    ``col IN ('a', 'b')`` on a varchar column is printed as
    ``((col)::text = ANY ((ARRAY['a'::character varying, ...])::text[]))``, and that text
    re-parses into a different expression (each element cast on its own). Giving the
    ``IN`` list back makes PostgreSQL store exactly what the source has.
    """

    def as_in_list(match: re.Match[str]) -> str:
        items = match.group("items").replace("::character varying", "")
        return f"({match.group('col')} IN ({items}))"

    return _VARCHAR_IN_PRETTY.sub(as_in_list, _VARCHAR_IN.sub(as_in_list, sql))


def columns_of(snapshot: SnapshotView, table: str) -> list[Mapping[str, Any]]:
    """The columns of ``table`` in the snapshot, in their position order."""
    cols = [c for c in snapshot.kind("column").values() if c["table"] == table]
    return sorted(cols, key=lambda c: c["position"])


def columns_by_table(snapshot: SnapshotView) -> dict[str, list[Mapping[str, Any]]]:
    """Every table's columns in position order, in one pass (for renderers of all tables)."""
    grouped: dict[str, list[Mapping[str, Any]]] = {}
    for col in snapshot.kind("column").values():
        grouped.setdefault(col["table"], []).append(col)
    for cols in grouped.values():
        cols.sort(key=lambda c: c["position"])
    return grouped


def by_table(snapshot: SnapshotView, kind: str) -> dict[str, list[Mapping[str, Any]]]:
    """Objects of ``kind`` (constraints, indexes) grouped by table, sorted by name."""
    grouped: dict[str, list[Mapping[str, Any]]] = {}
    for key in sorted(snapshot.kind(kind)):
        attrs = snapshot.kind(kind)[key]
        grouped.setdefault(attrs["table"], []).append(attrs)
    for items in grouped.values():
        items.sort(key=lambda a: a.get("name") or "")
    return grouped


def relation_of(snapshot: SnapshotView, name: str) -> ObjId:
    """The object a trigger, rule or index is on: a table, or else a view."""
    return ("table", name) if name in snapshot.kind("table") else ("view", name)


def role_name(name: str) -> str:
    """A role as SQL names it: ``PUBLIC``, or the quoted role name."""
    return "PUBLIC" if name == "PUBLIC" else quote_ident(name)


def comment_section(snapshot: SnapshotView, kind: str, target: Any) -> Section:
    """The ``COMMENT ON`` statements of one kind (``target(key, attrs)`` names the object)."""
    objects = snapshot.kind(kind)
    return section(
        PHASE["comment"],
        "Comments",
        f"{kind}:comment",
        [
            Step(
                f"COMMENT ON {target(key, objects[key])} IS "
                f"{quote_literal(objects[key]['comment'])}",
                after=((kind, key),),
            )
            for key in sorted(objects)
            if objects[key].get("comment") is not None
        ],
    )


def drop_on_table(kind: str, what: str, title: str) -> Renderer:
    """The drop renderer of a kind whose objects are named on their table
    (``DROP POLICY p ON t``), in reverse name order."""

    def drop(snapshot: SnapshotView) -> list[Section]:
        objects = snapshot.kind(kind)
        return [section(PHASE[kind], title, kind, [
            Step(
                f"DROP {what} {quote_ident(objects[key]['name'])} "
                f"ON {quote_ident(objects[key]['table'])}",
                ((kind, key),),
            )
            for key in sorted(objects, reverse=True)
        ])]

    return drop


def drop_named(kind: str, what: str, title: str) -> Renderer:
    """The drop renderer of a kind dropped by name (``what`` is the statement's head,
    e.g. ``DROP TYPE``), in reverse name order."""

    def drop(snapshot: SnapshotView) -> list[Section]:
        return [section(PHASE[kind], title, kind, [
            Step(f"{what} {quote_ident(name)}", ((kind, name),))
            for name in sorted(snapshot.kind(kind), reverse=True)
        ])]

    return drop
