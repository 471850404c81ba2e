"""The ``trigger`` kind: triggers, constraint triggers included.

Read with ``pg_get_triggerdef`` (not the internal triggers of foreign keys, nor the
clones a partition gets from its partitioned table's trigger). Created after its table
(or view) and its function, with ``ALTER TABLE ... DISABLE / ENABLE REPLICA / ENABLE
ALWAYS TRIGGER`` when it is not simply enabled; goes with its table's ``DROP TABLE``.
An environment that lacks a trigger of the reference is a destructive difference.
"""

from __future__ import annotations

from abparts_ops.core.quoting import quote_ident
from abparts_ops.core.schema.kind_order import PHASE
from abparts_ops.core.schema.kinds.base import REL_CATALOGS, Kind, comment_section, relation_of
from abparts_ops.core.schema.steps import Section, SnapshotView, Step, section

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

TRIGGERS_ADDRESS = r"""
  -- triggers (a constraint trigger's pg_constraint row stands for it)
  SELECT x.classid, x.oid, 'trigger', r.relname || '.' || t.tgname
  FROM pg_trigger t JOIN rels r ON r.oid = t.tgrelid
  CROSS JOIN LATERAL (VALUES ('pg_trigger'::regclass, t.oid),
                             ('pg_constraint'::regclass, t.tgconstraint)) x(classid, oid)
  WHERE NOT t.tgisinternal AND t.tgparentid = 0 AND x.oid <> 0
"""


#: The ``ALTER TABLE`` clause of a trigger's or a rule's state (``O``, enabled: none).
ENABLED_STATES = {"D": "DISABLE", "R": "ENABLE REPLICA", "A": "ENABLE ALWAYS"}


def _trigger_ddl(snapshot: SnapshotView) -> list[Section]:
    steps = []
    for key in sorted(snapshot.kind("trigger")):
        trigger = snapshot.kind("trigger")[key]
        obj = ("trigger", key)
        steps.append(Step(
            trigger["definition"], (obj,), (relation_of(snapshot, trigger["table"]),)
        ))
        state = ENABLED_STATES.get(trigger.get("enabled") or "O")
        if state:
            steps.append(Step(
                f"ALTER TABLE {quote_ident(trigger['table'])} {state} TRIGGER "
                f"{quote_ident(trigger['name'])}",
                after=(obj,),
            ))
    return [
        section(PHASE["trigger"], "Triggers", "trigger", steps),
        comment_section(snapshot, "trigger", lambda _k, t: (
            f"TRIGGER {quote_ident(t['name'])} ON {quote_ident(t['table'])}"
        )),
    ]


#: This module's kinds, with their renderers (collected by the registry, in this order).
#: Read in half 1, with constraints, indexes and policies: pg_get_triggerdef opens the
#: table, and a table is better opened by one backend than by both (see Kind.half).
REGISTERED: tuple[Kind, ...] = (
    Kind(
        "trigger", "trigger", "triggers", "table.trigger",
        "table, name, constraint, enabled, definition (pg_get_triggerdef), comment",
        TRIGGERS_SQL,
        REL_CATALOGS + ("pg_trigger", "pg_proc", "pg_type", "pg_operator", "pg_constraint"),
        PHASE["trigger"], 1, "op.execute", dropped_with=("table",), missing_destructive=True,
        address=TRIGGERS_ADDRESS, create=_trigger_ddl,
    ),
)
