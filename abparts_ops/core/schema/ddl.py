"""Canonical, schema-only DDL rendered from a :class:`~abparts_ops.core.schema.model.Snapshot`.

:func:`render_ddl` turns a snapshot into executable SQL that recreates every compared
object in an empty database. Every kind of the registry
(:mod:`abparts_ops.core.schema.kinds`) has a renderer in :data:`DDL` (or is declared by
another kind's, as columns are by their table's) that returns :class:`Section` s; the
sections come in dependency order (:mod:`~abparts_ops.core.schema.order`: what the
catalog records between the objects, with the phases of
:data:`~abparts_ops.core.schema.kinds.PHASE` as the tie-breaker, cycles split as pg_dump
splits them). The phases, where no dependency says otherwise:

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
``quote_ident`` does; the same snapshot always gives byte-identical text. Expressions are
the catalog's own text, rendered with ``search_path`` pinned to the schema, so the script
sets the same ``search_path`` before it creates anything.

The helpers used for it (quoting, sequence options, view and table order) are shared with
the baseline renderer in :mod:`abparts_ops.core.reset.baseline_render`.
"""

from __future__ import annotations

import heapq
import re
from collections.abc import Callable, Collection, Iterable, Mapping
from typing import Any

from abparts_ops.core.errors import SchemaError
from abparts_ops.core.quoting import quote_collation, quote_ident
from abparts_ops.core.schema.kinds import BY_NAME, PHASE, REGISTRY
from abparts_ops.core.schema.model import KINDS, Snapshot
from abparts_ops.core.schema.order import (
    ObjId,
    Section,
    Splitter,
    Step,
    dependency_graph,
    order_sections,
    section,
)
from abparts_ops.core.schema.validity import invalid_objects

#: Constraint kinds a table declares in its ``CREATE TABLE`` (foreign keys come after).
INLINE_KINDS = ("primary_key", "unique", "check", "exclusion")


_TYPE_LIMITS = {
    "smallint": (-32768, 32767),
    "integer": (-2147483648, 2147483647),
    "bigint": (-9223372036854775808, 9223372036854775807),
}

_LITERAL = r"'(?:[^']|'')*'"
_ITEMS = (
    r"(?P<items>" + _LITERAL + r"::character varying(?:, " + _LITERAL + r"::character varying)*)"
)
_VARCHAR_IN = re.compile(
    r"\(\((?P<col>[^()]+?)\)::text = ANY \(\(ARRAY\[" + _ITEMS + r"\]\)::text\[\]\)\)"
)
_VARCHAR_IN_PRETTY = re.compile(
    r"(?P<col>[\w\"]+)::text = ANY \(ARRAY\[" + _ITEMS + r"\]::text\[\]\)"
)


def stable_expression(sql: str) -> str:
    """Rewrite catalog text that PostgreSQL would not parse back to the same tree.

    ``col IN ('a', 'b')`` on a varchar column is printed as
    ``((col)::text = ANY ((ARRAY['a'::character varying, ...])::text[]))``, and that text
    re-parses into a different expression (each element cast on its own). Giving the
    ``IN`` list back makes PostgreSQL store exactly what the source has.
    """

    def as_in_list(match: re.Match[str]) -> str:
        items = match.group("items").replace("::character varying", "")
        return f"({match.group('col')} IN ({items}))"

    return _VARCHAR_IN_PRETTY.sub(as_in_list, _VARCHAR_IN.sub(as_in_list, sql))


def quote_literal(text: str) -> str:
    """A standard SQL string literal (``'...'`` with embedded quotes doubled)."""
    return "'" + text.replace("'", "''") + "'"


def sequence_options(data_type: str, attrs: Mapping[str, Any]) -> dict[str, Any]:
    """The options of a sequence or identity that differ from PostgreSQL's defaults.

    ``attrs`` holds ``start``, ``increment``, ``min_value``, ``max_value``, ``cache`` and
    ``cycle`` as in the snapshot. Keys of the result: ``increment``, ``minvalue``,
    ``maxvalue``, ``start``, ``cache``, ``cycle`` (only those that are not the default for
    ``data_type`` and the direction of the sequence), in that order.
    """
    low, high = _TYPE_LIMITS.get(data_type, _TYPE_LIMITS["bigint"])
    increment = int(attrs.get("increment", 1))
    ascending = increment > 0
    default_min, default_max = (1, high) if ascending else (low, -1)
    minimum = int(attrs.get("min_value", default_min))
    maximum = int(attrs.get("max_value", default_max))
    default_start = minimum if ascending else maximum
    options: dict[str, Any] = {}
    if increment != 1:
        options["increment"] = increment
    if minimum != default_min:
        options["minvalue"] = minimum
    if maximum != default_max:
        options["maxvalue"] = maximum
    if int(attrs.get("start", default_start)) != default_start:
        options["start"] = int(attrs["start"])
    if int(attrs.get("cache", 1)) != 1:
        options["cache"] = int(attrs["cache"])
    if attrs.get("cycle"):
        options["cycle"] = True
    return options


def _sequence_clauses(options: Mapping[str, Any]) -> list[str]:
    words = {
        "increment": "INCREMENT BY {}",
        "minvalue": "MINVALUE {}",
        "maxvalue": "MAXVALUE {}",
        "start": "START WITH {}",
        "cache": "CACHE {}",
    }
    clauses = [words[key].format(value) for key, value in options.items() if key in words]
    if options.get("cycle"):
        clauses.append("CYCLE")
    return clauses


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


def view_order(snapshot: Snapshot) -> list[str]:
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


def table_order(snapshot: Snapshot) -> tuple[list[str], list[str]]:
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


def strip_view_definition(definition: str) -> str:
    """A view's catalog definition without its trailing semicolon and blanks."""
    return definition.rstrip().rstrip(";").rstrip()


def columns_of(snapshot: Snapshot, table: str) -> list[Mapping[str, Any]]:
    """The columns of ``table`` in the snapshot, in their position order."""
    cols = [c for c in snapshot.kind("column").values() if c["table"] == table]
    return sorted(cols, key=lambda c: c["position"])


def columns_by_table(snapshot: Snapshot) -> dict[str, list[Mapping[str, Any]]]:
    """Every table's columns in position order, in one pass (for renderers of all tables)."""
    grouped: dict[str, list[Mapping[str, Any]]] = {}
    for col in snapshot.kind("column").values():
        grouped.setdefault(col["table"], []).append(col)
    for cols in grouped.values():
        cols.sort(key=lambda c: c["position"])
    return grouped


def by_table(snapshot: Snapshot, kind: str) -> dict[str, list[Mapping[str, Any]]]:
    """Objects of ``kind`` (constraints, indexes) grouped by table, sorted by name."""
    grouped: dict[str, list[Mapping[str, Any]]] = {}
    for key in sorted(snapshot.kind(kind)):
        attrs = snapshot.kind(kind)[key]
        grouped.setdefault(attrs["table"], []).append(attrs)
    for items in grouped.values():
        items.sort(key=lambda a: a.get("name") or "")
    return grouped


def _column_sql(col: Mapping[str, Any]) -> str:
    parts = [quote_ident(col["name"]), col["type"]]
    if col.get("collation"):
        parts.append("COLLATE " + quote_collation(col["collation"]))
    if col.get("generated") is not None:
        parts.append(f"GENERATED ALWAYS AS ({col['generated']}) STORED")
    elif col.get("default") is not None:
        parts.append(f"DEFAULT {col['default']}")
    identity = col.get("identity")
    if identity:
        kind = "ALWAYS" if identity.get("always") else "BY DEFAULT"
        clauses = _sequence_clauses(sequence_options(_identity_type(col["type"]), identity))
        parts.append(
            f"GENERATED {kind} AS IDENTITY" + (f" ({' '.join(clauses)})" if clauses else "")
        )
    if not col.get("nullable", True):
        parts.append("NOT NULL")
    return " ".join(parts)


def _identity_type(type_text: str) -> str:
    return type_text if type_text in _TYPE_LIMITS else "bigint"


def _inline_constraint(attrs: Mapping[str, Any]) -> bool:
    """Whether a table constraint can be declared inside CREATE TABLE."""
    return bool(attrs.get("validated", True))


def foreign_keys_outside(snapshot: Snapshot) -> list[tuple[str, str, str]]:
    """Foreign keys of compared tables that reference a table the snapshot does not hold.

    Returns ``(constraint key, table, referenced table)`` triples, sorted; a referenced
    table in another schema (``schema.table``) is not listed.
    """
    tables = set(snapshot.kind("table"))
    found = []
    for key in sorted(snapshot.kind("foreign_key")):
        fk = snapshot.kind("foreign_key")[key]
        ref = fk.get("ref_table") or ""
        if ref not in tables and (ref in snapshot.excluded or "." not in ref):
            found.append((key, fk["table"], ref))
    return found


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


def _relation(snapshot: Snapshot, name: str) -> ObjId:
    """The object a trigger, rule or index is on: a table, or else a view."""
    return ("table", name) if name in snapshot.kind("table") else ("view", name)


def _extension_ddl(snapshot: Snapshot) -> list[Section]:
    steps = []
    for name in sorted(snapshot.kind("extension")):
        ext = snapshot.kind("extension")[name]
        statement = (
            f"CREATE EXTENSION IF NOT EXISTS {quote_ident(name)} "
            f"WITH SCHEMA {quote_ident(ext.get('schema') or snapshot.schema)}"
        )
        if ext.get("version"):
            statement += f" VERSION {quote_literal(ext['version'])}"
        steps.append(Step(statement, (("extension", name),)))
    return [section(PHASE["extension"], "Extensions", "extension", steps)]


def _enum_ddl(snapshot: Snapshot) -> list[Section]:
    steps = [
        Step(
            f"CREATE TYPE {quote_ident(name)} AS ENUM ("
            + ", ".join(quote_literal(v) for v in snapshot.kind("enum")[name]["labels"] or [])
            + ")",
            (("enum", name),),
        )
        for name in sorted(snapshot.kind("enum"))
    ]
    return [
        section(PHASE["enum"], "Enum types", "enum", steps),
        _comments(snapshot, "enum", lambda name, _a: f"TYPE {quote_ident(name)}"),
    ]


def _domain_ddl(snapshot: Snapshot) -> list[Section]:
    steps = [
        Step(render_domain(snapshot, name), (("domain", name),))
        for name in domain_order(snapshot)
    ]
    return [section(PHASE["domain"], "Domains", "domain", steps)]


def _range_ddl(snapshot: Snapshot) -> list[Section]:
    steps = []
    for name in sorted(snapshot.kind("range")):
        rng = snapshot.kind("range")[name]
        options = [f"SUBTYPE = {rng['subtype']}"]
        if rng.get("subtype_opclass"):
            options.append(f"SUBTYPE_OPCLASS = {quote_ident(rng['subtype_opclass'])}")
        if rng.get("collation"):
            options.append(f"COLLATION = {quote_collation(rng['collation'])}")
        if rng.get("canonical"):
            options.append(f"CANONICAL = {rng['canonical']}")
        if rng.get("subtype_diff"):
            options.append(f"SUBTYPE_DIFF = {rng['subtype_diff']}")
        if rng.get("multirange"):
            options.append(f"MULTIRANGE_TYPE_NAME = {quote_ident(rng['multirange'])}")
        steps.append(Step(
            f"CREATE TYPE {quote_ident(name)} AS RANGE ({', '.join(options)})",
            (("range", name),),
        ))
    return [
        section(PHASE["range"], "Range types", "range", steps),
        _comments(snapshot, "range", lambda name, _a: f"TYPE {quote_ident(name)}"),
    ]


def _composite_ddl(snapshot: Snapshot) -> list[Section]:
    steps = []
    for name in sorted(snapshot.kind("composite")):
        attributes = []
        for attr in snapshot.kind("composite")[name].get("attributes") or []:
            text = f"{quote_ident(attr['name'])} {attr['type']}"
            if attr.get("collation"):
                text += f" COLLATE {quote_collation(attr['collation'])}"
            attributes.append(text)
        steps.append(Step(
            f"CREATE TYPE {quote_ident(name)} AS ({', '.join(attributes)})",
            (("composite", name),),
        ))
    return [
        section(PHASE["composite"], "Composite types", "composite", steps),
        _comments(snapshot, "composite", lambda name, _a: f"TYPE {quote_ident(name)}"),
    ]


def function_signature(attrs: Mapping[str, Any]) -> str:
    """``[PROCEDURE|FUNCTION] name(arguments)`` of a function row, for DROP/COMMENT/GRANT."""
    what = "PROCEDURE" if attrs.get("procedure") else "FUNCTION"
    return f"{what} {quote_ident(attrs['name'])}({attrs.get('arguments') or ''})"


_WORD = re.compile(r'"(?:[^"]|"")*"|[A-Za-z_][\w$]*')


def _names_a_table(snapshot: Snapshot, definition: str) -> bool:
    """Whether a function's signature (the lines before its body) names a table's type."""
    head = definition.split("\nAS ", 1)[0].split("\n BEGIN ATOMIC", 1)[0]
    head = "\n".join(line for line in head.split("\n") if not line.startswith(" SET "))
    words = set(_WORD.findall(head))  # one pass: a regex per table is quadratic
    return any(quote_ident(table) in words for table in snapshot.kind("table"))


def function_phases(snapshot: Snapshot) -> dict[str, int]:
    """The phase of every function: before the tables, or after them when its signature
    uses a table's row type (``RETURNS SETOF parts``)."""
    return {
        key: PHASE["table_function"]
        if _names_a_table(snapshot, attrs.get("definition") or "")
        else PHASE["function"]
        for key, attrs in snapshot.kind("function").items()
    }




def _function_ddl(snapshot: Snapshot) -> list[Section]:
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
        _comments(snapshot, "function", lambda _k, attrs: function_signature(attrs)),
    ]


def _sequence_ddl(snapshot: Snapshot) -> list[Section]:
    steps = []
    owned = []
    columns = snapshot.kind("column")
    for name in sorted(snapshot.kind("sequence")):
        seq = snapshot.kind("sequence")[name]
        clauses = [f"AS {seq['data_type']}"] + _sequence_clauses(
            sequence_options(seq["data_type"], seq)
        )
        steps.append(Step(
            f"CREATE SEQUENCE {quote_ident(name)} " + " ".join(clauses), (("sequence", name),)
        ))
        owner = seq.get("owned_by")
        if owner and owner in columns:
            col = columns[owner]
            owned.append(Step(
                f"ALTER SEQUENCE {quote_ident(name)} OWNED BY "
                f"{quote_ident(col['table'])}.{quote_ident(col['name'])}",
                after=(("sequence", name), ("table", col["table"])),
            ))
    return [
        section(PHASE["sequence"], "Sequences", "sequence", steps),
        section(PHASE["sequence_owner"], "Sequence ownership", "sequence:owner", owned),
        _comments(snapshot, "sequence", lambda name, _a: f"SEQUENCE {quote_ident(name)}"),
    ]


def partition_order(snapshot: Snapshot) -> list[str]:
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


def is_partition(snapshot: Snapshot, name: str) -> bool:
    """Whether table ``name`` is a partition of a table of the snapshot."""
    return snapshot.kind("table")[name].get("partition_of") in snapshot.kind("table")


def partition_statements(snapshot: Snapshot, name: str) -> list[str]:
    """``CREATE TABLE ... PARTITION OF`` for one partition, and the column settings where
    it differs from its parent (NOT NULL, defaults)."""
    return [step.statement for step in partition_steps(snapshot, name)]


def partition_steps(snapshot: Snapshot, name: str) -> list[Step]:
    """The steps of :func:`partition_statements`, with what each creates."""
    attrs = snapshot.kind("table")[name]
    parent = attrs["partition_of"]
    head = "CREATE UNLOGGED TABLE" if attrs.get("unlogged") else "CREATE TABLE"
    statement = (
        f"{head} {quote_ident(name)} PARTITION OF {quote_ident(parent)} "
        f"{attrs.get('partition_bound') or 'DEFAULT'}"
    )
    if attrs.get("partitioned"):
        statement += f" PARTITION BY {attrs['partition_key']}"
    table = ("table", name)
    out = [Step(statement, (table,), (("table", parent),))]
    columns = snapshot.kind("column")
    for col in columns_of(snapshot, name):
        inherited = columns.get(f"{parent}.{col['name']}")
        if inherited is None:
            continue
        where = f"ALTER TABLE {quote_ident(name)} ALTER COLUMN {quote_ident(col['name'])}"
        if not col.get("nullable", True) and inherited.get("nullable", True):
            out.append(Step(f"{where} SET NOT NULL", after=(table,)))
        if col.get("default") != inherited.get("default") and col.get("generated") is None:
            if col.get("default") is None:
                out.append(Step(f"{where} DROP DEFAULT", after=(table,)))
            else:
                out.append(Step(
                    f"{where} SET DEFAULT {col['default']}",
                    (("column_default", f"{name}.{col['name']}"),),
                    (table,),
                ))
    return out


_INLINE_KINDS = ("primary_key", "unique", "check", "exclusion")


def create_table_step(
    snapshot: Snapshot,
    name: str,
    columns: list[Mapping[str, Any]],
    constraints: Mapping[str, list[Mapping[str, Any]]],
    keep: Collection[ObjId] | None = None,
) -> Step:
    """``CREATE TABLE`` of a table that is not a partition: its columns and the valid
    constraints it declares itself (``constraints`` by kind). With ``keep``, only the
    constraints and column defaults in it are declared (the others are added after it,
    see :func:`split_step`)."""
    attrs = snapshot.kind("table")[name]
    creates: list[ObjId] = [("table", name)]
    lines = []
    for col in columns:
        if col.get("default") is not None and col.get("generated") is None:
            default = ("column_default", f"{name}.{col['name']}")
            if keep is None or default in keep:
                creates.append(default)
            else:
                col = {**col, "default": None}
        lines.append(f"    {_column_sql(col)}")
    for kind in INLINE_KINDS:
        for con in constraints.get(kind, []):
            obj = (kind, f"{name}.{con['name']}")
            if con.get("inherited") or not _inline_constraint(con):
                continue
            if keep is not None and obj not in keep:
                continue
            creates.append(obj)
            lines.append(
                f"    CONSTRAINT {quote_ident(con['name'])} {stable_expression(con['definition'])}"
            )
    prefix = "CREATE UNLOGGED TABLE" if attrs.get("unlogged") else "CREATE TABLE"
    suffix = f" PARTITION BY {attrs['partition_key']}" if attrs.get("partitioned") else ""
    body = ",\n".join(lines)
    return Step(f"{prefix} {quote_ident(name)} (\n{body}\n){suffix}", tuple(creates))


def add_constraint_step(con: Mapping[str, Any], kind: str) -> Step:
    """``ALTER TABLE ... ADD CONSTRAINT`` of a table constraint (after its table)."""
    return Step(
        f"ALTER TABLE {quote_ident(con['table'])} ADD CONSTRAINT {quote_ident(con['name'])} "
        f"{stable_expression(con['definition'])}",
        ((kind, f"{con['table']}.{con['name']}"),),
        (("table", con["table"]),),
    )


#: (title, tag) of the sections of the statements a split adds.
LATE_CONSTRAINTS = ("Constraints added after the tables", "table:late")
LATE_DEFAULTS = ("Column defaults set after the objects they use", "column_default")
CYCLE_KEYS = ("Foreign keys that close a cycle between tables", "foreign_key:drop")
EARLY_DROPS = ("Constraints and defaults dropped before the objects they use", "table:drop")


def _table_constraints(snapshot: Snapshot, name: str) -> dict[str, list[Mapping[str, Any]]]:
    return {
        kind: sorted(
            (c for c in snapshot.kind(kind).values() if c["table"] == name),
            key=lambda c: c.get("name") or "",
        )
        for kind in INLINE_KINDS
    }


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
            snapshot, name, columns_of(snapshot, name), _table_constraints(snapshot, name),
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


def _table_ddl(snapshot: Snapshot) -> list[Section]:
    grouped = {kind: by_table(snapshot, kind) for kind in INLINE_KINDS}
    table_columns = columns_by_table(snapshot)
    tables = []
    later = []
    partition_constraints = []
    partitions = []
    for name in sorted(snapshot.kind("table")):
        attrs = snapshot.kind("table")[name]
        if attrs.get("foreign"):
            raise SchemaError(
                f"table {name!r} is a foreign table; its server and options are not in the "
                "snapshot, so it cannot be rendered (exclude it)."
            )
        partition = is_partition(snapshot, name)
        for kind in INLINE_KINDS:
            for con in grouped[kind].get(name, []):
                if con.get("inherited"):
                    continue
                if partition:
                    partition_constraints.append(add_constraint_step(con, kind))
                elif not _inline_constraint(con):
                    later.append(add_constraint_step(con, kind))
        if not partition:
            tables.append(create_table_step(
                snapshot, name, table_columns.get(name, []),
                {kind: grouped[kind].get(name, []) for kind in INLINE_KINDS},
            ))
    for name in partition_order(snapshot):
        partitions.extend(partition_steps(snapshot, name))
    security = []
    for name in sorted(snapshot.kind("table")):
        attrs = snapshot.kind("table")[name]
        table = (("table", name),)
        if attrs.get("row_security"):
            security.append(Step(
                f"ALTER TABLE {quote_ident(name)} ENABLE ROW LEVEL SECURITY", after=table
            ))
        if attrs.get("force_row_security"):
            security.append(Step(
                f"ALTER TABLE {quote_ident(name)} FORCE ROW LEVEL SECURITY", after=table
            ))
    return [
        section(PHASE["table"], "Tables", "table", tables),
        section(PHASE["partition"], "Partitions (after their partitioned tables)",
                "table:partition", partitions),
        section(PHASE["late_constraint"], *LATE_CONSTRAINTS, later),
        section(PHASE["late_constraint"], "Constraints of partitions",
                "table:partition_constraint", partition_constraints),
        section(PHASE["row_security"], "Row-level security", "table:row_security", security),
        *_table_comments(snapshot),
        *[
            _comments(snapshot, kind, lambda _k, con: (
                f"CONSTRAINT {quote_ident(con['name'])} ON {quote_ident(con['table'])}"
            ))
            for kind in INLINE_KINDS
        ],
    ]


def _table_comments(snapshot: Snapshot) -> list[Section]:
    """Comments on tables and columns; those of partitions in a section of their own
    (the baseline sets the others in ``op.create_table``)."""
    tables = snapshot.kind("table")
    partitions = set(partition_order(snapshot))
    own: dict[str, list[Step]] = {"table": [], "column": [], "partition": []}
    for name in sorted(tables):
        if tables[name].get("comment") is not None:
            own["partition" if name in partitions else "table"].append(Step(
                f"COMMENT ON TABLE {quote_ident(name)} IS {quote_literal(tables[name]['comment'])}",
                after=(("table", name),),
            ))
    for key in sorted(snapshot.kind("column"), key=lambda k: _column_sort(snapshot, k)):
        col = snapshot.kind("column")[key]
        if col.get("comment") is not None:
            own["partition" if col["table"] in partitions else "column"].append(Step(
                f"COMMENT ON COLUMN {quote_ident(col['table'])}.{quote_ident(col['name'])} "
                f"IS {quote_literal(col['comment'])}",
                after=(("table", col["table"]),),
            ))
    return [
        section(PHASE["comment"], "Comments", "table:comment", own["table"]),
        section(PHASE["comment"], "Comments", "column:comment", own["column"]),
        section(PHASE["comment"], "Comments", "table:partition_comment", own["partition"]),
    ]


def _foreign_key_ddl(snapshot: Snapshot) -> list[Section]:
    fks = snapshot.kind("foreign_key")
    steps = [
        Step(
            f"ALTER TABLE {quote_ident(fk['table'])} ADD CONSTRAINT {quote_ident(fk['name'])} "
            f"{fk['definition']}",
            (("foreign_key", key),),
            (("table", fk["table"]),),
        )
        for key in sorted(fks)
        if not (fk := fks[key]).get("inherited")
    ]
    return [
        section(PHASE["foreign_key"], "Foreign keys", "foreign_key", steps),
        _comments(snapshot, "foreign_key", lambda _k, con: (
            f"CONSTRAINT {quote_ident(con['name'])} ON {quote_ident(con['table'])}"
        )),
    ]


def _view_ddl(snapshot: Snapshot) -> list[Section]:
    steps = []
    for name in view_order(snapshot):
        view = snapshot.kind("view")[name]
        what = "MATERIALIZED VIEW" if view.get("materialized") else "VIEW"
        steps.append(Step(
            f"CREATE {what} {quote_ident(name)} AS\n{strip_view_definition(view['definition'])}",
            (("view", name),),
        ))

    def target(name: str, view: Mapping[str, Any]) -> str:
        what = "MATERIALIZED VIEW" if view.get("materialized") else "VIEW"
        return f"{what} {quote_ident(name)}"

    return [
        section(PHASE["view"], "Views (dependency order)", "view", steps),
        _comments(snapshot, "view", target),
    ]


def index_statement(idx: Mapping[str, Any]) -> str:
    """The ``CREATE INDEX`` that recreates an index (a partitioned table's index without
    ``ONLY``, so that it is created on every partition too, as the source has it)."""
    return stable_expression(idx["definition"].replace(" ON ONLY ", " ON ", 1))


def rendered_indexes(snapshot: Snapshot) -> list[str]:
    """Names of the indexes created of their own (not a partition's attached index)."""
    indexes = snapshot.kind("index")
    return [name for name in sorted(indexes) if not indexes[name].get("parent_index")]


def attached_indexes(snapshot: Snapshot) -> dict[str, list[str]]:
    """Per partitioned index, the partitions' indexes attached to it, at every depth
    (created by its ``CREATE INDEX``), sorted."""
    indexes = snapshot.kind("index")
    children: dict[str, list[str]] = {}
    for name in sorted(indexes):
        parent = indexes[name].get("parent_index")
        if parent:
            children.setdefault(parent, []).append(name)
    out: dict[str, list[str]] = {}
    for name in children:
        if indexes.get(name, {}).get("parent_index"):
            continue
        found, todo = [], list(children[name])
        while todo:
            child = todo.pop(0)
            found.append(child)
            todo.extend(children.get(child, []))
        out[name] = sorted(found)
    return out


def _index_ddl(snapshot: Snapshot) -> list[Section]:
    indexes = snapshot.kind("index")
    attached = attached_indexes(snapshot)
    steps = [
        Step(
            index_statement(indexes[name]),
            (("index", name), *(("index", child) for child in attached.get(name, []))),
            (_relation(snapshot, indexes[name]["table"]),),
        )
        for name in rendered_indexes(snapshot)
    ]
    return [
        section(PHASE["index"], "Indexes", "index", steps),
        _comments(snapshot, "index", lambda name, _a: f"INDEX {quote_ident(name)}"),
    ]


_TRIGGER_ENABLED = {"D": "DISABLE", "R": "ENABLE REPLICA", "A": "ENABLE ALWAYS"}


def _trigger_ddl(snapshot: Snapshot) -> list[Section]:
    steps = []
    for key in sorted(snapshot.kind("trigger")):
        trigger = snapshot.kind("trigger")[key]
        obj = ("trigger", key)
        steps.append(Step(
            trigger["definition"], (obj,), (_relation(snapshot, trigger["table"]),)
        ))
        state = _TRIGGER_ENABLED.get(trigger.get("enabled") or "O")
        if state:
            steps.append(Step(
                f"ALTER TABLE {quote_ident(trigger['table'])} {state} TRIGGER "
                f"{quote_ident(trigger['name'])}",
                after=(obj,),
            ))
    return [
        section(PHASE["trigger"], "Triggers", "trigger", steps),
        _comments(snapshot, "trigger", lambda _k, t: (
            f"TRIGGER {quote_ident(t['name'])} ON {quote_ident(t['table'])}"
        )),
    ]


def _role(name: str) -> str:
    return "PUBLIC" if name == "PUBLIC" else quote_ident(name)


def policy_statement(policy: Mapping[str, Any]) -> str:
    """``CREATE POLICY`` for one policy of the snapshot."""
    text = f"CREATE POLICY {quote_ident(policy['name'])} ON {quote_ident(policy['table'])}"
    if not policy.get("permissive", True):
        text += " AS RESTRICTIVE"
    text += f" FOR {policy.get('command') or 'ALL'}"
    text += " TO " + ", ".join(_role(r) for r in policy.get("roles") or ["PUBLIC"])
    if policy.get("using") is not None:
        text += f" USING ({policy['using']})"
    if policy.get("with_check") is not None:
        text += f" WITH CHECK ({policy['with_check']})"
    return text


def _policy_ddl(snapshot: Snapshot) -> list[Section]:
    policies = snapshot.kind("policy")
    steps = [
        Step(policy_statement(policies[key]), (("policy", key),),
             (("table", policies[key]["table"]),))
        for key in sorted(policies)
    ]
    return [
        section(PHASE["policy"], "Row-level security policies", "policy", steps),
        _comments(snapshot, "policy", lambda _k, p: (
            f"POLICY {quote_ident(p['name'])} ON {quote_ident(p['table'])}"
        )),
    ]


def _rule_ddl(snapshot: Snapshot) -> list[Section]:
    steps = []
    for key in sorted(snapshot.kind("rule")):
        rule = snapshot.kind("rule")[key]
        obj = ("rule", key)
        steps.append(Step(
            rule["definition"].rstrip().rstrip(";"), (obj,),
            (_relation(snapshot, rule["table"]),),
        ))
        state = _TRIGGER_ENABLED.get(rule.get("enabled") or "O")
        if state:
            steps.append(Step(
                f"ALTER TABLE {quote_ident(rule['table'])} {state} RULE "
                f"{quote_ident(rule['name'])}",
                after=(obj,),
            ))
    return [
        section(PHASE["rule"], "Rules", "rule", steps),
        _comments(snapshot, "rule", lambda _k, r: (
            f"RULE {quote_ident(r['name'])} ON {quote_ident(r['table'])}"
        )),
    ]


def privilege_target(snapshot: Snapshot, attrs: Mapping[str, Any]) -> str:
    """``TABLE t`` / ``SEQUENCE s`` / ``FUNCTION f(args)`` of a privilege row."""
    what, obj = attrs["object_type"], attrs["object"]
    if what in ("FUNCTION", "PROCEDURE"):
        function = snapshot.kind("function").get(obj)
        if function is not None:
            return function_signature(function)
        name, _, args = obj.partition("(")
        return f"{what} {quote_ident(name)}({args}"
    return f"{what} {quote_ident(obj)}"


def _privilege_object(snapshot: Snapshot, attrs: Mapping[str, Any]) -> ObjId:
    what, obj = attrs["object_type"], attrs["object"]
    if what in ("FUNCTION", "PROCEDURE"):
        return ("function", obj)
    if what == "SEQUENCE":
        return ("sequence", obj)
    return _relation(snapshot, obj)


def _privilege_ddl(snapshot: Snapshot) -> list[Section]:
    steps = []
    for key in sorted(snapshot.kind("privilege")):
        grant = snapshot.kind("privilege")[key]
        target = privilege_target(snapshot, grant)
        on = (_privilege_object(snapshot, grant),)
        grantee = _role(grant["grantee"])
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


def _comments(snapshot: Snapshot, kind: str, target: Any) -> Section:
    """The ``COMMENT ON`` statements of one kind (``target(key, attrs)`` names the object)."""
    objects = snapshot.kind(kind)
    return section(
        PHASE["comment"],
        "Comments",
        f"{kind}:comment",
        [
            Step(
                f"COMMENT ON {target(key, objects[key])} IS "
                f"{quote_literal(objects[key]['comment'])}",
                after=((kind, key),),
            )
            for key in sorted(objects)
            if objects[key].get("comment") is not None
        ],
    )


#: The canonical DDL of every kind that is not declared by another kind's renderer
#: (``Kind.rendered_with``): a function from the snapshot to its sections.
DDL: Mapping[str, Callable[[Snapshot], list[Section]]] = {
    "extension": _extension_ddl,
    "enum": _enum_ddl,
    "domain": _domain_ddl,
    "range": _range_ddl,
    "composite": _composite_ddl,
    "function": _function_ddl,
    "sequence": _sequence_ddl,
    "table": _table_ddl,
    "foreign_key": _foreign_key_ddl,
    "index": _index_ddl,
    "view": _view_ddl,
    "trigger": _trigger_ddl,
    "policy": _policy_ddl,
    "rule": _rule_ddl,
    "privilege": _privilege_ddl,
}


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


def _dropped_with_tables(snapshot: Snapshot) -> dict[str, list[ObjId]]:
    """Per table, the objects its ``DROP TABLE`` removes too: constraints, indexes,
    triggers, column defaults and the sequences owned by its columns."""
    out: dict[str, list[ObjId]] = {name: [] for name in snapshot.kind("table")}
    for kind in (*INLINE_KINDS, "foreign_key", "index", "trigger"):
        for key, attrs in snapshot.kind(kind).items():
            if attrs.get("table") in out:
                out[attrs["table"]].append((kind, key))
    for key, col in snapshot.kind("column").items():
        if col.get("default") is not None and col.get("generated") is None:
            out[col["table"]].append(("column_default", key))
    columns = snapshot.kind("column")
    for name, seq in snapshot.kind("sequence").items():
        owner = columns.get(seq.get("owned_by") or "")
        if owner is not None and owner["table"] in out:
            out[owner["table"]].append(("sequence", name))
    for items in out.values():
        items.sort()
    return out


def _drop_views(snapshot: Snapshot) -> list[Section]:
    triggers: dict[str, list[ObjId]] = {}
    for key, trigger in snapshot.kind("trigger").items():
        triggers.setdefault(trigger["table"], []).append(("trigger", key))
    steps = []
    for name in reversed(view_order(snapshot)):
        what = "MATERIALIZED VIEW" if snapshot.kind("view")[name].get("materialized") else "VIEW"
        steps.append(Step(
            f"DROP {what} {quote_ident(name)}",
            (("view", name), *sorted(triggers.get(name, []))),
        ))
    return [section(PHASE["view"], "Views", "view", steps)]


def _drop_functions(snapshot: Snapshot) -> list[Section]:
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


def _drop_on_table(kind: str, what: str, title: str) -> Callable[[Snapshot], list[Section]]:
    def drop(snapshot: Snapshot) -> list[Section]:
        objects = snapshot.kind(kind)
        return [section(PHASE[kind], title, kind, [
            Step(
                f"DROP {what} {quote_ident(objects[key]['name'])} "
                f"ON {quote_ident(objects[key]['table'])}",
                ((kind, key),),
            )
            for key in sorted(objects, reverse=True)
        ])]

    return drop


def _drop_named(kind: str, what: str, title: str) -> Callable[[Snapshot], list[Section]]:
    def drop(snapshot: Snapshot) -> list[Section]:
        return [section(PHASE[kind], title, kind, [
            Step(f"{what} {quote_ident(name)}", ((kind, name),))
            for name in sorted(snapshot.kind(kind), reverse=True)
        ])]

    return drop


def _drop_sequences(snapshot: Snapshot) -> list[Section]:
    sequences = snapshot.kind("sequence")
    columns = snapshot.kind("column")
    return [section(PHASE["sequence"], "Sequences", "sequence", [
        Step(f"DROP SEQUENCE {quote_ident(name)}", (("sequence", name),))
        for name in sorted(sequences, reverse=True)
        if (sequences[name].get("owned_by") or "") not in columns
    ])]


def _drop_domains(snapshot: Snapshot) -> list[Section]:
    return [section(PHASE["domain"], "Domains", "domain", [
        Step(f"DROP DOMAIN {quote_ident(name)}", (("domain", name),))
        for name in reversed(domain_order(snapshot))
    ])]


def _drop_tables(snapshot: Snapshot) -> list[Section]:
    order, _cycles = table_order(snapshot)
    partitions = partition_order(snapshot)
    parts = set(partitions)
    tables = [t for t in order if t not in parts]
    owned = _dropped_with_tables(snapshot)

    def step(name: str) -> Step:
        return Step(f"DROP TABLE {quote_ident(name)}", (("table", name), *owned[name]))

    return [
        section(PHASE["partition"], "Partitions", "table:partition",
                [step(t) for t in reversed(partitions)]),
        section(PHASE["table"], "Tables", "table", [step(t) for t in reversed(tables)]),
    ]


#: How each kind that is not ``dropped_with`` another is removed (downgrade).
DROP: Mapping[str, Callable[[Snapshot], list[Section]]] = {
    "extension": _drop_named("extension", "DROP EXTENSION IF EXISTS", "Extensions"),
    "enum": _drop_named("enum", "DROP TYPE", "Enum types"),
    "domain": _drop_domains,
    "range": _drop_named("range", "DROP TYPE", "Range types"),
    "composite": _drop_named("composite", "DROP TYPE", "Composite types"),
    "function": _drop_functions,
    "sequence": _drop_sequences,
    "table": _drop_tables,
    "view": _drop_views,
    "policy": _drop_on_table("policy", "POLICY", "Row-level security policies"),
    "rule": _drop_on_table("rule", "RULE", "Rules"),
}


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


def domain_order(snapshot: Snapshot) -> list[str]:
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


def render_domain(snapshot: Snapshot, name: str) -> str:
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


def _column_sort(snapshot: Snapshot, key: str) -> tuple[str, int]:
    col = snapshot.kind("column")[key]
    return (col["table"], int(col["position"]))
