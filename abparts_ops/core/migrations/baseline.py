"""The baseline revision: a new, self-contained Alembic root revision built from a snapshot.

:func:`render_baseline` writes the Python source of a revision whose ``upgrade()`` creates
every compared object of a :class:`~abparts_ops.core.schema.model.Snapshot` on an empty
database, and whose ``downgrade()`` removes all of it again. Order of ``upgrade()``:
extensions, enum types, domains, sequences, tables (``op.create_table`` with columns,
primary key, unique and check constraints, comments), foreign keys
(``op.create_foreign_key``, after every table, so cycles work), constraints Alembic cannot
declare (exclusion, ``NOT VALID``, ``NULLS NOT DISTINCT``, ...), ``ALTER SEQUENCE ... OWNED
BY``, views (dependency order), indexes (``op.create_index``, or the catalog's own
``CREATE INDEX`` where a key has an operator class, a sort order, a collation ...), and
the remaining comments.

The file is plain, formatted Python (one call per object, short section comments); types
are mapped by :mod:`abparts_ops.core.migrations.typemap`. It records the snapshot's
fingerprint as ``source_fingerprint``, which makes a rerun on an unchanged schema a no-op
(:func:`plan_baseline`). Files are never overwritten (:func:`write_baseline`).

Alembic's own renderer (``alembic.autogenerate.render_python_code``) is not used for the
calls themselves: it prints ``create_table`` arguments unindented and renders
``postgresql.ARRAY(Text())`` without the ``sa.`` prefix (a NameError when the file runs),
so the calls are formatted here in the shapes Alembic uses.
"""

from __future__ import annotations

import ast
import hashlib
import os
import re
import textwrap
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from abparts_ops.core.errors import MigrationError
from abparts_ops.core.migrations.archive import ArchiveResult, archive_revisions
from abparts_ops.core.migrations.typemap import RAW_TYPE_SOURCE, py_string, render_type
from abparts_ops.core.schema.ddl import (
    by_table,
    columns_of,
    domain_order,
    foreign_keys_outside,
    object_comment_statements,
    quote_ident,
    quote_literal,
    render_domain,
    sequence_options,
    stable_expression,
    strip_view_definition,
    table_order,
    view_order,
)
from abparts_ops.core.schema.model import KINDS, Snapshot

BASELINE_SUFFIX = "_baseline_schema_"
_BASELINE_FILE = re.compile(r"^[0-9A-Za-z_]+_baseline_schema_\d{8}_\d{6}\.py$")
_REVISION_FILE = re.compile(r"^(?!\.#|__init__)(.*\.py)$")
_LINE = 100
_INTEGER_TYPES = {"smallint", "integer", "bigint"}
#: How ``sa.text()`` finds bind parameters (``:name``); SQLAlchemy's own rule.
_BIND = re.compile(r"(?<![:\w\x5c]):(\w+)(?![:\w])", re.UNICODE)
_DIALECT = postgresql.psycopg2.dialect()


# --------------------------------------------------------------------------- formatting


class _Call:
    """A call expression, printed on one line when it fits, else one argument per line."""

    def __init__(self, func: str, *args: Any, **kwargs: Any) -> None:
        self.func = func
        self.args: list[tuple[str | None, Any]] = [(None, a) for a in args]
        self.args += [(k, v) for k, v in kwargs.items() if v is not None]

    def add(self, name: str | None, value: Any) -> _Call:
        """Append a (keyword) argument; ``None`` values are skipped. Returns self."""
        if value is not None:
            self.args.append((name, value))
        return self


class _List:
    """A list expression (``[a, b]``), broken like a call when it does not fit."""

    def __init__(self, items: Sequence[Any]) -> None:
        self.items = list(items)


def _flat(node: Any) -> str:
    if isinstance(node, _Call):
        inner = ", ".join(_flat(v) if k is None else f"{k}={_flat(v)}" for k, v in node.args)
        return f"{node.func}({inner})"
    if isinstance(node, _List):
        return "[" + ", ".join(_flat(i) for i in node.items) + "]"
    return str(node)


def _items(node: _Call | _List) -> list[tuple[str | None, Any]]:
    return node.args if isinstance(node, _Call) else [(None, i) for i in node.items]


def _fmt(node: Any, indent: int, used: int = 0, tail: int = 0) -> str:
    """Render ``node`` starting at column ``indent + used``, ``tail`` characters after it.

    The shapes are those of ruff/black: the whole call on one line; else its arguments on
    one line of their own; else one argument per line with a trailing comma (a lone
    argument is split recursively instead).
    """
    flat = _flat(node)
    if "\n" not in flat and indent + used + len(flat) + tail <= _LINE:
        return flat
    if not isinstance(node, (_Call, _List)):
        return flat
    items = _items(node)
    opening, closing = (f"{node.func}(", ")") if isinstance(node, _Call) else ("[", "]")
    if len(items) == 1 and items[0][0] is None and isinstance(items[0][1], str):
        if "\n" in items[0][1]:
            return f"{opening}{items[0][1]}{closing}"  # hug a triple-quoted string
    pad = " " * (indent + 4)
    end = " " * indent + closing
    body = ", ".join(_flat(v) if k is None else f"{k}={_flat(v)}" for k, v in items)
    if "\n" not in body and indent + 4 + len(body) <= _LINE:
        return f"{opening}\n{pad}{body}\n{end}"
    if len(items) == 1:
        key, value = items[0]
        prefix = "" if key is None else f"{key}="
        return f"{opening}\n{pad}{prefix}{_fmt(value, indent + 4, len(prefix))}\n{end}"
    lines = [opening]
    for key, value in items:
        prefix = "" if key is None else f"{key}="
        lines.append(f"{pad}{prefix}{_fmt(value, indent + 4, len(prefix), 1)},")
    lines.append(end)
    return "\n".join(lines)


def _sql(text: str) -> str:
    """A Python literal for SQL that will go through ``sa.text()`` unchanged.

    Words after a colon that SQLAlchemy would read as bind parameters (``:name``) are
    escaped (``\\:name``); multi-line SQL becomes a triple-quoted string when it can be
    one verbatim.
    """
    escaped = _BIND.sub(lambda m: "\\" + m.group(0), text)
    compiled = str(sa.text(escaped).compile(dialect=_DIALECT))
    if compiled != text.replace("%", "%%"):  # pragma: no cover - defensive
        raise MigrationError(f"cannot render SQL text safely for Alembic: {text[:80]!r}")
    if (
        "\n" in escaped
        and '"""' not in escaped
        and "\\" not in escaped
        and not escaped.endswith('"')
        and all(c.isprintable() or c in "\n\t" for c in escaped)
    ):
        return f'"""{escaped}"""'
    return py_string(escaped)


def _text(expr: str) -> _Call:
    return _Call("sa.text", _sql(expr))


def _execute(sql: str) -> _Call:
    return _Call("op.execute", _sql(sql))


def _names(names: Sequence[str]) -> _List:
    return _List([py_string(n) for n in names])


def _noqa_long_lines(chunk: str) -> str:
    """Mark lines longer than the limit (SQL strings cannot be broken) with ``noqa: E501``.

    In a chunk holding a triple-quoted string the mark goes on its last line, where ruff
    reads it for the whole string (a comment inside the string would change the SQL).
    """
    lines = chunk.split("\n")
    if all(len(line) <= _LINE for line in lines):
        return chunk
    if '"""' in chunk:
        lines[-1] += "  # noqa: E501"
    else:
        lines = [line + "  # noqa: E501" if len(line) > _LINE else line for line in lines]
    return "\n".join(lines)


# --------------------------------------------------------------------------- the revision


@dataclass
class _Body:
    """Statements of ``upgrade()`` or ``downgrade()``, grouped in commented sections."""

    lines: list[str]

    def section(self, title: str, calls: Sequence[_Call]) -> None:
        if not calls:
            return
        self.lines.extend(["", f"    # {title}"])
        for call in calls:
            self.lines.extend(_noqa_long_lines("    " + _fmt(call, 4)).split("\n"))


class _Renderer:
    """Builds the calls of one baseline revision from a snapshot."""

    def __init__(self, snapshot: Snapshot) -> None:
        self.snapshot = snapshot
        self.enums = sorted(snapshot.kind("enum"))
        self.uses_raw = False
        self.uses_postgresql = False
        self.deferred: list[_Call] = []  # constraints added after the tables

    # -- helpers -------------------------------------------------------------------------

    def _type(self, col: Mapping[str, Any]) -> str:
        rendered = render_type(col["type"], enums=self.enums, collation=col.get("collation"))
        self.uses_raw |= rendered.uses_raw
        self.uses_postgresql |= rendered.uses_postgresql
        return rendered.source

    def _add_constraint(self, con: Mapping[str, Any]) -> None:
        self.deferred.append(
            _execute(
                f"ALTER TABLE {quote_ident(con['table'])} ADD CONSTRAINT "
                f"{quote_ident(con['name'])} {stable_expression(con['definition'])}"
            )
        )

    # -- tables --------------------------------------------------------------------------

    def column(self, col: Mapping[str, Any], pk_columns: Collection[str]) -> _Call:
        call = _Call("sa.Column", py_string(col["name"]), self._type(col))
        identity = col.get("identity")
        if identity:
            data_type = col["type"] if col["type"] in _INTEGER_TYPES else "bigint"
            options = sequence_options(data_type, identity)
            call.add(None, _Call("sa.Identity", always=bool(identity.get("always")), **options))
        if col.get("generated") is not None:
            call.add(None, _Call("sa.Computed", _sql(col["generated"]), persisted="True"))
        if col.get("default") is not None:
            call.add("server_default", _text(col["default"]))
        call.add("nullable", str(bool(col.get("nullable", True))))
        if (
            col["name"] in pk_columns
            and col["type"] in _INTEGER_TYPES
            and col.get("default") is None
            and not identity
        ):
            call.add("autoincrement", "False")  # else SQLAlchemy would make it SERIAL
        if col.get("comment") is not None:
            call.add("comment", py_string(col["comment"]))
        return call

    def table(self, name: str) -> _Call:
        snap = self.snapshot
        attrs = snap.kind("table")[name]
        if attrs.get("foreign"):
            raise MigrationError(
                f"table {name!r} is a foreign table; its server and options are not in the "
                "snapshot, so the baseline cannot create it (exclude it)."
            )
        pks = by_table(snap, "primary_key").get(name, [])
        pk_columns = set(pks[0]["columns"]) if pks else set()
        call = _Call("op.create_table", py_string(name))
        for col in columns_of(snap, name):
            call.add(None, self.column(col, pk_columns))
        for pk in pks:
            self._key_constraint(call, pk, "sa.PrimaryKeyConstraint", "PRIMARY KEY")
        for uq in by_table(snap, "unique").get(name, []):
            self._key_constraint(call, uq, "sa.UniqueConstraint", "UNIQUE")
        for check in by_table(snap, "check").get(name, []):
            expected = f"CHECK ({check.get('expression')})"
            if check.get("definition") == expected:
                call.add(
                    None,
                    _Call(
                        "sa.CheckConstraint",
                        _sql(stable_expression(check["expression"])),
                        name=py_string(check["name"]),
                    ),
                )
            else:
                self._add_constraint(check)
        for excl in by_table(snap, "exclusion").get(name, []):
            self._add_constraint(excl)
        if attrs.get("comment") is not None:
            call.add("comment", py_string(attrs["comment"]))
        if attrs.get("unlogged"):
            call.add("prefixes", _List([py_string("UNLOGGED")]))
        if attrs.get("partitioned"):
            call.add("postgresql_partition_by", py_string(attrs["partition_key"]))
        return call

    def _key_constraint(self, call: _Call, con: Mapping[str, Any], func: str, keyword: str) -> None:
        cols = con.get("columns") or []
        expected = f"{keyword} ({', '.join(quote_ident(c) for c in cols)})"
        if con.get("deferrable"):
            expected += " DEFERRABLE"
            if con.get("initially_deferred"):
                expected += " INITIALLY DEFERRED"
        if con.get("definition") != expected:
            self._add_constraint(con)
            return
        entry = _Call(func, *[py_string(c) for c in cols], name=py_string(con["name"]))
        if con.get("deferrable"):
            entry.add("deferrable", "True")
            if con.get("initially_deferred"):
                entry.add("initially", py_string("DEFERRED"))
        call.add(None, entry)

    # -- foreign keys --------------------------------------------------------------------

    def foreign_key(self, fk: Mapping[str, Any]) -> _Call:
        ref = fk["ref_table"]
        cols, ref_cols = fk.get("columns") or [], fk.get("ref_columns") or []
        expected = (
            f"FOREIGN KEY ({', '.join(quote_ident(c) for c in cols)}) REFERENCES "
            f"{quote_ident(ref)}({', '.join(quote_ident(c) for c in ref_cols)})"
        )
        if fk.get("match") not in (None, "SIMPLE"):
            expected += f" MATCH {fk['match']}"
        for clause, key in (("ON UPDATE", "on_update"), ("ON DELETE", "on_delete")):
            if fk.get(key) not in (None, "NO ACTION"):
                expected += f" {clause} {fk[key]}"
        if fk.get("deferrable"):
            expected += " DEFERRABLE"
            if fk.get("initially_deferred"):
                expected += " INITIALLY DEFERRED"
        if fk.get("definition") != expected or ref not in self.snapshot.kind("table"):
            return _execute(
                f"ALTER TABLE {quote_ident(fk['table'])} ADD CONSTRAINT "
                f"{quote_ident(fk['name'])} {fk['definition']}"
            )
        call = _Call(
            "op.create_foreign_key",
            py_string(fk["name"]),
            py_string(fk["table"]),
            py_string(ref),
            _names(cols),
            _names(ref_cols),
        )
        if fk.get("on_update") not in (None, "NO ACTION"):
            call.add("onupdate", py_string(fk["on_update"]))
        if fk.get("on_delete") not in (None, "NO ACTION"):
            call.add("ondelete", py_string(fk["on_delete"]))
        if fk.get("deferrable"):
            call.add("deferrable", "True")
            if fk.get("initially_deferred"):
                call.add("initially", py_string("DEFERRED"))
        if fk.get("match") not in (None, "SIMPLE"):
            call.add("match", py_string(fk["match"]))
        return call

    # -- indexes -------------------------------------------------------------------------

    def index(self, name: str, idx: Mapping[str, Any]) -> _Call:
        plain = self._index_call(name, idx)
        return plain if plain is not None else _execute(stable_expression(idx["definition"]))

    def _index_call(self, name: str, idx: Mapping[str, Any]) -> _Call | None:
        """``op.create_index`` when it recreates exactly the catalog's definition, else None."""
        definition: str = idx["definition"]
        table = idx["table"]
        head = (
            f"CREATE {'UNIQUE ' if idx.get('unique') else ''}INDEX {quote_ident(name)} "
            f"ON {quote_ident(table)} USING {idx['method']} ("
        )
        if not definition.startswith(head) or idx.get("nulls_not_distinct"):
            return None
        end = _closing_paren(definition, len(head) - 1)
        if end is None:
            return None
        key_sql, tail = definition[len(head) : end], definition[end + 1 :]
        if "COLLATE" in key_sql:
            return None
        keys: list[Any] = []
        for key in idx.get("keys") or []:
            column = unquote_ident(key)
            if column is not None:
                keys.append(py_string(column))
            elif key.endswith(")"):
                keys.append(_text(key))
            else:
                return None  # operator class, DESC, NULLS FIRST/LAST
        include = [unquote_ident(c) for c in idx.get("include") or []]
        if include:
            expected = f" INCLUDE ({', '.join(idx['include'])})"
            if not tail.startswith(expected) or None in include:
                return None
            tail = tail[len(expected) :]
        if tail and not (tail.startswith(" WHERE ") and idx.get("predicate")):
            return None  # storage parameters, tablespace, ...
        call = _Call("op.create_index", py_string(name), py_string(table), _List(keys))
        call.add("unique", str(bool(idx.get("unique"))))
        if idx["method"] != "btree":
            call.add("postgresql_using", py_string(idx["method"]))
        if include:
            call.add("postgresql_include", _names([c for c in include if c is not None]))
        if idx.get("predicate"):
            call.add("postgresql_where", _text(stable_expression(idx["predicate"])))
        return call

    # -- the whole file ------------------------------------------------------------------

    def upgrade(self) -> list[str]:
        snap = self.snapshot
        body = _Body([])
        body.section(
            "Expressions below were printed with this search_path (for this transaction)",
            [_execute(f"SET LOCAL search_path TO {quote_ident(snap.schema)}, pg_catalog")],
        )
        body.section(
            "Extensions",
            [
                _execute(
                    f"CREATE EXTENSION IF NOT EXISTS {quote_ident(name)} WITH SCHEMA "
                    f"{quote_ident(snap.kind('extension')[name].get('schema') or snap.schema)}"
                )
                for name in sorted(snap.kind("extension"))
            ],
        )
        body.section(
            "Enum types",
            [
                _execute(
                    f"CREATE TYPE {quote_ident(name)} AS ENUM ("
                    + ", ".join(quote_literal(v) for v in snap.kind("enum")[name]["labels"] or [])
                    + ")"
                )
                for name in self.enums
            ],
        )
        body.section("Domains", [_execute(render_domain(snap, n)) for n in domain_order(snap)])
        sequences = []
        for name in sorted(snap.kind("sequence")):
            seq = snap.kind("sequence")[name]
            data_type = {"integer": "sa.Integer()", "smallint": "sa.SmallInteger()"}.get(
                seq["data_type"]
            )
            options = sequence_options(seq["data_type"], seq)
            sequence = _Call("sa.Sequence", py_string(name), data_type=data_type, **options)
            sequences.append(_Call("op.execute", _Call("sa.schema.CreateSequence", sequence)))
        body.section("Sequences", sequences)
        body.section("Tables", [self.table(name) for name in sorted(snap.kind("table"))])
        body.section(
            "Foreign keys (after all tables, so cycles work)",
            [
                self.foreign_key(snap.kind("foreign_key")[k])
                for k in sorted(snap.kind("foreign_key"))
            ],
        )
        body.section("Constraints Alembic cannot declare", self.deferred)
        owned = []
        columns = snap.kind("column")
        for name in sorted(snap.kind("sequence")):
            owner = snap.kind("sequence")[name].get("owned_by")
            if owner and owner in columns:
                col = columns[owner]
                owned.append(
                    _execute(
                        f"ALTER SEQUENCE {quote_ident(name)} OWNED BY "
                        f"{quote_ident(col['table'])}.{quote_ident(col['name'])}"
                    )
                )
        body.section("Sequence ownership", owned)
        views = []
        for name in view_order(snap):
            view = snap.kind("view")[name]
            what = "MATERIALIZED VIEW" if view.get("materialized") else "VIEW"
            views.append(
                _execute(
                    f"CREATE {what} {quote_ident(name)} AS\n"
                    + strip_view_definition(view["definition"])
                )
            )
        body.section("Views (dependency order)", views)
        body.section(
            "Indexes",
            [self.index(name, snap.kind("index")[name]) for name in sorted(snap.kind("index"))],
        )
        body.section("Comments", [_execute(s) for s in object_comment_statements(snap)])
        return body.lines

    def downgrade(self) -> list[str]:
        snap = self.snapshot
        body = _Body([])
        body.section(
            "Names below are unqualified (for this transaction)",
            [_execute(f"SET LOCAL search_path TO {quote_ident(snap.schema)}, pg_catalog")],
        )
        views = []
        for name in reversed(view_order(snap)):
            what = "MATERIALIZED VIEW" if snap.kind("view")[name].get("materialized") else "VIEW"
            views.append(_execute(f"DROP {what} {quote_ident(name)}"))
        body.section("Views", views)
        order, cycle_keys = table_order(snap)
        fks = snap.kind("foreign_key")
        body.section(
            "Foreign keys that close a cycle between tables",
            [
                _Call(
                    "op.drop_constraint",
                    py_string(fks[k]["name"]),
                    py_string(fks[k]["table"]),
                    type_=py_string("foreignkey"),
                )
                for k in cycle_keys
            ],
        )
        body.section(
            "Tables (referencing tables first; owned sequences go with them)",
            [_Call("op.drop_table", py_string(name)) for name in reversed(order)],
        )
        body.section(
            "Sequences",
            [
                _Call(
                    "op.execute",
                    _Call("sa.schema.DropSequence", _Call("sa.Sequence", py_string(name))),
                )
                for name in sorted(snap.kind("sequence"), reverse=True)
                if not snap.kind("sequence")[name].get("owned_by")
            ],
        )
        body.section(
            "Domains",
            [_execute(f"DROP DOMAIN {quote_ident(n)}") for n in reversed(domain_order(snap))],
        )
        body.section(
            "Enum types", [_execute(f"DROP TYPE {quote_ident(n)}") for n in reversed(self.enums)]
        )
        body.section(
            "Extensions",
            [
                _execute(f"DROP EXTENSION IF EXISTS {quote_ident(n)}")
                for n in sorted(snap.kind("extension"), reverse=True)
            ],
        )
        return body.lines


def unquote_ident(text: str) -> str | None:
    """The name a (possibly quoted) identifier stands for; None if ``text`` is not one."""
    if len(text) >= 2 and text[0] == '"' and text[-1] == '"':
        inner = text[1:-1]
        if inner and '"' not in inner.replace('""', ""):
            return inner.replace('""', '"')
        return None
    return text if quote_ident(text) == text else None


def _closing_paren(text: str, start: int) -> int | None:
    """Index of the parenthesis closing the one at ``start`` (quotes respected)."""
    depth = 0
    quote: str | None = None
    i = start
    while i < len(text):
        char = text[i]
        if quote:
            if char == quote:
                if i + 1 < len(text) and text[i + 1] == quote:
                    i += 1
                else:
                    quote = None
        elif char in "'\"":
            quote = char
        elif char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    return None


def _safe_label(text: str) -> str:
    """A one-line label for the docstring, with any URL password masked."""
    text = " ".join(text.split())
    return re.sub(r"(://[^:/@\s]*:)[^@\s]*@", r"\1***@", text)


_LABELS = {
    "primary_key": ("primary key", "primary keys"),
    "unique": ("unique constraint", "unique constraints"),
    "check": ("check constraint", "check constraints"),
    "exclusion": ("exclusion constraint", "exclusion constraints"),
    "foreign_key": ("foreign key", "foreign keys"),
    "index": ("index", "indexes"),
}


def _count_label(kind: str, count: int) -> str:
    singular, plural = _LABELS.get(kind, (kind, kind + "s"))
    return f"{count} {singular if count == 1 else plural}"


def _docstring(snapshot: Snapshot, revision: str, message: str, created: datetime) -> str:
    counts = snapshot.counts()
    listed = ", ".join(_count_label(kind, counts[kind]) for kind in KINDS if counts[kind])
    title = _safe_label(message).replace("\\", "\\\\").replace('"""', '\\"\\"\\"')
    source = _safe_label(snapshot.source or "unnamed source")
    if snapshot.server_version:
        source += f" (PostgreSQL {snapshot.server_version})"
    lines = [
        f'"""{title}',
        "",
        f"Revision ID: {revision}",
        "Revises:",
        f"Create Date: {created.isoformat(sep=' ', timespec='seconds')}",
        "",
        "A self-contained root revision rendered by abparts_ops from a schema snapshot:",
        "upgrade() creates the whole schema on an empty database, downgrade() removes it.",
        "",
        f"Source: {source}, schema {snapshot.schema}".replace("\\", "\\\\"),
        f"Source fingerprint: {snapshot.fingerprint}",
    ]
    lines += textwrap.wrap(f"Objects: {listed}.", width=88, subsequent_indent="    ")
    if snapshot.excluded:
        lines += textwrap.wrap(
            "Not managed here (excluded): " + ", ".join(sorted(snapshot.excluded)) + ".",
            width=88,
            subsequent_indent="    ",
        )
    lines.append('"""')
    return "\n".join(lines)


def render_baseline(
    snapshot: Snapshot,
    *,
    revision: str,
    message: str = "baseline schema",
    created: datetime,
) -> str:
    """Render the Python source of a baseline (root) revision that recreates ``snapshot``.

    The same arguments always give byte-identical text. Raises :class:`MigrationError`
    when the schema cannot be built from it: a foreign key to an excluded table (or to a
    table the snapshot does not hold), or a foreign table.
    """
    if not re.fullmatch(r"[0-9A-Za-z_]+", revision):
        raise MigrationError(
            f"revision id {revision!r} is not valid (use letters, digits and underscores, "
            "e.g. the 12 hex digits of new_revision_id())."
        )
    for key, table, ref in foreign_keys_outside(snapshot):
        where = "excluded table" if ref in snapshot.excluded else "table not in the snapshot"
        raise MigrationError(
            f"foreign key {key.split('.', 1)[-1]!r} of table {table!r} references {where} "
            f"{ref!r}; a baseline without {ref!r} cannot be built (stop excluding {ref!r}, "
            f"or exclude {table!r} too)."
        )
    renderer = _Renderer(snapshot)
    upgrade = renderer.upgrade()
    downgrade = renderer.downgrade()
    imports = ["import sqlalchemy as sa", "from alembic import op"]
    if renderer.uses_postgresql:
        imports.append("from sqlalchemy.dialects import postgresql")
    parts = [
        _docstring(snapshot, revision, message, created),
        "",
        *imports,
        "",
        "# revision identifiers, used by Alembic.",
        f"revision = {py_string(revision)}",
        "down_revision = None",
        "branch_labels = None",
        "depends_on = None",
        "",
        "# sha256 of the schema snapshot this revision was rendered from (abparts_ops).",
        f"source_fingerprint = {py_string(snapshot.fingerprint)}",
        "",
    ]
    if renderer.uses_raw:
        parts += ["", RAW_TYPE_SOURCE]
    parts += [
        "",
        "def upgrade() -> None:",
        '    """Create every object of the source schema, in dependency order."""',
        *upgrade[1:],
        "",
        "",
        "def downgrade() -> None:",
        '    """Drop everything upgrade() created, in reverse order."""',
        *downgrade[1:],
        "",
    ]
    return "\n".join(parts)


# --------------------------------------------------------------------------- files


def new_revision_id() -> str:
    """A new random revision id: 12 hex digits, as Alembic's ``rev_id()`` makes them."""
    try:
        from alembic.util import rev_id
    except ImportError:  # pragma: no cover - every supported Alembic has it
        import uuid

        return uuid.uuid4().hex[-12:]
    return str(rev_id())


def baseline_filename(revision: str, created: datetime) -> str:
    """The baseline's file name: ``<revision>_baseline_schema_<YYYYmmdd_HHMMSS>.py``."""
    return f"{revision}{BASELINE_SUFFIX}{created:%Y%m%d_%H%M%S}.py"


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def revision_files(versions_dir: Path) -> list[Path]:
    """Revision files at the top of ``versions_dir`` (Alembic's rule), sorted by name."""
    return sorted(
        (p for p in Path(versions_dir).iterdir() if _REVISION_FILE.match(p.name) and p.is_file()),
        key=lambda p: p.name,
    )


def read_baseline_header(path: Path) -> dict[str, Any] | None:
    """Read ``revision``, ``down_revision`` and ``source_fingerprint`` without importing.

    Returns None when the file does not parse; absent names map to ``...`` (Ellipsis) so
    ``down_revision = None`` can be told apart from a missing assignment.
    """
    try:
        tree = ast.parse(path.read_bytes(), filename=str(path))
    except (OSError, SyntaxError, ValueError):
        return None
    found: dict[str, Any] = {"revision": ..., "down_revision": ..., "source_fingerprint": ...}
    for node in tree.body:
        if isinstance(node, ast.Assign):
            targets, value = node.targets, node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            targets, value = [node.target], node.value
        else:
            continue
        for target in targets:
            if isinstance(target, ast.Name) and target.id in found:
                found[target.id] = value.value if isinstance(value, ast.Constant) else ...
    return found


@dataclass(frozen=True)
class BaselinePlan:
    """What :func:`write_baseline` will do, decided before anything is written.

    ``existing`` is set when the versions folder already holds exactly this baseline (the
    only revision file, a root, rendered from a snapshot with the same fingerprint): the
    plan is then a no-op and ``path``/``source``/``sha256`` describe that file.
    ``files_to_archive`` are the other revision files, which the archive step moves away.
    """

    revision: str
    filename: str
    path: Path
    source: str
    sha256: str
    archive_stamp: str
    files_to_archive: tuple[Path, ...]
    existing: Path | None

    @property
    def is_noop(self) -> bool:
        """True when there is nothing to write or archive."""
        return self.existing is not None


def find_existing_baseline(snapshot: Snapshot, versions_dir: Path) -> Path | None:
    """The baseline already in ``versions_dir`` for this snapshot, if it is the only file."""
    files = revision_files(versions_dir)
    if len(files) != 1 or not _BASELINE_FILE.match(files[0].name):
        return None
    header = read_baseline_header(files[0])
    if (
        header is not None
        and header["down_revision"] is None
        and header["source_fingerprint"] == snapshot.fingerprint
        and isinstance(header["revision"], str)
    ):
        return files[0]
    return None


def plan_baseline(
    snapshot: Snapshot,
    versions_dir: Path,
    *,
    revision: str | None = None,
    message: str = "baseline schema",
    now: datetime,
) -> BaselinePlan:
    """Decide the baseline for ``snapshot`` in ``versions_dir`` (nothing is written).

    A no-op plan (``existing`` set) when the folder already holds exactly one revision
    file, a ``*_baseline_schema_*.py`` root whose ``source_fingerprint`` is the snapshot's.
    Otherwise a new file named by :func:`baseline_filename` (``revision`` defaults to
    :func:`new_revision_id`), and every other revision file listed for archiving under
    the stamp ``now`` (``YYYYmmdd_HHMMSS``). ``revision`` and ``message`` do not matter
    for a no-op plan (the existing file is kept as it is). Raises :class:`MigrationError` when the
    folder is missing, or the target file exists with other content.
    """
    versions_dir = Path(versions_dir)
    if not versions_dir.is_dir():
        raise MigrationError(
            f"versions folder {versions_dir} does not exist (fix the Alembic project's "
            "script_location / version_locations)."
        )
    stamp = f"{now:%Y%m%d_%H%M%S}"
    existing = find_existing_baseline(snapshot, versions_dir)
    if existing is not None:
        text = existing.read_text(encoding="utf-8")
        header = read_baseline_header(existing) or {}
        return BaselinePlan(
            revision=str(header.get("revision")),
            filename=existing.name,
            path=existing,
            source=text,
            sha256=_sha256(text),
            archive_stamp=stamp,
            files_to_archive=(),
            existing=existing,
        )
    revision = revision or new_revision_id()
    filename = baseline_filename(revision, now)
    path = versions_dir / filename
    source = render_baseline(snapshot, revision=revision, message=message, created=now)
    if path.exists() and path.read_text(encoding="utf-8") != source:
        raise MigrationError(
            f"{path} already exists with other content; a baseline file is never "
            "overwritten (move it away, or pass another revision id)."
        )
    others = tuple(p for p in revision_files(versions_dir) if p.name != filename)
    return BaselinePlan(
        revision=revision,
        filename=filename,
        path=path,
        source=source,
        sha256=_sha256(source),
        archive_stamp=stamp,
        files_to_archive=others,
        existing=None,
    )


def write_baseline(plan: BaselinePlan) -> Path:
    """Write the plan's file atomically and never over another file; returns its path.

    A no-op for a no-op plan, or when the file already exists with exactly this content.
    The text goes to a temporary file in the same folder (flushed to disk), which is then
    hard-linked to the final name (failing if that name exists) and removed.
    """
    if plan.existing is not None:
        return plan.existing
    path = plan.path
    data = plan.source.encode("utf-8")
    if path.exists():
        if path.read_bytes() == data:
            return path
        raise MigrationError(
            f"{path} already exists with other content; a baseline file is never "
            "overwritten (move it away, or plan again)."
        )
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with tmp.open("xb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(tmp, path)
        except FileExistsError:
            if path.read_bytes() != data:
                raise MigrationError(
                    f"{path} appeared while writing, with other content; it was left as it "
                    "is (check who else writes to this versions folder)."
                ) from None
        except OSError:  # filesystems without hard links: exclusive create instead
            with path.open("xb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
    except OSError as exc:
        raise MigrationError(
            f"cannot write the baseline {path}: {exc.strerror or exc} (check the folder's "
            "permissions and free space)."
        ) from None
    finally:
        tmp.unlink(missing_ok=True)
    return path


def apply_baseline(plan: BaselinePlan, versions_dir: Path) -> tuple[Path, ArchiveResult | None]:
    """Write the baseline, then archive every other revision file of ``versions_dir``.

    Returns ``(baseline path, ArchiveResult or None)``; a no-op plan archives nothing.
    The new file is written first because the archive step keeps only files that exist;
    if archiving fails (it puts back whatever it moved), the baseline file this call
    created is removed again, so the folder is left exactly as it was.
    """
    if plan.existing is not None:
        return plan.existing, None
    existed = plan.path.exists()
    path = write_baseline(plan)
    try:
        result = archive_revisions(Path(versions_dir), keep=[path], stamp=plan.archive_stamp)
    except BaseException:
        if not existed:
            path.unlink(missing_ok=True)
        raise
    return path, result
