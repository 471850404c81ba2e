"""The registry of object kinds: every kind the snapshot models, each in one module.

A kind lives in one module of this package (a family of kinds rendered together shares
one: tables and their columns, the five constraint kinds), which holds all that is
particular to it: its branch of the catalog query (``*_SQL``) and of the dependency query
(``*_ADDRESS``), its :class:`Kind` entry, and the renderers that entry registers: the
canonical DDL that creates its objects (``create``), the statements that drop them
(``drop``) and, where a change can lose data, the rule that says so
(``changed_destructive``). Adding a kind is one module (and its line in
:data:`REGISTRY`), and its tests.

===================  ==========================================================
module               kinds
===================  ==========================================================
``extension``        ``extension``
``enum_type``        ``enum``
``domain``           ``domain``
``range_type``       ``range``
``composite_type``   ``composite``
``function``         ``function`` (functions and procedures)
``sequence``         ``sequence``
``table``            ``table``, ``column``
``constraint``       ``primary_key``, ``unique``, ``check``, ``exclusion``, ``foreign_key``
``index``            ``index``
``view``             ``view`` (views and materialized views)
``trigger``          ``trigger``
``policy``           ``policy``
``rule``             ``rule``
``privilege``        ``privilege``
===================  ==========================================================

:mod:`~abparts_ops.core.schema.kinds.base` holds the :class:`Kind` record and the helpers
the renderers share; the orders (:data:`PHASE`, and the order of the objects within a
kind) are in :mod:`~abparts_ops.core.schema.kind_order`. The snapshot
(:mod:`~abparts_ops.core.schema.catalog_sql`), the canonical DDL
(:mod:`~abparts_ops.core.schema.ddl`: its ``DDL`` and ``DROP`` maps are this registry's
renderers), the diff, the baseline renderer and the format's documentation
(:mod:`~abparts_ops.core.schema.model`) read this registry.

Branch SQL conventions (see ``catalog_sql``'s performance notes): each branch returns
``(kind, key, owner, attrs json)``; per-row lookups go through a catalog index (by oid)
and run only for the rows that need them (``CASE WHEN ... THEN (SELECT ...) END``), never
as a scan per row. Parameters: ``%(schema)s``, ``%(excl)s`` and ``%(privileges)s``.

Object addresses: how the catalog's (classid, objid) of each kind's objects map to their
snapshot keys, for the dependency query (``catalog_sql.DEPENDENCIES_SQL``). Each address
branch returns (classid, objid, kind, key); the catalog rows that stand for an object
(its row type and array type, the index of a key, the ``_RETURN`` rule of a view, the
members of an extension) map to the object itself, so PostgreSQL's dependencies between
them become dependencies between the snapshot's objects. Sub-objects (columns) are
addressed by their relation: the join ignores objsubid. A column's default is the one
sub-object of its own (``column_default``, table.column), so that a cycle through it can
be broken by setting it after the table (pg_dump does the same).
"""

from __future__ import annotations

from collections.abc import Mapping

from abparts_ops.core.schema.kind_order import PHASE
from abparts_ops.core.schema.kinds import (
    composite_type,
    constraint,
    domain,
    enum_type,
    extension,
    function,
    index,
    policy,
    privilege,
    range_type,
    rule,
    sequence,
    table,
    trigger,
    view,
)
from abparts_ops.core.schema.kinds.base import Kind

__all__ = [
    "BY_NAME",
    "KINDS",
    "PHASE",
    "REGISTRY",
    "Kind",
    "addresses",
    "branches",
    "format_doc",
]

#: Every kind, in the order of the catalog query's branches and of the format's
#: documentation (the order of the kind modules below).
REGISTRY: tuple[Kind, ...] = (
    *extension.REGISTERED,
    *enum_type.REGISTERED,
    *domain.REGISTERED,
    *range_type.REGISTERED,
    *composite_type.REGISTERED,
    *function.REGISTERED,
    *sequence.REGISTERED,
    *table.REGISTERED,
    *constraint.REGISTERED,
    *index.REGISTERED,
    *view.REGISTERED,
    *trigger.REGISTERED,
    *policy.REGISTERED,
    *rule.REGISTERED,
    *privilege.REGISTERED,
)

KINDS: tuple[str, ...] = tuple(kind.name for kind in REGISTRY)
BY_NAME: Mapping[str, Kind] = {kind.name: kind for kind in REGISTRY}


def branches(half: int | None = None) -> tuple[str, ...]:
    """The distinct query branches, in registry order (only those of ``half`` if given)."""
    seen: list[str] = []
    for kind in REGISTRY:
        if (half is None or kind.half == half) and kind.sql not in seen:
            seen.append(kind.sql)
    return tuple(seen)


def addresses() -> tuple[str, ...]:
    """The distinct address branches of the dependency query, in registry order."""
    seen: list[str] = []
    for kind in REGISTRY:
        if kind.address and kind.address not in seen:
            seen.append(kind.address)
    return tuple(seen)


def format_doc() -> str:
    """The kinds and their attributes as a reST list (the snapshot format's documentation)."""
    lines = []
    for kind in REGISTRY:
        extra = f" (only with ``{kind.opt_in}=True``)" if kind.opt_in else ""
        lines.append(f"- ``{kind.name}`` (key ``{kind.key}``){extra}: {kind.attrs}")
    return "\n".join(lines)
