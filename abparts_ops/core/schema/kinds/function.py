"""The ``function`` kind: functions and procedures, as the server prints them.

Read with ``pg_get_functiondef`` (members of extensions and the constructors of range
types are left out; aggregates and window functions are not modelled). Created before
the tables (defaults and checks call them), or after them when the signature uses a
table's row type (:func:`~abparts_ops.core.schema.kind_order.function_phases`); dropped
by ``DROP FUNCTION`` / ``DROP PROCEDURE`` with the identity arguments.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from abparts_ops.core.quoting import quote_ident
from abparts_ops.core.schema.kind_order import PHASE, function_phases
from abparts_ops.core.schema.kinds.base import Kind, comment_section
from abparts_ops.core.schema.steps import Section, SnapshotView, Step, section

FUNCTIONS_SQL = r"""
  -- functions and procedures, as the server prints them (pg_get_functiondef); members
  -- of extensions and the constructors of range types (internal dependencies) are left
  -- out; aggregates and window functions are not modelled
  SELECT 'function', p.proname::text || '(' || pg_get_function_identity_arguments(p.oid) || ')',
         CASE WHEN p.proname::text ~ ANY (%(excl)s::text[]) THEN p.proname::text END,
         json_build_object(
           'name', p.proname::text,
           'procedure', p.prokind = 'p',
           'arguments', pg_get_function_identity_arguments(p.oid),
           'definition', pg_get_functiondef(p.oid),
           'comment', (SELECT description FROM pg_description
                       WHERE objoid = p.oid AND classoid = 'pg_proc'::regclass))
  FROM pg_proc p JOIN ns ON p.pronamespace = ns.oid
  WHERE p.prokind IN ('f', 'p')
    AND NOT EXISTS (SELECT 1 FROM pg_depend e WHERE e.classid = 'pg_proc'::regclass
                    AND e.objid = p.oid AND e.deptype IN ('e', 'i'))
"""

FUNCTIONS_ADDRESS = r"""
  SELECT 'pg_proc'::regclass, p.oid, 'function',
         p.proname::text || '(' || pg_get_function_identity_arguments(p.oid) || ')'
  FROM pg_proc p JOIN ns ON p.pronamespace = ns.oid
  WHERE p.prokind IN ('f', 'p')
"""


def function_signature(attrs: Mapping[str, Any]) -> str:
    """``[PROCEDURE|FUNCTION] name(arguments)`` of a function row, for DROP/COMMENT/GRANT."""
    what = "PROCEDURE" if attrs.get("procedure") else "FUNCTION"
    return f"{what} {quote_ident(attrs['name'])}({attrs.get('arguments') or ''})"


def _function_ddl(snapshot: SnapshotView) -> list[Section]:
    phases = function_phases(snapshot)
    functions = snapshot.kind("function")

    def defs(phase: int) -> list[Step]:
        return [
            Step(functions[key]["definition"].rstrip().rstrip(";"), (("function", key),))
            for key in sorted(functions)
            if phases[key] == phase
        ]

    return [
        section(PHASE["function"], "Functions and procedures", "function",
                defs(PHASE["function"])),
        section(PHASE["table_function"], "Functions that use a table's row type",
                "function", defs(PHASE["table_function"])),
        comment_section(snapshot, "function", lambda _k, attrs: function_signature(attrs)),
    ]


def _drop_functions(snapshot: SnapshotView) -> list[Section]:
    phases = function_phases(snapshot)
    functions = snapshot.kind("function")
    return [
        section(phase, title, "function", [
            Step(f"DROP {function_signature(functions[key])}", (("function", key),))
            for key in sorted(functions, reverse=True)
            if phases[key] == phase
        ])
        for phase, title in (
            (PHASE["table_function"], "Functions that use a table's row type"),
            (PHASE["function"], "Functions and procedures"),
        )
    ]


#: This module's kinds, with their renderers (collected by the registry, in this order).
REGISTERED: tuple[Kind, ...] = (
    Kind(
        "function", "function", "functions", "name(identity arguments)",
        "name, procedure, arguments, definition (pg_get_functiondef), comment",
        FUNCTIONS_SQL,
        ("pg_proc", "pg_namespace", "pg_depend", "pg_description", "pg_type", "pg_language",
         "pg_class", "pg_attribute", "pg_operator", "pg_collation"),
        PHASE["function"], 0, "op.execute", address=FUNCTIONS_ADDRESS,
        create=_function_ddl, drop=_drop_functions,
    ),
)
