"""The ``rule`` kind: rewrite rules (not the ``_RETURN`` rule that makes a view).

Created from ``pg_get_ruledef`` after its table or view, with its state as a trigger's
(:data:`~abparts_ops.core.schema.kinds.trigger.ENABLED_STATES`); dropped by ``DROP RULE
... ON``.
"""

from __future__ import annotations

from abparts_ops.core.quoting import quote_ident
from abparts_ops.core.schema.kind_order import PHASE
from abparts_ops.core.schema.kinds.base import (
    REL_CATALOGS,
    Kind,
    comment_section,
    drop_on_table,
    relation_of,
)
from abparts_ops.core.schema.kinds.trigger import ENABLED_STATES
from abparts_ops.core.schema.steps import Section, SnapshotView, Step, section

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

RULES_ADDRESS = r"""
  SELECT 'pg_rewrite'::regclass, w.oid, 'rule', r.relname || '.' || w.rulename
  FROM pg_rewrite w JOIN rels r ON r.oid = w.ev_class
  WHERE w.rulename <> '_RETURN'
"""


def _rule_ddl(snapshot: SnapshotView) -> list[Section]:
    steps = []
    for key in sorted(snapshot.kind("rule")):
        rule = snapshot.kind("rule")[key]
        obj = ("rule", key)
        steps.append(Step(
            rule["definition"].rstrip().rstrip(";"), (obj,),
            (relation_of(snapshot, rule["table"]),),
        ))
        state = ENABLED_STATES.get(rule.get("enabled") or "O")
        if state:
            steps.append(Step(
                f"ALTER TABLE {quote_ident(rule['table'])} {state} RULE "
                f"{quote_ident(rule['name'])}",
                after=(obj,),
            ))
    return [
        section(PHASE["rule"], "Rules", "rule", steps),
        comment_section(snapshot, "rule", lambda _k, r: (
            f"RULE {quote_ident(r['name'])} ON {quote_ident(r['table'])}"
        )),
    ]


#: This module's kinds, with their renderers (collected by the registry, in this order).
REGISTERED: tuple[Kind, ...] = (
    Kind(
        "rule", "rule", "rules", "table.rule", "table, name, enabled, definition, comment",
        RULES_SQL,
        REL_CATALOGS + ("pg_rewrite", "pg_proc", "pg_type", "pg_operator"),
        PHASE["rule"], 0, "op.execute", address=RULES_ADDRESS, create=_rule_ddl,
        drop=drop_on_table("rule", "RULE", "Rules"),
    ),
)
