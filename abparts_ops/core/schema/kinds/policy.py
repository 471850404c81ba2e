"""The ``policy`` kind: row-level security policies.

Created by ``CREATE POLICY`` (:func:`policy_statement`) after its table, dropped by
``DROP POLICY ... ON``. An environment that lacks a policy of the reference is a
destructive difference (its rows are no longer guarded as the reference guards them).
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
    drop_on_table,
    role_name,
)
from abparts_ops.core.schema.steps import Section, SnapshotView, Step, section

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

POLICIES_ADDRESS = r"""
  SELECT 'pg_policy'::regclass, p.oid, 'policy', r.relname || '.' || p.polname
  FROM pg_policy p JOIN rels r ON r.oid = p.polrelid
"""


def policy_statement(policy: Mapping[str, Any]) -> str:
    """``CREATE POLICY`` for one policy of the snapshot."""
    text = f"CREATE POLICY {quote_ident(policy['name'])} ON {quote_ident(policy['table'])}"
    if not policy.get("permissive", True):
        text += " AS RESTRICTIVE"
    text += f" FOR {policy.get('command') or 'ALL'}"
    text += " TO " + ", ".join(role_name(r) for r in policy.get("roles") or ["PUBLIC"])
    if policy.get("using") is not None:
        text += f" USING ({policy['using']})"
    if policy.get("with_check") is not None:
        text += f" WITH CHECK ({policy['with_check']})"
    return text


def _policy_ddl(snapshot: SnapshotView) -> list[Section]:
    policies = snapshot.kind("policy")
    steps = [
        Step(policy_statement(policies[key]), (("policy", key),),
             (("table", policies[key]["table"]),))
        for key in sorted(policies)
    ]
    return [
        section(PHASE["policy"], "Row-level security policies", "policy", steps),
        comment_section(snapshot, "policy", lambda _k, p: (
            f"POLICY {quote_ident(p['name'])} ON {quote_ident(p['table'])}"
        )),
    ]


#: This module's kinds, with their renderers (collected by the registry, in this order).
#: Read in half 1, with constraints, indexes and triggers: pg_get_expr of a policy's
#: expressions opens the table (see Kind.half).
REGISTERED: tuple[Kind, ...] = (
    Kind(
        "policy", "policy", "policies", "table.policy",
        "table, name, permissive, command, roles, using, with_check, comment",
        POLICIES_SQL,
        REL_CATALOGS + ("pg_policy", "pg_authid", "pg_proc", "pg_type", "pg_operator"),
        PHASE["policy"], 1, "op.execute", missing_destructive=True,
        address=POLICIES_ADDRESS, create=_policy_ddl,
        drop=drop_on_table("policy", "POLICY", "Row-level security policies"),
    ),
)
