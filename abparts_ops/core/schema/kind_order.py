"""The orders of the kinds and, within a kind, of its objects.

:data:`PHASE` is the order of the kinds' statements (creation ascending, removal
descending): the tie-breaker of the dependency order
(:mod:`~abparts_ops.core.schema.order`), which the catalog's own dependencies override.
The functions below order the objects of one kind from what the snapshot says of them,
for the renderers of :mod:`abparts_ops.core.schema.kinds` and for the baseline: views
after the views they name, tables after the tables their foreign keys reference (and the
keys that close a cycle), partitions after their parents, domains after the domains they
are over, and the phase of each function (before the tables, or after them when its
signature uses a table's row type). They read the snapshot through
:class:`~abparts_ops.core.schema.steps.SnapshotView`, so the kind modules import them
without a cycle through the snapshot model.
"""

from __future__ import annotations

import heapq
import re
from collections.abc import Iterable, Mapping

from abparts_ops.core.quoting import quote_ident
from abparts_ops.core.schema.steps import SnapshotView

#: Dependency order of creation (ascending) and of removal (descending). A kind's own
#: statements come in its phase; some kinds add statements to later phases (constraints
#: that must wait for every table, sequence ownership, row security, comments).
PHASE: Mapping[str, int] = {
    "extension": 10,
    "enum": 20,
    "domain": 30,
    "range": 32,
    "composite": 34,
    "function": 40,  # before tables: defaults and checks call them
    "sequence": 50,
    "table": 60,
    "partition": 62,  # after every partitioned table
    "foreign_key": 70,
    "late_constraint": 75,
    "late_default": 76,  # column defaults set after the objects they use (a cycle broken)
    "table_function": 78,  # functions whose signature names a table's row type
    "sequence_owner": 80,
    "view": 90,
    "index": 100,
    "row_security": 105,
    "trigger": 110,  # after its table and its function
    "policy": 120,
    "rule": 130,
    "comment": 200,
    "privilege": 210,
}


def _mentions(definition: str, name: str) -> bool:
    """Whether ``name`` (as it would be quoted) appears as a whole word in ``definition``."""
    quoted = quote_ident(name)
    pattern = r'(?<![\w$"])' + re.escape(quoted) + r'(?![\w$"])'
    return re.search(pattern, definition) is not None


def topological_order(names: Iterable[str], depends_on: Mapping[str, Iterable[str]]) -> list[str]:
    """Order ``names`` so each comes after what it depends on; ties broken by name.

    Dependencies outside ``names`` and on oneself are ignored. A cycle does not fail: the
    smallest remaining name is taken next and the order continues from there.
    """
    remaining = set(names)
    deps = {
        name: {d for d in depends_on.get(name, ()) if d in remaining and d != name}
        for name in remaining
    }
    order: list[str] = []
    while remaining:
        ready = sorted(name for name in remaining if not deps[name] & remaining)
        chosen = ready[0] if ready else sorted(remaining)[0]
        order.append(chosen)
        remaining.discard(chosen)
    return order


def view_order(snapshot: SnapshotView) -> list[str]:
    """View names in creation order: a view after every view its definition names."""
    views = snapshot.kind("view")
    depends = {
        name: [
            other
            for other in views
            if other != name and _mentions(attrs.get("definition") or "", other)
        ]
        for name, attrs in views.items()
    }
    return topological_order(views, depends)


def table_order(snapshot: SnapshotView) -> tuple[list[str], list[str]]:
    """Tables in dependency order of their foreign keys, and the keys that close cycles.

    Returns ``(order, cycle_keys)``: a table comes after the tables it references, except
    where foreign keys form a cycle; the snapshot keys of the foreign keys that had to be
    set aside to break those cycles are listed (sorted) in ``cycle_keys``. Dropping
    ``cycle_keys`` first and then the tables in reverse ``order`` always succeeds.
    """
    tables = set(snapshot.kind("table"))
    edges: dict[str, dict[str, list[str]]] = {t: {} for t in tables}
    dependents: dict[str, set[str]] = {t: set() for t in tables}
    for key, fk in snapshot.kind("foreign_key").items():
        src, ref = fk["table"], fk.get("ref_table")
        if src in tables and ref in tables and ref != src and not fk.get("inherited"):
            edges[src].setdefault(ref, []).append(key)
            dependents[ref].add(src)
    # Kahn's algorithm, smallest name first (heaps: linear-logarithmic, not quadratic)
    waiting = {t: len(edges[t]) for t in tables}
    ready = [t for t in tables if not waiting[t]]
    everyone = sorted(tables)  # already a heap; for breaking cycles
    heapq.heapify(ready)
    remaining = set(tables)
    order: list[str] = []
    cycle_keys: list[str] = []
    while remaining:
        while ready and ready[0] not in remaining:
            heapq.heappop(ready)
        if ready:
            chosen = heapq.heappop(ready)
        else:
            while everyone[0] not in remaining:
                heapq.heappop(everyone)
            chosen = heapq.heappop(everyone)
            for ref, keys in edges[chosen].items():
                if ref in remaining:
                    cycle_keys.extend(keys)
        order.append(chosen)
        remaining.discard(chosen)
        for dependent in dependents[chosen]:
            if dependent in remaining:
                waiting[dependent] -= 1
                if not waiting[dependent]:
                    heapq.heappush(ready, dependent)
    return order, sorted(cycle_keys)


def partition_order(snapshot: SnapshotView) -> list[str]:
    """Partitions in creation order: after their parent (sorted by depth, then name)."""
    tables = snapshot.kind("table")

    def depth(name: str) -> int:
        seen = 0
        while tables.get(name, {}).get("partition_of") in tables and seen < len(tables):
            name = tables[name]["partition_of"]
            seen += 1
        return seen

    parts = [name for name, attrs in tables.items() if attrs.get("partition_of") in tables]
    return sorted(parts, key=lambda name: (depth(name), name))


def domain_order(snapshot: SnapshotView) -> list[str]:
    """Domain names in creation order (a domain over another domain comes after it)."""
    domains = snapshot.kind("domain")
    depends = {
        name: [
            other
            for other in domains
            if quote_ident(other) == (attrs.get("type") or "").removesuffix("[]")
        ]
        for name, attrs in domains.items()
    }
    return topological_order(domains, depends)


_WORD = re.compile(r'"(?:[^"]|"")*"|[A-Za-z_][\w$]*')


def _names_a_table(snapshot: SnapshotView, definition: str) -> bool:
    """Whether a function's signature (the lines before its body) names a table's type."""
    head = definition.split("\nAS ", 1)[0].split("\n BEGIN ATOMIC", 1)[0]
    head = "\n".join(line for line in head.split("\n") if not line.startswith(" SET "))
    words = set(_WORD.findall(head))  # one pass: a regex per table is quadratic
    return any(quote_ident(table) in words for table in snapshot.kind("table"))


def function_phases(snapshot: SnapshotView) -> dict[str, int]:
    """The phase of every function: before the tables, or after them when its signature
    uses a table's row type (``RETURNS SETOF parts``)."""
    return {
        key: PHASE["table_function"]
        if _names_a_table(snapshot, attrs.get("definition") or "")
        else PHASE["function"]
        for key, attrs in snapshot.kind("function").items()
    }
