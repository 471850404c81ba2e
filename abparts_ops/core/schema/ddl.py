"""Canonical, schema-only DDL rendered from a :class:`~abparts_ops.core.schema.model.Snapshot`.

:func:`render_ddl` turns a snapshot into executable SQL that recreates every compared
object in an empty database, in a fixed order:

extensions, enum types, domains, sequences, tables (columns, primary key, unique, check and
exclusion constraints inline), foreign keys (``ALTER TABLE ... ADD CONSTRAINT``, so cycles
work), constraints that cannot be declared inline (``NOT VALID``), ``ALTER SEQUENCE ...
OWNED BY``, views (dependency order), indexes (after the views, so indexes of materialized
views work) and comments.

Within each section objects are sorted by name; identifiers are quoted the way PostgreSQL's
``quote_ident`` does; the same snapshot always gives byte-identical text. Expressions are
the catalog's own text, rendered with ``search_path`` pinned to the schema, so the script
sets the same ``search_path`` before it creates anything.

The helpers used for it (quoting, sequence options, view and table order) are shared with
the baseline renderer in :mod:`abparts_ops.core.migrations.baseline_render`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from abparts_ops.core.errors import SchemaError
from abparts_ops.core.schema.model import KINDS, Snapshot

#: Keywords that PostgreSQL's ``quote_ident`` quotes (every category but unreserved;
#: ``pg_get_keywords()`` of PostgreSQL 15).
QUOTED_KEYWORDS = frozenset(
    """
    all analyse analyze and any array as asc asymmetric authorization between bigint binary
    bit boolean both case cast char character check coalesce collate collation column
    concurrently constraint create cross current_catalog current_date current_role
    current_schema current_time current_timestamp current_user dec decimal default deferrable
    desc distinct do else end except exists extract false fetch float for foreign freeze from
    full grant greatest group grouping having ilike in initially inner inout int integer
    intersect interval into is isnull join lateral leading least left like limit localtime
    localtimestamp national natural nchar none normalize not notnull null nullif numeric offset
    on only or order out outer overlaps overlay placing position precision primary real
    references returning right row select session_user setof similar smallint some substring
    symmetric table tablesample then time timestamp to trailing treat trim true union unique
    user using values varchar variadic verbose when where window with xmlattributes xmlconcat
    xmlelement xmlexists xmlforest xmlnamespaces xmlparse xmlpi xmlroot xmlserialize xmltable
    """.split()
)

_SAFE_IDENT = re.compile(r"^[a-z_][a-z0-9_]*$")

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


def quote_ident(name: str) -> str:
    """Quote an identifier exactly when PostgreSQL's ``quote_ident`` would."""
    if _SAFE_IDENT.match(name) and name not in QUOTED_KEYWORDS:
        return name
    return '"' + name.replace('"', '""') + '"'


def quote_collation(name: str) -> str:
    """A collation name, always double-quoted (``"C"``, ``"en_US"``, ``"und-x-icu"``)."""
    return '"' + name.replace('"', '""') + '"'


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
    for key, fk in snapshot.kind("foreign_key").items():
        src, ref = fk["table"], fk.get("ref_table")
        if src in tables and ref in tables and ref != src:
            edges[src].setdefault(ref, []).append(key)
    remaining = set(tables)
    order: list[str] = []
    cycle_keys: list[str] = []
    while remaining:
        ready = sorted(t for t in remaining if not set(edges[t]) & remaining)
        if ready:
            chosen = ready[0]
        else:
            chosen = sorted(remaining)[0]
            for ref, keys in edges[chosen].items():
                if ref in remaining:
                    cycle_keys.extend(keys)
        order.append(chosen)
        remaining.discard(chosen)
    return order, sorted(cycle_keys)


def strip_view_definition(definition: str) -> str:
    """A view's catalog definition without its trailing semicolon and blanks."""
    return definition.rstrip().rstrip(";").rstrip()


def columns_of(snapshot: Snapshot, table: str) -> list[Mapping[str, Any]]:
    """The columns of ``table`` in the snapshot, in their position order."""
    cols = [c for c in snapshot.kind("column").values() if c["table"] == table]
    return sorted(cols, key=lambda c: c["position"])


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
    return lines


def render_ddl(snapshot: Snapshot) -> str:
    """Render deterministic, schema-only SQL that recreates ``snapshot`` in an empty database.

    See the module docstring for the order. The text starts with a comment header naming
    the snapshot's fingerprint and ends with a newline. Raises :class:`SchemaError` for a
    foreign table (the snapshot does not record its server).
    """
    schema = snapshot.schema
    qschema = quote_ident(schema)
    out: list[str] = _header(snapshot)
    out.append("")
    if schema != "public":
        out.append(f"CREATE SCHEMA IF NOT EXISTS {qschema};")
    out.append(f"SET search_path TO {qschema}, pg_catalog;")

    def section(title: str, statements: list[str]) -> None:
        if statements:
            out.extend(["", f"-- {title}"])
            out.extend(statements)

    extensions = []
    for name in sorted(snapshot.kind("extension")):
        ext_schema = snapshot.kind("extension")[name].get("schema") or schema
        extensions.append(
            f"CREATE EXTENSION IF NOT EXISTS {quote_ident(name)} "
            f"WITH SCHEMA {quote_ident(ext_schema)};"
        )
    section("Extensions", extensions)

    enums = []
    for name in sorted(snapshot.kind("enum")):
        labels = ", ".join(quote_literal(v) for v in snapshot.kind("enum")[name]["labels"] or [])
        enums.append(f"CREATE TYPE {quote_ident(name)} AS ENUM ({labels});")
    section("Enum types", enums)

    section("Domains", [render_domain(snapshot, name) + ";" for name in domain_order(snapshot)])

    sequences = []
    for name in sorted(snapshot.kind("sequence")):
        seq = snapshot.kind("sequence")[name]
        clauses = [f"AS {seq['data_type']}"] + _sequence_clauses(
            sequence_options(seq["data_type"], seq)
        )
        sequences.append(f"CREATE SEQUENCE {quote_ident(name)} " + " ".join(clauses) + ";")
    section("Sequences", sequences)

    inline_kinds = ("primary_key", "unique", "check", "exclusion")
    grouped = {kind: by_table(snapshot, kind) for kind in inline_kinds}
    tables = []
    later = []
    for name in sorted(snapshot.kind("table")):
        attrs = snapshot.kind("table")[name]
        if attrs.get("foreign"):
            raise SchemaError(
                f"table {name!r} is a foreign table; its server and options are not in the "
                "snapshot, so it cannot be rendered (exclude it)."
            )
        lines = [f"    {_column_sql(col)}" for col in columns_of(snapshot, name)]
        for kind in inline_kinds:
            for con in grouped[kind].get(name, []):
                statement = (
                    f"CONSTRAINT {quote_ident(con['name'])} {stable_expression(con['definition'])}"
                )
                if _inline_constraint(con):
                    lines.append(f"    {statement}")
                else:
                    later.append(f"ALTER TABLE {quote_ident(name)} ADD {statement};")
        prefix = "CREATE UNLOGGED TABLE" if attrs.get("unlogged") else "CREATE TABLE"
        suffix = f" PARTITION BY {attrs['partition_key']}" if attrs.get("partitioned") else ""
        body = ",\n".join(lines)
        tables.append(f"{prefix} {quote_ident(name)} (\n{body}\n){suffix};")
    section("Tables", tables)

    fks = []
    for key in sorted(snapshot.kind("foreign_key")):
        fk = snapshot.kind("foreign_key")[key]
        fks.append(
            f"ALTER TABLE {quote_ident(fk['table'])} ADD CONSTRAINT {quote_ident(fk['name'])} "
            f"{fk['definition']};"
        )
    section("Foreign keys", fks)
    section("Constraints added after the tables (not valid)", later)

    owned = []
    columns = snapshot.kind("column")
    for name in sorted(snapshot.kind("sequence")):
        owner = snapshot.kind("sequence")[name].get("owned_by")
        if owner and owner in columns:
            col = columns[owner]
            owned.append(
                f"ALTER SEQUENCE {quote_ident(name)} OWNED BY "
                f"{quote_ident(col['table'])}.{quote_ident(col['name'])};"
            )
    section("Sequence ownership", owned)

    views = []
    for name in view_order(snapshot):
        view = snapshot.kind("view")[name]
        what = "MATERIALIZED VIEW" if view.get("materialized") else "VIEW"
        views.append(
            f"CREATE {what} {quote_ident(name)} AS\n{strip_view_definition(view['definition'])};"
        )
    section("Views (dependency order)", views)

    indexes = [
        stable_expression(snapshot.kind("index")[name]["definition"]) + ";"
        for name in sorted(snapshot.kind("index"))
    ]
    section("Indexes", indexes)

    section("Comments", [statement + ";" for statement in comment_statements(snapshot)])
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


def comment_statements(snapshot: Snapshot) -> list[str]:
    """``COMMENT ON`` statements (no semicolon) for every commented object, in a fixed order.

    Order: tables, columns, enum types, sequences, views, constraints, indexes; by name
    within each.
    """
    statements: list[str] = []

    def add(target: str, comment: str | None) -> None:
        if comment is not None:
            statements.append(f"COMMENT ON {target} IS {quote_literal(comment)}")

    for name in sorted(snapshot.kind("table")):
        add(f"TABLE {quote_ident(name)}", snapshot.kind("table")[name].get("comment"))
    for key in sorted(snapshot.kind("column"), key=lambda k: _column_sort(snapshot, k)):
        col = snapshot.kind("column")[key]
        add(f"COLUMN {quote_ident(col['table'])}.{quote_ident(col['name'])}", col.get("comment"))
    statements.extend(object_comment_statements(snapshot))
    return statements


def _column_sort(snapshot: Snapshot, key: str) -> tuple[str, int]:
    col = snapshot.kind("column")[key]
    return (col["table"], int(col["position"]))


def object_comment_statements(snapshot: Snapshot) -> list[str]:
    """``COMMENT ON`` statements for enum types, sequences, views, constraints and indexes.

    (Table and column comments are left out: the baseline sets those through Alembic.)
    """
    statements: list[str] = []

    def add(target: str, comment: str | None) -> None:
        if comment is not None:
            statements.append(f"COMMENT ON {target} IS {quote_literal(comment)}")

    for name in sorted(snapshot.kind("enum")):
        add(f"TYPE {quote_ident(name)}", snapshot.kind("enum")[name].get("comment"))
    for name in sorted(snapshot.kind("sequence")):
        add(f"SEQUENCE {quote_ident(name)}", snapshot.kind("sequence")[name].get("comment"))
    for name in sorted(snapshot.kind("view")):
        view = snapshot.kind("view")[name]
        what = "MATERIALIZED VIEW" if view.get("materialized") else "VIEW"
        add(f"{what} {quote_ident(name)}", view.get("comment"))
    for kind in ("primary_key", "unique", "check", "exclusion", "foreign_key"):
        for key in sorted(snapshot.kind(kind)):
            con = snapshot.kind(kind)[key]
            add(
                f"CONSTRAINT {quote_ident(con['name'])} ON {quote_ident(con['table'])}",
                con.get("comment"),
            )
    for name in sorted(snapshot.kind("index")):
        add(f"INDEX {quote_ident(name)}", snapshot.kind("index")[name].get("comment"))
    return statements
