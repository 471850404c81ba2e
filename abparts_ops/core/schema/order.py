"""Dependency order: the statements of a DDL script, sorted by what PostgreSQL records.

A fixed order of kinds (functions, then tables, then foreign keys, then indexes ...) is a
guess about dependencies that the catalog already knows: a foreign key may reference
columns covered by a unique *index* (created, in that guess, after the key), a function
may return a view's row type (created, in that guess, before the view). This module
orders the statements by the dependencies the snapshot read from the catalog
(:attr:`~abparts_ops.core.schema.model.Snapshot.dependencies`: ``pg_depend``, the
referenced index of a foreign key, what a view's rule and a trigger use ...), the way
``pg_dump`` does (``pg_dump_sort.c``):

- every :class:`~abparts_ops.core.schema.steps.Step` (one statement) says which objects
  it creates and which it needs besides what those objects depend on; a step comes after
  the steps that create what it depends on;
- the phases of the kinds (:data:`~abparts_ops.core.schema.kind_order.PHASE`), and
  within a phase the renderers' own order (names), are only the tie-breaker: among the
  steps whose dependencies are satisfied, the one earliest in that order comes first. An
  order of phases that already satisfies every dependency is kept as it is, byte for
  byte;
- a cycle (two tables whose foreign keys reference each other when dropped; a table
  whose default or check calls a function that reads the table) is broken as pg_dump
  breaks it: an object declared inside another's statement (a constraint or a default
  inside ``CREATE TABLE``) is split off into a statement of its own, which comes after
  (create, then ``ALTER TABLE ... ADD``) or, when dropping, before (``ALTER TABLE ...
  DROP CONSTRAINT``). The renderer says how (a ``split`` function); a cycle nothing can
  break is refused with the objects that form it.

The same function orders the canonical DDL and the baseline's ``upgrade()`` (creation),
the drops and the baseline's ``downgrade()`` (removal: the reverse dependencies). The
graph is the catalog's dependencies plus what the snapshot itself says (a foreign key
depends on its referenced table and on the unique constraint or index covering the
referenced columns; a partition on its parent), so a snapshot without catalog
dependencies is ordered correctly for those too.
"""

from __future__ import annotations

import heapq
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from abparts_ops.core.errors import SchemaError
from abparts_ops.core.quoting import quote_ident
from abparts_ops.core.schema.model import Snapshot
from abparts_ops.core.schema.steps import ObjId, Section, Step

Graph = Mapping[ObjId, Iterable[ObjId]]


#: How a renderer splits objects off a step to break a cycle: given the section, the
#: step and the objects to take out of it, the step without them and the sections of the
#: statements that create (or remove) them on their own; None when it cannot.
Splitter = Callable[[Section, Step, frozenset[ObjId]], "tuple[Step, list[Section]] | None"]


class DependencyCycle(SchemaError):
    """Objects that depend on each other in a circle no split can break."""

    def __init__(self, objects: Sequence[ObjId]) -> None:
        self.objects = tuple(objects)
        names = " -> ".join(f"{kind} {key}" for kind, key in (*self.objects, self.objects[0]))
        super().__init__(
            f"these objects depend on each other in a cycle that splitting a constraint "
            f"or a default off its table cannot break: {names}; no script can create (or "
            "drop) them one after the other (break the cycle in the source, e.g. move a "
            "default or a check into a trigger, or exclude one of them)."
        )


def dependency_graph(snapshot: Snapshot) -> dict[ObjId, set[ObjId]]:
    """What each object depends on: the catalog's dependencies (when the snapshot has
    them) and what the snapshot's own attributes say (foreign key -> referenced table
    and the unique constraint or index covering the referenced columns; partition ->
    its parent)."""
    graph: dict[ObjId, set[ObjId]] = defaultdict(set)
    for kind, key, ref_kind, ref_key in snapshot.dependencies or ():
        if ref_kind != "outside":
            graph[(kind, key)].add((ref_kind, ref_key))
    tables = snapshot.kind("table")
    for name, attrs in tables.items():
        if attrs.get("partition_of") in tables:
            graph[("table", name)].add(("table", attrs["partition_of"]))
    keys = _unique_keys(snapshot)
    for key, fk in snapshot.kind("foreign_key").items():
        ref = fk.get("ref_table")
        if fk.get("inherited") or ref not in tables:
            continue
        node = ("foreign_key", key)
        graph[node].add(("table", ref))
        wanted = frozenset(fk.get("ref_columns") or ())
        graph[node].update(obj for columns, obj in keys.get(ref, ()) if columns == wanted)
    return graph


def _unique_keys(snapshot: Snapshot) -> dict[str, list[tuple[frozenset[str], ObjId]]]:
    """Per table, the column sets a foreign key can reference: primary keys, unique
    constraints, and unique indexes on plain columns without a predicate."""
    found: dict[str, list[tuple[frozenset[str], ObjId]]] = defaultdict(list)
    for kind in ("primary_key", "unique"):
        for key, con in snapshot.kind(kind).items():
            found[con["table"]].append((frozenset(con.get("columns") or ()), (kind, key)))
    for name, idx in snapshot.kind("index").items():
        if not idx.get("unique") or idx.get("predicate") or idx.get("parent_index"):
            continue
        columns = {}
        for key in idx.get("keys") or []:
            bare = key[1:-1].replace('""', '"') if key.startswith('"') else key
            if quote_ident(bare) != key:
                break
            columns[bare] = True
        else:
            found[idx["table"]].append((frozenset(columns), ("index", name)))
    return found


def outside_dependencies(snapshot: Snapshot) -> list[tuple[str, str, str]]:
    """``(kind, key, what)`` of every compared object that depends on something the
    snapshot cannot hold (an object of another schema, or of a kind not modelled)."""
    return [
        (kind, key, ref_key)
        for kind, key, ref_kind, ref_key in snapshot.dependencies or ()
        if ref_kind == "outside"
    ]


@dataclass
class _Node:
    section: Section
    step: Step
    rank: tuple[Any, ...]


class _Order:
    """The graph of steps: who depends on whom, kept up to date while cycles are split."""

    def __init__(self, sections: Sequence[Section], graph: Graph, removing: bool) -> None:
        self.graph = graph
        self.removing = removing
        self.nodes: list[_Node] = []
        for pos, sec in enumerate(sections):
            key = -sec.phase if removing else sec.phase
            for idx, step in enumerate(sec.steps):
                self.nodes.append(_Node(sec, step, (key, pos, idx, 0, 0)))
        self.creator: dict[ObjId, int] = {}
        for i, node in enumerate(self.nodes):
            for obj in node.step.creates:
                self.creator.setdefault(obj, i)
        self.deps: list[set[int]] = [self._deps_of(i) for i in range(len(self.nodes))]
        self.dependents: list[set[int]] = [set() for _ in self.nodes]
        for i, deps in enumerate(self.deps):
            for j in deps:
                self.dependents[j].add(i)

    def _deps_of(self, i: int) -> set[int]:
        step = self.nodes[i].step
        out: set[int] = set()
        creator, graph = self.creator, self.graph
        for obj in step.creates:
            for dep in graph.get(obj, ()):
                j = creator.get(dep)
                if j is not None and j != i:
                    out.add(j)
        for obj in step.after:
            j = creator.get(obj)
            if j is not None and j != i:
                out.add(j)
        return out

    def _refresh(self, i: int) -> None:
        for j in self.deps[i]:
            self.dependents[j].discard(i)
        self.deps[i] = self._deps_of(i)
        for j in self.deps[i]:
            self.dependents[j].add(i)

    # -- cycles ------------------------------------------------------------------------

    def components(self) -> list[list[int]]:
        """The strongly connected components of more than one step (Tarjan, iterative)."""
        index: dict[int, int] = {}
        low: dict[int, int] = {}
        on_stack: set[int] = set()
        stack: list[int] = []
        found: list[list[int]] = []
        counter = 0
        for root in range(len(self.nodes)):
            if root in index:
                continue
            work = [(root, iter(sorted(self.deps[root])))]
            index[root] = low[root] = counter
            counter += 1
            stack.append(root)
            on_stack.add(root)
            while work:
                node, children = work[-1]
                advanced = False
                for child in children:
                    if child not in index:
                        index[child] = low[child] = counter
                        counter += 1
                        stack.append(child)
                        on_stack.add(child)
                        work.append((child, iter(sorted(self.deps[child]))))
                        advanced = True
                        break
                    if child in on_stack:
                        low[node] = min(low[node], index[child])
                if advanced:
                    continue
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        found.append(sorted(component, key=lambda n: self.nodes[n].rank))
        return found

    def find_cycle(self, members: set[int]) -> list[int] | None:
        """A cycle among ``members`` (each step depends on the next, the last on the
        first), found by a depth-first walk in rank order; None when there is none."""
        state: dict[int, int] = {}  # 1: on the path, 2: done
        rank = lambda n: self.nodes[n].rank  # noqa: E731
        for root in sorted(members, key=rank):
            if root in state:
                continue
            path = [root]
            state[root] = 1
            work = [iter(sorted((d for d in self.deps[root] if d in members), key=rank))]
            while work:
                for child in work[-1]:
                    if state.get(child) == 1:
                        return path[path.index(child):]
                    if child not in state:
                        state[child] = 1
                        path.append(child)
                        work.append(iter(sorted(
                            (d for d in self.deps[child] if d in members), key=rank
                        )))
                        break
                else:
                    work.pop()
                    state[path.pop()] = 2
        return None

    def causes(self, a: int, b: int) -> frozenset[ObjId] | None:
        """The objects of step ``a`` that make it depend on step ``b``; None when ``a``
        needs ``b`` for the statement itself (its ``after``), which no split changes."""
        step = self.nodes[a].step
        if any(self.creator.get(obj) == b for obj in step.after):
            return None
        return frozenset(
            obj for obj in step.creates
            if any(self.creator.get(dep) == b for dep in self.graph.get(obj, ()))
        ) or None

    def break_cycle(self, cycle: list[int], split: Splitter | None) -> list[int]:
        """Split the objects that close ``cycle`` off their step; the new steps' indexes.

        The edges of the cycle are tried in the order of their objects' names; the first
        one the renderer can split is taken. Raises :class:`DependencyCycle` if none."""
        candidates = []
        for k, a in enumerate(cycle):
            b = cycle[(k + 1) % len(cycle)]
            objects = self.causes(a, b)
            if objects:
                candidates.append((sorted(objects), a, objects))
        for _names, a, objects in sorted(candidates, key=lambda c: (c[0], self.nodes[c[1]].rank)):
            node = self.nodes[a]
            result = split(node.section, node.step, objects) if split else None
            if result is None or objects & set(result[0].creates):
                continue  # not split, or not off this step: the cycle would stay
            return self._apply_split(a, result)
        raise DependencyCycle([self.nodes[n].step.creates[0] for n in cycle
                               if self.nodes[n].step.creates])

    def _apply_split(self, a: int, result: tuple[Step, list[Section]]) -> list[int]:
        replacement, extra = result
        node = self.nodes[a]
        affected = set(self.dependents[a]) | {a}
        moved = set(node.step.creates) - set(replacement.creates)
        node.step = replacement
        added = []
        count = 0
        for sec in extra:
            for step in sec.steps:
                if self.removing:
                    rank = (node.rank[0], node.rank[1], node.rank[2], -1, count)
                else:
                    rank = (sec.phase, node.rank[1], node.rank[2], 1, count)
                count += 1
                self.nodes.append(_Node(sec, step, rank))
                self.deps.append(set())
                self.dependents.append(set())
                i = len(self.nodes) - 1
                added.append(i)
                for obj in step.creates:
                    if obj in moved:
                        self.creator[obj] = i
                    else:
                        self.creator.setdefault(obj, i)
        for i in sorted(affected) + added:
            self._refresh(i)
        return added

    # -- the order ---------------------------------------------------------------------

    def sorted_nodes(self) -> list[int]:
        """Kahn's algorithm, the smallest rank first among the steps that may come next."""
        if self.removing:  # a step waits for every step that depends on it
            waits, frees = self.dependents, self.deps
        else:
            waits, frees = self.deps, self.dependents
        waiting = [len(w) for w in waits]
        ready = [(self.nodes[i].rank, i) for i in range(len(self.nodes)) if not waiting[i]]
        heapq.heapify(ready)
        order = []
        while ready:
            _rank, i = heapq.heappop(ready)
            order.append(i)
            for j in frees[i]:
                waiting[j] -= 1
                if not waiting[j]:
                    heapq.heappush(ready, (self.nodes[j].rank, j))
        if len(order) != len(self.nodes):  # pragma: no cover - cycles are broken before
            raise SchemaError("internal error: the dependency order lost a step")
        return order


def order_sections(
    sections: Sequence[Section],
    graph: Graph,
    *,
    removing: bool = False,
    split: Splitter | None = None,
) -> list[Section]:
    """The steps of ``sections`` in dependency order, regrouped into sections.

    ``sections`` come in the tie-breaking order (by phase, descending for a removal);
    ``graph`` is what each object depends on (:func:`dependency_graph`). With
    ``removing`` a step comes *before* the steps that create what it depends on (a
    script that drops). A cycle is broken with ``split`` (see the module doc); one it
    cannot break raises :class:`DependencyCycle`. Consecutive steps of one section stay
    together; a section whose steps are separated by others appears more than once.
    """
    order = _Order(sections, graph, removing)
    for component in order.components():
        members = set(component)
        while (cycle := order.find_cycle(members)) is not None:
            members.update(order.break_cycle(cycle, split))
    groups: list[tuple[Section, list[Step]]] = []
    for i in order.sorted_nodes():
        node = order.nodes[i]
        sec = node.section
        if groups and _same(groups[-1][0], sec):
            groups[-1][1].append(node.step)
        else:
            groups.append((sec, [node.step]))
    return [Section(sec.phase, sec.title, sec.tag, tuple(steps)) for sec, steps in groups]


def _same(a: Section, b: Section) -> bool:
    return a is b or (a.phase, a.title, a.tag) == (b.phase, b.title, b.tag)
