"""Canonical, schema-only DDL rendered from a :class:`~abparts_ops.core.schema.model.Snapshot`.

:func:`render_ddl` turns a snapshot into executable SQL that recreates every compared
object in an empty database. This module is the assembly: every kind of the registry
(:mod:`abparts_ops.core.schema.kinds`, one module per kind) registers its renderer
beside its catalog read (:data:`DDL`; a kind declared by another kind's renderer, as
columns are by their table's, has none) that returns :class:`~abparts_ops.core.schema.
steps.Section` s; the sections come in dependency order
(:mod:`~abparts_ops.core.schema.order`: what the catalog records between the objects,
with the phases of :data:`~abparts_ops.core.schema.kind_order.PHASE` as the tie-breaker,
cycles split as pg_dump splits them: :func:`split_step`, :func:`split_drop`). The
phases, where no dependency says otherwise:

extensions, enum types, domains, range and composite types, functions and procedures (before
the tables: defaults and checks call them; ``check_function_bodies`` is off, as in
``pg_dump``), sequences, tables (columns, primary key, unique, check and exclusion
constraints inline), partitions (``PARTITION OF``, after their parents), foreign keys
(``ALTER TABLE ... ADD CONSTRAINT``, so cycles work), constraints that cannot be declared
inline (``NOT VALID``), functions whose signature names a table's row type, ``ALTER
SEQUENCE ... OWNED BY``, views (dependency order), indexes (after the views, so indexes
of materialized views work; a partition's attached index comes with its parent's),
row-level security, triggers, policies, rules, comments and, when the snapshot has them,
privileges. So a foreign key to columns covered by a unique index comes after that
index, a function returning a view's row type after the view, and a default or check
calling a function that reads its own table is set after that function. :data:`DROP`
says how the kinds that are not removed together with their table are dropped (the
baseline's downgrade, in reverse dependency order).

Within each section objects are sorted by name; identifiers are quoted the way PostgreSQL's
``quote_ident`` does (:mod:`abparts_ops.core.quoting`); the same snapshot always gives
byte-identical text. Expressions are the catalog's own text, rendered with
``search_path`` pinned to the schema, so the script sets the same ``search_path`` before
it creates anything.

The sections, the splits and the kind modules' helpers (sequence options, the table
steps, index statements) are shared with the baseline renderer in
:mod:`abparts_ops.core.reset.baseline_render`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from abparts_ops.core.quoting import quote_ident
from abparts_ops.core.schema.kind_order import PHASE
from abparts_ops.core.schema.kinds import BY_NAME, REGISTRY
from abparts_ops.core.schema.kinds.base import columns_of
from abparts_ops.core.schema.kinds.constraint import (
    INLINE_KINDS,
    add_constraint_step,
    foreign_keys_outside,
)
from abparts_ops.core.schema.kinds.table import (
    LATE_CONSTRAINTS,
    LATE_DEFAULTS,
    create_table_step,
    table_constraints,
)
from abparts_ops.core.schema.model import KINDS, Snapshot
from abparts_ops.core.schema.order import Splitter, dependency_graph, order_sections
from abparts_ops.core.schema.steps import ObjId, Section, Step, section
from abparts_ops.core.schema.validity import invalid_objects

#: (title, tag) of the sections of the statements a removal split adds.
CYCLE_KEYS = ("Foreign keys that close a cycle between tables", "foreign_key:drop")
EARLY_DROPS = ("Constraints and defaults dropped before the objects they use", "table:drop")

#: The canonical DDL of every kind that is not declared by another kind's renderer
#: (``Kind.rendered_with``): a function from the snapshot to its sections, as each kind
#: module registers it.
DDL: Mapping[str, Callable[[Snapshot], list[Section]]] = {
    kind.name: kind.create for kind in REGISTRY if kind.create is not None
}

#: How each kind that is not ``dropped_with`` another is removed (downgrade), as each
#: kind module registers it.
DROP: Mapping[str, Callable[[Snapshot], list[Section]]] = {
    kind.name: kind.drop for kind in REGISTRY if kind.drop is not None
}


def _header(snapshot: Snapshot) -> list[str]:
    counts = snapshot.counts()
    listed = ", ".join(f"{counts[k]} {k}" for k in KINDS if counts[k])
    lines = [
        "-- Canonical schema DDL rendered by abparts_ops from a schema snapshot.",
        f"-- schema: {snapshot.schema}",
        f"-- source fingerprint: {snapshot.fingerprint}",
        f"-- objects: {listed or 'none'}",
    ]
    if snapshot.excluded:
        lines.append("-- excluded (not rendered): " + ", ".join(sorted(snapshot.excluded)))
    for key, table, ref in foreign_keys_outside(snapshot):
        lines.append(
            f"-- WARNING: foreign key {key} of {table} references {ref}, which is "
            "not in this snapshot"
        )
    for kind, key, advice in invalid_objects(snapshot):
        lines.append(
            f"-- WARNING: {BY_NAME[kind].singular} {key} of the source: {advice}. It is "
            "rendered below as the valid index its definition describes, which the source "
            "does not have (pg_dump leaves an INVALID index out)."
        )
    return lines


def phase_sections(snapshot: Snapshot) -> list[Section]:
    """Every kind's sections in the order of their phases (registry order within one):
    the tie-breaker of :func:`ddl_sections`, not yet ordered by dependencies."""
    sections: list[Section] = []
    for kind in REGISTRY:
        if kind.rendered_with is None:
            sections.extend(DDL[kind.name](snapshot))
    return sorted(sections, key=lambda s: s.phase)  # stable: registry order kept


def ddl_sections(snapshot: Snapshot) -> list[Section]:
    """Every kind's sections in dependency order (:mod:`~abparts_ops.core.schema.order`:
    the catalog's dependencies, the phases as tie-breaker, cycles split)."""
    return order_sections(
        phase_sections(snapshot), dependency_graph(snapshot), split=split_step(snapshot)
    )


def split_step(snapshot: Snapshot) -> Splitter:
    """How a creation cycle is broken: constraints or defaults declared in a table's
    ``CREATE TABLE`` are left out of it and added by statements of their own, after it
    (``ALTER TABLE ... ADD CONSTRAINT``, ``ALTER TABLE ... ALTER COLUMN ... SET
    DEFAULT``), as pg_dump does. Other steps cannot be split."""
    splittable = {"column_default", *INLINE_KINDS}

    def split(
        sec: Section, step: Step, objects: frozenset[ObjId]
    ) -> tuple[Step, list[Section]] | None:
        if sec.tag != "table" or not step.creates or step.creates[0][0] != "table":
            return None
        if any(obj[0] not in splittable or obj not in step.creates[1:] for obj in objects):
            return None
        name = step.creates[0][1]
        replacement = create_table_step(
            snapshot, name, columns_of(snapshot, name), table_constraints(snapshot, name),
            keep=set(step.creates) - objects,
        )
        late, defaults = [], []
        for kind, key in sorted(objects):
            if kind == "column_default":
                col = snapshot.kind("column")[key]
                defaults.append(Step(
                    f"ALTER TABLE {quote_ident(col['table'])} ALTER COLUMN "
                    f"{quote_ident(col['name'])} SET DEFAULT {col['default']}",
                    ((kind, key),),
                    (("table", col["table"]),),
                ))
            else:
                late.append(add_constraint_step(snapshot.kind(kind)[key], kind))
        extra = [
            section(PHASE["late_constraint"], *LATE_CONSTRAINTS, late),
            section(PHASE["late_default"], *LATE_DEFAULTS, defaults),
        ]
        return replacement, [s for s in extra if s.steps]

    return split


def drop_statements(snapshot: Snapshot) -> list[Section]:
    """The statements that remove what the DDL created, for kinds removed by a statement
    of their own (rules, policies, views, functions, tables, sequences, types,
    extensions), each before what it depends on (the reverse dependency order; a cycle,
    e.g. two tables whose foreign keys reference each other, is broken by dropping one
    constraint first: tag ``foreign_key:drop`` or ``table:drop``). Everything with
    ``dropped_with`` goes with its owner."""
    return order_sections(
        phase_drops(snapshot), dependency_graph(snapshot), removing=True,
        split=split_drop(snapshot),
    )


def phase_drops(snapshot: Snapshot) -> list[Section]:
    """The drops in reverse phase order: the tie-breaker of :func:`drop_statements`."""
    return sorted(
        (s for kind in REGISTRY if kind.name in DROP for s in DROP[kind.name](snapshot)),
        key=lambda s: -s.phase,
    )


def split_drop(snapshot: Snapshot) -> Splitter:
    """How a removal cycle is broken: a foreign key, a constraint or a default that goes
    with its table is dropped first by a statement of its own."""
    splittable = {"column_default", "foreign_key", *INLINE_KINDS}

    def split(
        sec: Section, step: Step, objects: frozenset[ObjId]
    ) -> tuple[Step, list[Section]] | None:
        if not step.creates or step.creates[0][0] != "table":
            return None
        if any(obj[0] not in splittable or obj not in step.creates[1:] for obj in objects):
            return None
        table = step.creates[0]
        replacement = Step(
            step.statement, tuple(o for o in step.creates if o not in objects), step.after
        )
        keys, early = [], []
        for kind, key in sorted(objects):
            if kind == "column_default":
                col = snapshot.kind("column")[key]
                early.append(Step(
                    f"ALTER TABLE {quote_ident(col['table'])} ALTER COLUMN "
                    f"{quote_ident(col['name'])} DROP DEFAULT",
                    ((kind, key),), (table,),
                ))
                continue
            con = snapshot.kind(kind)[key]
            drop = Step(
                f"ALTER TABLE {quote_ident(con['table'])} DROP CONSTRAINT "
                f"{quote_ident(con['name'])}",
                ((kind, key),), (table,),
            )
            (keys if kind == "foreign_key" else early).append(drop)
        extra = [section(sec.phase, *CYCLE_KEYS, keys), section(sec.phase, *EARLY_DROPS, early)]
        return replacement, [s for s in extra if s.steps]

    return split


def render_ddl(snapshot: Snapshot) -> str:
    """Render deterministic, schema-only SQL that recreates ``snapshot`` in an empty database.

    See the module docstring for the order. The text starts with a comment header naming
    the snapshot's fingerprint and ends with a newline. Raises :class:`SchemaError` for a
    foreign table (the snapshot does not record its server). An INVALID index (see
    :mod:`~abparts_ops.core.schema.validity`) is rendered as the valid index its
    definition describes, and a ``WARNING`` line of the header names it.
    """
    schema = snapshot.schema
    qschema = quote_ident(schema)
    out: list[str] = _header(snapshot)
    out.append("")
    if schema != "public":
        out.append(f"CREATE SCHEMA IF NOT EXISTS {qschema};")
    out.append(f"SET search_path TO {qschema}, pg_catalog;")
    if snapshot.kind("function"):
        out.append("SET check_function_bodies = false;")
    last: tuple[int, str] | None = None
    for sec in ddl_sections(snapshot):
        if not sec.steps:
            continue
        if (sec.phase, sec.title) != last:
            out.extend(["", f"-- {sec.title}"])
            last = (sec.phase, sec.title)
        out.extend(step.statement + ";" for step in sec.steps)
    return "\n".join(out) + "\n"
