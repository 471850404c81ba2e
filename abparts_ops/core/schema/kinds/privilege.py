"""The ``privilege`` kind: grants on tables, views, sequences, functions and procedures.

Read only with ``privileges=True`` (roles differ between environments; the owner's own
privileges are left out, as ownership is): one row per object and grantee. Rendered as
``GRANT`` (and ``GRANT ... WITH GRANT OPTION``) after everything else; a grant goes with
its object.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from abparts_ops.core.quoting import quote_ident
from abparts_ops.core.schema.kind_order import PHASE
from abparts_ops.core.schema.kinds.base import REL_CATALOGS, Kind, relation_of, role_name
from abparts_ops.core.schema.kinds.function import function_signature
from abparts_ops.core.schema.steps import ObjId, Section, SnapshotView, Step, section

PRIVILEGES_SQL = r"""
  -- privileges granted on tables, views, sequences, functions and procedures, one row
  -- per object and grantee (only with %(privileges)s: roles differ between environments;
  -- the owner's own privileges are left out, as ownership is)
  SELECT 'privilege', o.what || ' ' || o.name || ' ' || g.grantee, o.owner,
         json_build_object('object_type', o.what, 'object', o.name, 'grantee', g.grantee,
                           'privileges', g.privileges, 'grantable', g.grantable)
  FROM (
    SELECT CASE r.relkind WHEN 'S' THEN 'SEQUENCE' ELSE 'TABLE' END AS what, r.relname AS name,
           CASE WHEN r.excluded THEN r.relname END AS owner, r.relacl AS acl,
           r.relowner AS ownerid
    FROM rels r
    WHERE %(privileges)s AND r.relacl IS NOT NULL
    UNION ALL
    SELECT CASE p.prokind WHEN 'p' THEN 'PROCEDURE' ELSE 'FUNCTION' END,
           p.proname::text || '(' || pg_get_function_identity_arguments(p.oid) || ')',
           CASE WHEN p.proname::text ~ ANY (%(excl)s::text[]) THEN p.proname::text END,
           p.proacl, p.proowner
    FROM pg_proc p JOIN ns ON p.pronamespace = ns.oid
    WHERE %(privileges)s AND p.proacl IS NOT NULL AND p.prokind IN ('f', 'p')
      AND NOT EXISTS (SELECT 1 FROM pg_depend e WHERE e.classid = 'pg_proc'::regclass
                      AND e.objid = p.oid AND e.deptype IN ('e', 'i'))
  ) o
  CROSS JOIN LATERAL (
    SELECT CASE WHEN x.grantee = 0 THEN 'PUBLIC'
                ELSE pg_get_userbyid(x.grantee)::text END AS grantee,
           json_agg(x.privilege_type ORDER BY x.privilege_type) AS privileges,
           coalesce(json_agg(x.privilege_type ORDER BY x.privilege_type)
                    FILTER (WHERE x.is_grantable), '[]') AS grantable
    FROM aclexplode(o.acl) x
    WHERE x.grantee <> o.ownerid
    GROUP BY x.grantee
  ) g
"""


def privilege_target(snapshot: SnapshotView, attrs: Mapping[str, Any]) -> str:
    """``TABLE t`` / ``SEQUENCE s`` / ``FUNCTION f(args)`` of a privilege row."""
    what, obj = attrs["object_type"], attrs["object"]
    if what in ("FUNCTION", "PROCEDURE"):
        function = snapshot.kind("function").get(obj)
        if function is not None:
            return function_signature(function)
        name, _, args = obj.partition("(")
        return f"{what} {quote_ident(name)}({args}"
    return f"{what} {quote_ident(obj)}"


def _privilege_object(snapshot: SnapshotView, attrs: Mapping[str, Any]) -> ObjId:
    what, obj = attrs["object_type"], attrs["object"]
    if what in ("FUNCTION", "PROCEDURE"):
        return ("function", obj)
    if what == "SEQUENCE":
        return ("sequence", obj)
    return relation_of(snapshot, obj)


def _privilege_ddl(snapshot: SnapshotView) -> list[Section]:
    steps = []
    for key in sorted(snapshot.kind("privilege")):
        grant = snapshot.kind("privilege")[key]
        target = privilege_target(snapshot, grant)
        on = (_privilege_object(snapshot, grant),)
        grantee = role_name(grant["grantee"])
        grantable = set(grant.get("grantable") or [])
        plain = [p for p in grant.get("privileges") or [] if p not in grantable]
        if plain:
            steps.append(Step(f"GRANT {', '.join(plain)} ON {target} TO {grantee}", after=on))
        if grantable:
            steps.append(Step(
                f"GRANT {', '.join(sorted(grantable))} ON {target} TO {grantee} "
                "WITH GRANT OPTION",
                after=on,
            ))
    return [section(PHASE["privilege"], "Privileges", "privilege", steps)]


#: This module's kinds, with their renderers (collected by the registry, in this order).
REGISTERED: tuple[Kind, ...] = (
    Kind(
        "privilege", "privilege", "privileges", "OBJECT_TYPE object grantee",
        "object_type (TABLE, SEQUENCE, FUNCTION, PROCEDURE), object, grantee, privileges, "
        "grantable",
        PRIVILEGES_SQL,
        REL_CATALOGS + ("pg_proc", "pg_authid", "pg_type"),
        PHASE["privilege"], 1, "op.execute", dropped_with=("table", "sequence", "function"),
        opt_in="privileges", create=_privilege_ddl,
    ),
)
