"""The ``view`` kind: views and materialized views.

Read with ``pg_get_viewdef``; a view, its row type and its ``_RETURN`` rule are
addressed as the view, so it depends on what it reads. Created after the views it names
(:func:`~abparts_ops.core.schema.kind_order.view_order`), dropped in the reverse order
(its triggers go with it).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from abparts_ops.core.quoting import quote_ident
from abparts_ops.core.schema.kind_order import PHASE, view_order
from abparts_ops.core.schema.kinds.base import REL_CATALOGS, Kind, comment_section
from abparts_ops.core.schema.steps import ObjId, Section, SnapshotView, Step, section

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


def strip_view_definition(definition: str) -> str:
    """A view's catalog definition without its trailing semicolon and blanks."""
    return definition.rstrip().rstrip(";").rstrip()


def _view_ddl(snapshot: SnapshotView) -> list[Section]:
    steps = []
    for name in view_order(snapshot):
        view = snapshot.kind("view")[name]
        what = "MATERIALIZED VIEW" if view.get("materialized") else "VIEW"
        steps.append(Step(
            f"CREATE {what} {quote_ident(name)} AS\n{strip_view_definition(view['definition'])}",
            (("view", name),),
        ))

    def target(name: str, view: Mapping[str, Any]) -> str:
        what = "MATERIALIZED VIEW" if view.get("materialized") else "VIEW"
        return f"{what} {quote_ident(name)}"

    return [
        section(PHASE["view"], "Views (dependency order)", "view", steps),
        comment_section(snapshot, "view", target),
    ]


def _drop_views(snapshot: SnapshotView) -> list[Section]:
    triggers: dict[str, list[ObjId]] = {}
    for key, trigger in snapshot.kind("trigger").items():
        triggers.setdefault(trigger["table"], []).append(("trigger", key))
    steps = []
    for name in reversed(view_order(snapshot)):
        what = "MATERIALIZED VIEW" if snapshot.kind("view")[name].get("materialized") else "VIEW"
        steps.append(Step(
            f"DROP {what} {quote_ident(name)}",
            (("view", name), *sorted(triggers.get(name, []))),
        ))
    return [section(PHASE["view"], "Views", "view", steps)]


#: This module's kinds, with their renderers (collected by the registry, in this order).
REGISTERED: tuple[Kind, ...] = (
    Kind(
        "view", "view", "views", "name", "materialized, definition, comment",
        VIEWS_SQL,
        REL_CATALOGS + ("pg_rewrite", "pg_proc", "pg_operator", "pg_type", "pg_collation"),
        PHASE["view"], 0, "op.execute", address=VIEWS_ADDRESS,
        create=_view_ddl, drop=_drop_views,
    ),
)
