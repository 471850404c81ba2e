"""The ``domain`` kind: domains, with their base type, default and checks.

Created by ``CREATE DOMAIN`` after the domains they are over
(:func:`~abparts_ops.core.schema.kind_order.domain_order`), dropped by ``DROP DOMAIN`` in
the reverse order.
"""

from __future__ import annotations

from abparts_ops.core.quoting import quote_ident
from abparts_ops.core.schema.kind_order import PHASE, domain_order
from abparts_ops.core.schema.kinds.base import TYPE_CATALOGS, Kind, type_address
from abparts_ops.core.schema.steps import Section, SnapshotView, Step, section

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

DOMAINS_ADDRESS = type_address("domain", "d") + r"""
  UNION ALL
  SELECT 'pg_constraint'::regclass, c.oid, 'domain', t.typname::text
  FROM pg_constraint c JOIN pg_type t ON t.oid = c.contypid
  JOIN ns ON t.typnamespace = ns.oid
"""


def render_domain(snapshot: SnapshotView, name: str) -> str:
    """``CREATE DOMAIN`` for one domain of the snapshot (no trailing semicolon)."""
    domain = snapshot.kind("domain")[name]
    parts = [f"CREATE DOMAIN {quote_ident(name)} AS {domain['type']}"]
    if domain.get("default") is not None:
        parts.append(f"DEFAULT {domain['default']}")
    if not domain.get("nullable", True):
        parts.append("NOT NULL")
    for check in domain.get("checks") or []:
        if check.strip().upper() != "NOT NULL":
            parts.append(check)
    return " ".join(parts)


def _domain_ddl(snapshot: SnapshotView) -> list[Section]:
    steps = [
        Step(render_domain(snapshot, name), (("domain", name),))
        for name in domain_order(snapshot)
    ]
    return [section(PHASE["domain"], "Domains", "domain", steps)]


def _drop_domains(snapshot: SnapshotView) -> list[Section]:
    return [section(PHASE["domain"], "Domains", "domain", [
        Step(f"DROP DOMAIN {quote_ident(name)}", (("domain", name),))
        for name in reversed(domain_order(snapshot))
    ])]


#: This module's kinds, with their renderers (collected by the registry, in this order).
REGISTERED: tuple[Kind, ...] = (
    Kind(
        "domain", "domain", "domains", "name", "type, nullable, default, checks",
        DOMAINS_SQL, TYPE_CATALOGS + ("pg_constraint", "pg_proc", "pg_operator", "pg_attribute"),
        PHASE["domain"], 0, "op.execute", extra_destructive=True, address=DOMAINS_ADDRESS,
        create=_domain_ddl, drop=_drop_domains,
    ),
)
