"""The baseline renderer: a snapshot becomes the source text of a new Alembic root revision.

:func:`render_baseline` writes the Python source of a revision whose ``upgrade()`` creates
every compared object of a :class:`~abparts_ops.core.schema.model.Snapshot` on an empty
database, and whose ``downgrade()`` removes all of it again. Its statements are the
canonical DDL's steps (:mod:`abparts_ops.core.schema.ddl`), in the same dependency order
(:mod:`abparts_ops.core.schema.order`: what the catalog records between the objects, the
kinds' phases as the tie-breaker, cycles split as pg_dump splits them), so that where no
dependency says otherwise ``upgrade()`` reads: extensions, enum types, domains,
sequences, tables (``op.create_table`` with columns, primary key, unique and check
constraints, comments), foreign keys (``op.create_foreign_key``), constraints Alembic
cannot declare (exclusion, ``NOT VALID``, ``NULLS NOT DISTINCT``, ...), ``ALTER SEQUENCE
... OWNED BY``, views, indexes (``op.create_index``, or the catalog's own ``CREATE
INDEX`` where a key has an operator class, a sort order, a collation ...), and the
remaining comments; and a foreign key to columns covered by a unique index comes after
that index. ``downgrade()`` drops in the reverse dependency order (a cycle of foreign
keys is broken by dropping one key first).

Past :data:`COMPACT_TABLES` tables the revision is rendered *compact*: every statement of
the canonical DDL as ``op.execute`` of its SQL, in the same order. Python compiles a
string constant for almost nothing, where the Alembic operations of 5,000 tables (288,552
lines) cost a process that loads the history about 700 MB and 1.5 s, and the reset's
proofs as much again (``benchmarks/bench_reset_baseline.py``).

The file is plain, formatted Python (one call per object, short section comments, printed
by :mod:`abparts_ops.core.reset.pyformat`); types are mapped by
:mod:`abparts_ops.core.reset.typemap`. It records the snapshot's fingerprint as
``source_fingerprint``, which makes a rerun on an unchanged schema a no-op (see
:mod:`abparts_ops.core.reset.baseline_files`, which plans and writes the file).
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from abparts_ops.core.errors import MigrationError
from abparts_ops.core.quoting import quote_ident
from abparts_ops.core.reset.pyformat import (
    Call,
    ListExpr,
    fmt,
    name_list,
    noqa_long_lines,
    op_execute,
    sa_text,
    sql_literal,
)
from abparts_ops.core.reset.typemap import RAW_TYPE_SOURCE, py_string, render_type
from abparts_ops.core.schema.ddl import (
    CYCLE_KEYS,
    ddl_sections,
    drop_statements,
    phase_sections,
    split_step,
)
from abparts_ops.core.schema.kinds import BY_NAME
from abparts_ops.core.schema.kinds.base import by_table, columns_by_table, stable_expression
from abparts_ops.core.schema.kinds.constraint import (
    INLINE_KINDS,
    add_constraint_step,
    foreign_keys_outside,
)
from abparts_ops.core.schema.kinds.index import index_statement
from abparts_ops.core.schema.kinds.sequence import sequence_options
from abparts_ops.core.schema.kinds.table import create_table_step, is_partition
from abparts_ops.core.schema.model import KINDS, Snapshot
from abparts_ops.core.schema.order import (
    DependencyCycle,
    dependency_graph,
    order_sections,
    outside_dependencies,
)
from abparts_ops.core.schema.steps import ObjId, Section, Step, section
from abparts_ops.core.schema.validity import invalid_objects

_INTEGER_TYPES = {"smallint", "integer", "bigint"}

#: Past this many tables the baseline is rendered compact: every statement of the
#: canonical DDL as ``op.execute`` of its SQL (see :func:`render_baseline`).
COMPACT_TABLES = 300


def _own(constraints: list[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The constraints a table declares itself (not those inherited from a parent)."""
    return [con for con in constraints if not con.get("inherited")]


@dataclass
class _Body:
    """Statements of ``upgrade()`` or ``downgrade()``, grouped in commented sections."""

    lines: list[str]
    last_title: str | None = None

    def section(self, title: str, calls: Sequence[Call]) -> None:
        if not calls:
            return
        if title != self.last_title:  # consecutive parts of one section share its title
            self.lines.extend(["", f"    # {title}"])
            self.last_title = title
        for call in calls:
            self.lines.extend(noqa_long_lines("    " + fmt(call, 4)).split("\n"))


class _Renderer:
    """Builds the calls of one baseline revision from a snapshot."""

    def __init__(self, snapshot: Snapshot, compact: bool = False) -> None:
        self.snapshot = snapshot
        self.compact = compact
        self.enums = sorted(snapshot.kind("enum"))
        self.uses_raw = False
        self.uses_postgresql = False
        # grouped once: per-table lookups in the whole snapshot would be quadratic
        self.columns = columns_by_table(snapshot)
        self.constraints = {
            kind: by_table(snapshot, kind)
            for kind in ("primary_key", "unique", "check", "exclusion")
        }

    # -- helpers -------------------------------------------------------------------------

    def _type(self, col: Mapping[str, Any]) -> str:
        rendered = render_type(col["type"], enums=self.enums, collation=col.get("collation"))
        self.uses_raw |= rendered.uses_raw
        self.uses_postgresql |= rendered.uses_postgresql
        return rendered.source

    def inline(self, kind: str, con: Mapping[str, Any]) -> bool:
        """Whether ``op.create_table`` can declare a constraint exactly as the catalog
        has it (else it is added after the table, by the canonical ``ALTER TABLE``)."""
        if kind == "exclusion" or not con.get("validated", True):
            return False
        if kind == "check":
            return bool(con.get("definition") == f"CHECK ({con.get('expression')})")
        keyword = "PRIMARY KEY" if kind == "primary_key" else "UNIQUE"
        return bool(con.get("definition") == _key_definition(con, keyword))

    # -- tables --------------------------------------------------------------------------

    def column(self, col: Mapping[str, Any], pk_columns: Collection[str]) -> Call:
        call = Call("sa.Column", py_string(col["name"]), self._type(col))
        identity = col.get("identity")
        if identity:
            data_type = col["type"] if col["type"] in _INTEGER_TYPES else "bigint"
            options = sequence_options(data_type, identity)
            call.add(None, Call("sa.Identity", always=bool(identity.get("always")), **options))
        if col.get("generated") is not None:
            call.add(None, Call("sa.Computed", sql_literal(col["generated"]), persisted="True"))
        if col.get("default") is not None:
            call.add("server_default", sa_text(col["default"]))
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

    def table(self, name: str, included: Collection[ObjId]) -> Call:
        """``op.create_table`` of a table with the defaults and constraints of
        ``included`` (what its step creates: the others are added after it)."""
        snap = self.snapshot
        attrs = snap.kind("table")[name]
        if attrs.get("foreign"):
            raise MigrationError(
                f"table {name!r} is a foreign table; its server and options are not in the "
                "snapshot, so the baseline cannot create it (exclude it)."
            )

        def own(kind: str) -> list[Mapping[str, Any]]:
            return [
                con for con in _own(self.constraints[kind].get(name, []))
                if (kind, f"{name}.{con['name']}") in included
            ]

        pks = own("primary_key")
        all_pks = _own(self.constraints["primary_key"].get(name, []))
        pk_columns = set(all_pks[0]["columns"]) if all_pks else set()
        call = Call("op.create_table", py_string(name))
        for col in self.columns.get(name, []):
            if (
                col.get("default") is not None
                and ("column_default", f"{name}.{col['name']}") not in included
            ):
                col = {**col, "default": None}
            call.add(None, self.column(col, pk_columns))
        for pk in pks:
            self._key_constraint(call, pk, "sa.PrimaryKeyConstraint")
        for uq in own("unique"):
            self._key_constraint(call, uq, "sa.UniqueConstraint")
        for check in own("check"):
            call.add(
                None,
                Call(
                    "sa.CheckConstraint",
                    sql_literal(stable_expression(check["expression"])),
                    name=py_string(check["name"]),
                ),
            )
        if attrs.get("comment") is not None:
            call.add("comment", py_string(attrs["comment"]))
        if attrs.get("unlogged"):
            call.add("prefixes", ListExpr([py_string("UNLOGGED")]))
        if attrs.get("partitioned"):
            call.add("postgresql_partition_by", py_string(attrs["partition_key"]))
        return call

    def _key_constraint(self, call: Call, con: Mapping[str, Any], func: str) -> None:
        cols = con.get("columns") or []
        entry = Call(func, *[py_string(c) for c in cols], name=py_string(con["name"]))
        if con.get("deferrable"):
            entry.add("deferrable", "True")
            if con.get("initially_deferred"):
                entry.add("initially", py_string("DEFERRED"))
        call.add(None, entry)

    # -- foreign keys --------------------------------------------------------------------

    def foreign_key(self, fk: Mapping[str, Any]) -> Call:
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
            return op_execute(
                f"ALTER TABLE {quote_ident(fk['table'])} ADD CONSTRAINT "
                f"{quote_ident(fk['name'])} {fk['definition']}"
            )
        call = Call(
            "op.create_foreign_key",
            py_string(fk["name"]),
            py_string(fk["table"]),
            py_string(ref),
            name_list(cols),
            name_list(ref_cols),
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

    def index(self, name: str, idx: Mapping[str, Any]) -> Call:
        plain = self._index_call(name, idx)
        return plain if plain is not None else op_execute(index_statement(idx))

    def _index_call(self, name: str, idx: Mapping[str, Any]) -> Call | None:
        """``op.create_index`` when it recreates exactly the catalog's definition, else None."""
        definition: str = idx["definition"].replace(" ON ONLY ", " ON ", 1)
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
                keys.append(sa_text(key))
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
        call = Call("op.create_index", py_string(name), py_string(table), ListExpr(keys))
        call.add("unique", str(bool(idx.get("unique"))))
        if idx["method"] != "btree":
            call.add("postgresql_using", py_string(idx["method"]))
        if include:
            call.add("postgresql_include", name_list([c for c in include if c is not None]))
        if idx.get("predicate"):
            call.add("postgresql_where", sa_text(stable_expression(idx["predicate"])))
        return call

    # -- the whole file ------------------------------------------------------------------

    def _sequence(self, _sec: Section, step: Step) -> list[Call]:
        name = step.creates[0][1]
        seq = self.snapshot.kind("sequence")[name]
        data_type = {"integer": "sa.Integer()", "smallint": "sa.SmallInteger()"}.get(
            seq["data_type"]
        )
        options = sequence_options(seq["data_type"], seq)
        sequence = Call("sa.Sequence", py_string(name), data_type=data_type, **options)
        return [Call("op.execute", Call("sa.schema.CreateSequence", sequence))]

    def _table(self, _sec: Section, step: Step) -> list[Call]:
        return [self.table(step.creates[0][1], set(step.creates))]

    def _nothing(self, _sec: Section, _step: Step) -> list[Call]:
        return []

    def _foreign_key(self, _sec: Section, step: Step) -> list[Call]:
        return [self.foreign_key(self.snapshot.kind("foreign_key")[step.creates[0][1]])]

    def _index(self, _sec: Section, step: Step) -> list[Call]:
        name = step.creates[0][1]
        return [self.index(name, self.snapshot.kind("index")[name])]

    def op_sections(self) -> dict[str, Any]:
        """DDL section tags whose steps the baseline renders with Alembic operations (a
        function of the section and the step; the steps of the other tags become
        ``op.execute`` of the canonical DDL statement)."""
        return {
            "sequence": self._sequence,
            "table": self._table,
            "foreign_key": self._foreign_key,
            "index": self._index,
            "table:comment": self._nothing,  # set by op.create_table
            "column:comment": self._nothing,
        }

    def sections(self) -> list[Section]:
        """The DDL's steps as the baseline makes them, in dependency order.

        ``op.create_table`` declares only the constraints SQLAlchemy can spell as the
        catalog has them (:meth:`inline`); the others are added after the tables by the
        canonical ``ALTER TABLE`` (section ``table:late``). Then the steps are ordered by
        the catalog's dependencies, cycles split (:func:`~abparts_ops.core.schema.order.
        order_sections`), exactly as the canonical DDL is.
        """
        snap = self.snapshot
        out: list[Section] = []
        for sec in phase_sections(snap):
            if sec.tag == "table":
                out.append(section(sec.phase, sec.title, sec.tag, [
                    self._table_step(step) for step in sec.steps
                ]))
            elif sec.tag == "table:late":
                out.append(section(sec.phase, sec.title, sec.tag, self._late_steps()))
            else:
                out.append(sec)
        return order_sections(out, dependency_graph(snap), split=split_step(snap))

    def _table_step(self, step: Step) -> Step:
        name = step.creates[0][1]
        keep = {
            obj for obj in step.creates
            if obj[0] not in INLINE_KINDS or self.inline(obj[0], self.snapshot.kind(obj[0])[obj[1]])
        }
        constraints = {kind: self.constraints[kind].get(name, []) for kind in INLINE_KINDS}
        return create_table_step(
            self.snapshot, name, self.columns.get(name, []), constraints, keep=keep
        )

    def _late_steps(self) -> list[Step]:
        snap = self.snapshot
        steps = []
        for name in sorted(snap.kind("table")):
            if is_partition(snap, name):
                continue
            for kind in INLINE_KINDS:
                for con in _own(self.constraints[kind].get(name, [])):
                    if not self.inline(kind, con):
                        steps.append(add_constraint_step(con, kind))
        return steps

    def upgrade(self) -> list[str]:
        snap = self.snapshot
        body = _Body([])
        setup = [op_execute(f"SET LOCAL search_path TO {quote_ident(snap.schema)}, pg_catalog")]
        if snap.kind("function"):
            setup.append(op_execute("SET LOCAL check_function_bodies = false"))
        body.section(
            "Expressions below were printed with this search_path (for this transaction)", setup
        )
        ops = {} if self.compact else self.op_sections()
        for sec in ddl_sections(snap) if self.compact else self.sections():
            render = ops.get(sec.tag)
            calls: list[Call] = []
            for step in sec.steps:
                calls.extend(render(sec, step) if render else [op_execute(step.statement)])
            body.section(sec.title, calls)
        return body.lines

    def downgrade(self) -> list[str]:
        snap = self.snapshot
        body = _Body([])
        body.section(
            "Names below are unqualified (for this transaction)",
            [op_execute(f"SET LOCAL search_path TO {quote_ident(snap.schema)}, pg_catalog")],
        )
        titles = {
            "table": "Tables (referencing tables first; owned sequences go with them)",
            "table:partition": "Partitions",
        }
        for sec in drop_statements(snap):
            calls: list[Call] = []
            for step in sec.steps:
                obj = step.creates[0] if step.creates else None
                if sec.tag in titles and obj is not None:
                    calls.append(Call("op.drop_table", py_string(obj[1])))
                elif sec.tag == "sequence" and obj is not None:
                    calls.append(Call(
                        "op.execute",
                        Call("sa.schema.DropSequence", Call("sa.Sequence", py_string(obj[1]))),
                    ))
                elif sec.tag == CYCLE_KEYS[1] and obj is not None:
                    fk = snap.kind("foreign_key")[obj[1]]
                    calls.append(Call(
                        "op.drop_constraint",
                        py_string(fk["name"]),
                        py_string(fk["table"]),
                        type_=py_string("foreignkey"),
                    ))
                else:
                    calls.append(op_execute(step.statement))
            body.section(titles.get(sec.tag, sec.title), calls)
        return body.lines


def describe_object(kind: str, key: str) -> str:
    """An object of the dependency graph in words: ``foreign key 'parts.parts_fk'``,
    ``the default of column 'parts.code'``."""
    if kind == "column_default":
        return f"the default of column {key!r}"
    entry = BY_NAME.get(kind)
    return f"{entry.singular if entry else kind} {key!r}"


def _key_definition(con: Mapping[str, Any], keyword: str) -> str:
    """``PRIMARY KEY (...)`` / ``UNIQUE (...)`` as the catalog prints a key that
    ``sa.PrimaryKeyConstraint`` / ``sa.UniqueConstraint`` recreates."""
    cols = con.get("columns") or []
    expected = f"{keyword} ({', '.join(quote_ident(c) for c in cols)})"
    if con.get("deferrable"):
        expected += " DEFERRABLE"
        if con.get("initially_deferred"):
            expected += " INITIALLY DEFERRED"
    return expected


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


def _count_label(kind: str, count: int) -> str:
    entry = BY_NAME.get(kind)
    singular, plural = (entry.singular, entry.plural) if entry else (kind, kind + "s")
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
    compact: bool | None = None,
) -> str:
    """Render the Python source of a baseline (root) revision that recreates ``snapshot``.

    The same arguments always give byte-identical text. Raises :class:`MigrationError`
    when the schema cannot be built from it: a foreign key to an excluded table (or to a
    table the snapshot does not hold), an object that depends on something outside the
    snapshot (a sequence of another schema in a default, a collation or an aggregate the
    snapshot does not model: see ``Snapshot.dependencies``), a cycle of dependencies no
    split breaks, a foreign table, or an INVALID index (or a key
    whose index is INVALID, see :mod:`~abparts_ops.core.schema.validity`): the baseline
    would build it valid, which the source is not, so it is repaired in the source first.

    ``compact`` renders every statement as ``op.execute`` of the canonical DDL (see the
    module doc); None (the default) does so past :data:`COMPACT_TABLES` tables.
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
    outside = outside_dependencies(snapshot)
    if outside:
        kind, key, what = outside[0]
        more = f" (and {len(outside) - 1} more such dependencies)" if len(outside) > 1 else ""
        owner = key.split(".", 1)[0] if "." in key and kind not in ("function",) else key
        if what.split(" ", 1)[-1].startswith(quote_ident(snapshot.schema) + "."):
            why, fix = "a kind of object abparts_ops does not model yet", "drop that dependency"
        else:
            why = "an object of another schema"
            fix = f"move that object into schema {snapshot.schema!r} or drop the dependency"
        raise MigrationError(
            f"{describe_object(kind, key)} uses {what}, {why}{more}: a baseline of schema "
            f"{snapshot.schema!r} cannot create it, so the reset refuses this schema and "
            f"writes nothing ({fix}, or exclude {owner!r})."
        )
    invalid = invalid_objects(snapshot)
    if invalid:
        kind, key, advice = invalid[0]
        more = f" (and {len(invalid) - 1} more INVALID index(es))" if len(invalid) > 1 else ""
        raise MigrationError(
            f"{BY_NAME[kind].singular} {key!r} of the source: {advice}{more}; a baseline "
            "would build it valid, which the source is not: repair it in the source (or "
            "exclude its table), then run the reset again."
        )
    renderer = _Renderer(snapshot, compact=len(snapshot.kind("table")) > COMPACT_TABLES
                         if compact is None else compact)
    try:
        upgrade = renderer.upgrade()
        downgrade = renderer.downgrade()
    except DependencyCycle as exc:
        raise MigrationError(f"the baseline cannot be rendered: {exc}") from None
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

