"""Read-only pre-checks derived from the SQL the pending revisions really executed.

When an environment is too big to copy with its rows, the guarded upgrade rehearses its
pending revisions on a schema-only copy: every statement runs, but on empty tables, so a
``SET NOT NULL`` over NULL rows, a ``UNIQUE`` over duplicates or a ``DROP COLUMN`` that
loses values passes the rehearsal. :func:`derive_prechecks` reads the statements the
rehearsal recorded (:class:`~abparts_ops.core.rollout.runner.ExecutedStatement`, with
their parameters bound) with PostgreSQL's own parser (``pglast``, libpg_query) and turns
each data-dependent one into a read-only query counting the rows it depends on;
:func:`run_prechecks` runs those queries on the environment itself, in one read-only
transaction, and says in one line per check what it found.

Two kinds of finding:

* a **failure** (``not_null``, ``unique``, ``check``, ``foreign_key``, ``type_cast``): a
  non-zero count means the apply would fail on the environment's rows;
* a **data-loss** finding (``drop_column``, ``drop_table``, ``truncate``, ``update``,
  ``delete``): a non-zero count is how many rows lose data when it succeeds.

The statements run in order, so a check sees the rows as the earlier pending statements
left them, without writing anything. Each table carries a model of those statements'
effects, in terms of the environment's own columns: a column added with a default (or
NULL) reads as that value, ``UPDATE t SET c = e WHERE w`` makes ``c`` read
``CASE WHEN w THEN e ELSE c END``, ``DELETE ... WHERE w`` keeps the rows where ``w`` is
not true, ``ALTER COLUMN ... TYPE`` reads as the cast, renames read the old names. So the
usual "add the column, backfill it, set it NOT NULL" is checked against what the backfill
will leave, not against the NULLs it is about to fill. What the model cannot follow
(``INSERT``, ``UPDATE ... FROM``, subqueries, a ``DO`` block) makes a later check on that
table "not derived" rather than wrong. Tables the statements create themselves (and
columns whose value is unknown before the apply: serial, identity, generated) exist only
after the apply: checks on them are skipped, as are checks that cannot find anything
whatever the rows (a key that is NULL on every row, a new column with a constant default
set NOT NULL).

A statement the parser does not understand, or that does not depend on the rows, gives no
check. A statement recognised as data-dependent that cannot be translated (an exclusion
constraint, an ``INSERT``, a foreign key naming no columns, ...) gives a :class:`PreCheck`
with ``query=None`` and a ``reason`` starting "not derived:", so nothing is silently left
out.

The type-cast check (``ALTER COLUMN c TYPE t [USING e]``) counts nothing row by row: a
cast that fails raises an error, and on PostgreSQL 15 (no ``pg_input_is_valid``) only
PL/pgSQL could catch it per row, which a read-only check must not depend on (nor could it
create a function in a read-only transaction). Its query evaluates ``CAST(e AS t)`` for
every row (``count(CAST(...))``: an aggregate's argument is evaluated on each row, so the
cast cannot be planned away) inside its own savepoint; if the server refuses a value, the
result says "the cast fails" with the server's message (which names the first value it
met), and the other checks still run. An ``ALTER ... TYPE`` converts with an *assignment*
cast, which refuses an over-long value for ``varchar(n)``/``char(n)`` where the explicit
cast of a ``SELECT`` would silently truncate it: those rows are counted apart
(``char_length(rtrim(value)) > n``, trailing spaces being allowed by both).
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pglast
import psycopg2
from pglast import ast, enums
from pglast.parser import ParseError
from pglast.stream import RawStream
from pglast.visitors import Visitor, maybe_double_quote_name

from abparts_ops.core.db import connect_dbapi, explain_error, scrub
from abparts_ops.core.quoting import quote_always
from abparts_ops.core.rollout.runner import ExecutedStatement, shorten

NOT_NULL = "not_null"
UNIQUE = "unique"
CHECK = "check"
FOREIGN_KEY = "foreign_key"
TYPE_CAST = "type_cast"
DROP_COLUMN = "drop_column"
DROP_TABLE = "drop_table"
TRUNCATE = "truncate"
UPDATE = "update"
DELETE = "delete"
INSERT = "insert"
MERGE = "merge"
PROCEDURAL = "procedural"
EXCLUSION = "exclusion"
VALIDATE = "validate"
ATTACH_PARTITION = "attach_partition"
DOMAIN = "domain"
DROP_CASCADE = "drop_cascade"

FAILURE_KINDS = frozenset(
    {NOT_NULL, UNIQUE, CHECK, FOREIGN_KEY, TYPE_CAST, INSERT, EXCLUSION, VALIDATE,
     ATTACH_PARTITION, DOMAIN, PROCEDURAL}
)
"""Kinds whose finding means the apply would fail (the others lose data when it succeeds)."""

PASSED = "passed"
FOUND = "found"
ERROR = "error"
NOT_DERIVED = "not_derived"

_TIMEOUT_SQLSTATE = "57014"
_UNDEFINED_TABLE = "42P01"
_UNDEFINED_COLUMN = "42703"
# A data exception (22xxx) or an integrity violation (23xxx) raised while a failure check
# evaluates the statement's own expression is the apply's failure itself.
_DATA_ERROR_CLASSES = ("22", "23")
_SERIAL_TYPES = frozenset({"serial", "bigserial", "smallserial", "serial2", "serial4", "serial8"})
_LENGTH_TYPES = frozenset({"varchar", "bpchar"})
_BIT_TYPES = frozenset({"bit", "varbit"})


@dataclass(frozen=True)
class PreCheck:
    """One read-only check derived from one pending statement.

    ``kind`` says what the statement does (``not_null``, ``unique``, ``check``,
    ``foreign_key``, ``type_cast``, ``drop_column``, ``drop_table``, ``truncate``,
    ``update``, ``delete``; ``insert``, ``merge``, ``procedural``, ``exclusion``,
    ``validate``, ``attach_partition``, ``domain``, ``drop_cascade`` are only ever not
    derived). ``relation`` is the table it targets (schema-qualified, quoted where
    needed), ``action`` says in a few words what the statement does ("sets parts.org_id
    NOT NULL"), ``query`` is the read-only query (None when not derived, with ``reason``
    saying why). The query returns one row with ``found`` (the count that matters, what
    ``counts`` describes), ``total`` (the table's rows) and, for ``unique``, ``groups``.
    ``meaning`` is a sentence saying what a non-zero count means; ``failure`` is True when
    it means the apply would fail, False when it means data is lost. ``missing_ok``: the
    statement drops IF EXISTS, so a missing table or column is no finding.
    """

    revision: str | None
    kind: str
    relation: str
    action: str
    query: str | None
    meaning: str
    failure: bool
    counts: str = "rows"
    statement: str = ""
    reason: str | None = None
    missing_ok: bool = False

    @property
    def data_loss(self) -> bool:
        """True when a non-zero count is data lost by a successful apply."""
        return not self.failure


@dataclass(frozen=True)
class PreCheckResult:
    """What one :class:`PreCheck` found on the environment.

    ``status`` is ``passed`` (nothing found), ``found`` (a non-zero count, or a cast the
    server refused: then ``found`` is None and ``error`` holds its message), ``error``
    (the query could not run: a timeout, a missing table; ``error`` says which) or
    ``not_derived`` (no query). ``found``/``total``/``groups`` are the query's counts;
    ``message`` is one line naming the revision, what it does and what was found.
    """

    precheck: PreCheck
    status: str
    message: str
    found: int | None = None
    total: int | None = None
    groups: int | None = None
    error: str | None = None
    seconds: float = 0.0

    @property
    def would_fail(self) -> bool:
        """True when the environment's rows would make the apply fail."""
        return self.status == FOUND and self.precheck.failure

    @property
    def loses_data(self) -> bool:
        """True when a successful apply would lose rows or values of the environment."""
        return self.status == FOUND and not self.precheck.failure


class _Skip(Exception):
    """No check: the statement works on objects the pending statements create themselves."""


class _NotDerived(Exception):
    """The statement depends on the rows but cannot be translated; the text says why."""


@dataclass
class _Column:
    """A column as the earlier pending statements leave it.

    ``expr`` is its value over the environment's row (unqualified references to the
    environment's columns), None when it is unknown before the apply (serial, identity,
    generated); ``added``: the pending statements created it (its values are not the
    environment's data).
    """

    expr: ast.Node | None
    added: bool = False


@dataclass
class _Table:
    """A table as the earlier pending statements leave it.

    ``env`` is its (schema, name) on the environment, None when it does not exist there
    (created by the statements, or dropped/renamed away). ``columns`` holds only the
    columns that differ from "the environment's column of the same name" (None: dropped or
    renamed away); ``filters`` holds the conditions of earlier DELETEs (the rows where one
    is true are gone; a TRUNCATE or a DELETE without WHERE is ``TRUE``); ``opaque`` says
    why the rows can no longer be described.
    """

    env: tuple[str, str] | None
    columns: dict[str, _Column | None] = field(default_factory=dict)
    filters: list[ast.Node] = field(default_factory=list)
    opaque: str | None = None

    def plain(self, key: tuple[str, str]) -> bool:
        """True when the table is exactly the environment's (nothing changed it so far)."""
        return self.env == key and not self.columns and not self.filters and not self.opaque


_ATOMS = (ast.ColumnRef, ast.A_Const, ast.FuncCall, ast.TypeCast)
_HOLE = "precheck_hole_{}_"


def _grouped(node: ast.Node) -> ast.Node:
    """``node`` marked to be printed in parentheses wherever it lands (unless a single term).

    A substituted expression lands where a column reference was, and pglast prints some
    parents (``IS NULL``, ``IS NOT TRUE``) without parenthesising their argument: the mark
    (an ``A_Indirection`` without indirection, which parsed SQL never holds) makes
    :func:`_sql` print it as ``(...)``, so its precedence can never change.
    """
    if isinstance(node, _ATOMS) or _is_group(node):
        return node
    return ast.A_Indirection(arg=node, indirection=())


def _is_group(node: Any) -> bool:
    return isinstance(node, ast.A_Indirection) and not node.indirection


def _sql(node: ast.Node) -> str:
    """``node`` deparsed to SQL text (identifiers quoted where PostgreSQL needs it).

    Parts marked by :func:`_grouped` are printed apart and put back in parentheses.
    """
    groups: list[ast.Node] = []

    class Cut(Visitor):
        def visit_A_Indirection(self, _ancestors: Any, found: ast.A_Indirection) -> Any:
            if found.indirection:
                return None
            groups.append(found.arg)
            return ast.ColumnRef(fields=(ast.String(sval=_HOLE.format(len(groups) - 1)),))

    text = RawStream()(Cut()(copy.deepcopy(node)))
    for index, group in enumerate(groups):
        text = text.replace(_HOLE.format(index), f"({_sql(group)})", 1)
    return text


def _p(node: ast.Node) -> str:
    """``node`` as SQL, parenthesised unless it is a single term."""
    text = _sql(node)
    if isinstance(node, _ATOMS) or _is_group(node):
        return text
    return f"({text})"


def _name(value: str) -> str:
    """An identifier for messages: bare when it can be, quoted when it must be."""
    return maybe_double_quote_name(value)


def _colref(name: str, qualifier: str | None = None) -> ast.ColumnRef:
    fields = (ast.String(sval=qualifier), ast.String(sval=name)) if qualifier else (
        ast.String(sval=name),
    )
    return ast.ColumnRef(fields=fields)


def _walk(node: Any) -> Any:
    """Every AST node under ``node`` (itself included)."""
    if isinstance(node, tuple):
        for item in node:
            yield from _walk(item)
    elif isinstance(node, ast.Node):
        yield node
        for member in node:
            yield from _walk(getattr(node, member))


def _has(node: Any, *classes: type) -> bool:
    return any(isinstance(n, classes) for n in _walk(node))


def _count(conds: Sequence[str], what: str = "*") -> str:
    """``count(what)``, restricted to rows meeting ``conds`` when there are any."""
    if not conds:
        return f"count({what})"
    return f"count({what}) FILTER (WHERE {' AND '.join(conds)})"


def _qualify_columns(node: ast.Node, qualifier: str) -> ast.Node:
    """``node`` (copied) with every single-name column reference qualified by ``qualifier``."""

    class Qualify(Visitor):
        def visit_ColumnRef(self, _ancestors: Any, ref: ast.ColumnRef) -> Any:
            if len(ref.fields) == 1:
                return ast.ColumnRef(fields=(ast.String(sval=qualifier), *ref.fields))
            return None

    return Qualify()(copy.deepcopy(node))


def _null_constant(node: Any) -> bool:
    """True for ``NULL`` or a cast of it: the value of a column added without a default."""
    if isinstance(node, ast.TypeCast):
        return _null_constant(node.arg)
    return isinstance(node, ast.A_Const) and bool(node.isnull)


def _typename_parts(type_name: ast.TypeName) -> tuple[str, ...]:
    return tuple(n.sval for n in type_name.names or () if isinstance(n, ast.String))


def _typmod_ints(type_name: ast.TypeName) -> list[int] | None:
    mods = []
    for mod in type_name.typmods or ():
        if isinstance(mod, ast.A_Const) and isinstance(mod.val, ast.Integer):
            mods.append(mod.val.ival)
        else:
            return None
    return mods


class _Deriver:
    """Walks the statements in order, keeping the model of each table, emitting checks."""

    def __init__(self, schema: str) -> None:
        self.schema = schema
        self.tables: dict[tuple[str, str], _Table] = {}
        self.not_valid: dict[tuple[tuple[str, str], str], ast.Constraint] = {}
        self.everything_changed: str | None = None
        self.out: list[PreCheck] = []
        self.revision: str | None = None
        self.source = ""

    # ---- names and state -------------------------------------------------------------

    def key(self, rv: ast.RangeVar) -> tuple[str, str]:
        return (rv.schemaname or self.schema, rv.relname)

    def state(self, key: tuple[str, str]) -> _Table:
        table = self.tables.get(key)
        if table is None:
            table = _Table(env=key, opaque=self.everything_changed)
            self.tables[key] = table
        return table

    def shown(self, key: tuple[str, str]) -> str:
        """The table's name for messages (schema left out when it is the default one)."""
        if key[0] == self.schema:
            return _name(key[1])
        return f"{_name(key[0])}.{_name(key[1])}"

    def qualified(self, key: tuple[str, str]) -> str:
        return f"{_name(key[0])}.{_name(key[1])}"

    def changed_by_this(self) -> str:
        label = self.revision or "a statement before the first revision"
        return f"{label} ({shorten(self.source, 80)})"

    def readable(self, key: tuple[str, str], table: _Table) -> None:
        """Raise unless the table exists on the environment and its rows can be described."""
        if table.env is None:
            raise _Skip
        if table.opaque:
            raise _NotDerived(
                f"an earlier pending statement, {table.opaque}, changes the rows of "
                f"{self.shown(key)} in a way these checks do not follow"
            )

    def relation_sql(self, table: _Table, rv: ast.RangeVar | None, alias: str | None = None) -> str:
        """``FROM`` text of the table's environment name (ONLY kept, alias added)."""
        if table.env is None:
            raise _Skip
        only = "ONLY " if rv is not None and rv.inh is False else ""
        text = f"{only}{quote_always(table.env[0])}.{quote_always(table.env[1])}"
        return f"{text} AS {alias}" if alias else text

    def value(self, table: _Table, column: str) -> _Column | None:
        if column in table.columns:
            return table.columns[column]
        return _Column(_colref(column))

    def rewrite(
        self,
        expr: ast.Node,
        key: tuple[str, str],
        table: _Table,
        *,
        names: Sequence[str] = (),
        qualifier: str | None = None,
    ) -> ast.Node:
        """``expr`` over the table's current columns, as an expression over the environment's.

        Raises _Skip when it reads a column whose value is unknown before the apply (or
        that no longer exists: the apply fails on it anyway), _NotDerived when it holds a
        subquery or a reference that is not a column of this table.
        """
        if _has(expr, ast.SubLink):
            raise _NotDerived("a subquery in the expression is not translated")
        known = {key[1], *names}
        deriver = self

        class Substitute(Visitor):
            def visit_ColumnRef(self, _ancestors: Any, ref: ast.ColumnRef) -> Any:
                if any(not isinstance(f, ast.String) for f in ref.fields):
                    raise _NotDerived("a whole-row reference (*) is not translated")
                parts = [f.sval for f in ref.fields]
                if len(parts) == 1:
                    column = parts[0]
                elif len(parts) in (2, 3) and parts[-2] in known:
                    column = parts[-1]
                else:
                    raise _NotDerived(
                        f"{_sql(ref)} is not a column of {deriver.shown(key)}"
                    )
                current = deriver.value(table, column)
                if current is None or current.expr is None:
                    raise _Skip
                if qualifier:
                    return _grouped(_qualify_columns(current.expr, qualifier))
                return _grouped(copy.deepcopy(current.expr))

        return Substitute()(copy.deepcopy(expr))

    def filters(self, table: _Table, qualifier: str | None = None) -> list[str]:
        """Conditions the rows left by earlier DELETEs (or a TRUNCATE) meet, as SQL."""
        out = []
        for deleted in table.filters:
            if isinstance(deleted, ast.A_Const) and isinstance(deleted.val, ast.Boolean):
                if deleted.val.boolval:
                    out.append("FALSE")  # every row is gone
            else:
                node = _qualify_columns(deleted, qualifier) if qualifier else deleted
                out.append(f"{_p(node)} IS NOT TRUE")
        return out

    def resolve_relations(self, node: Any) -> Any:
        """``node`` (copied) with its tables schema-qualified; refuses tables changed earlier."""
        node = copy.deepcopy(node)
        if _has(node, ast.CommonTableExpr):
            raise _NotDerived("a WITH clause is not translated")
        for rv in _walk(node):
            if isinstance(rv, ast.RangeVar):
                key = self.key(rv)
                table = self.state(key)
                self.readable(key, table)
                if not table.plain(key):
                    raise _NotDerived(
                        f"{self.shown(key)} is read in a join or subquery after earlier "
                        "pending statements changed it"
                    )
                rv.schemaname = key[0]
        return node

    # ---- emitting ----------------------------------------------------------------------

    def add(
        self,
        kind: str,
        key: tuple[str, str],
        action: str,
        meaning: str,
        build: Callable[[], str],
        *,
        counts: str = "rows",
        failure: bool | None = None,
        missing_ok: bool = False,
        relation: str | None = None,
    ) -> None:
        """Emit one check: ``build()`` makes its query (or raises _Skip / _NotDerived)."""
        reason = None
        try:
            query: str | None = build()
        except _Skip:
            return
        except _NotDerived as exc:
            query, reason = None, f"not derived: {exc}"
        self.out.append(
            PreCheck(
                revision=self.revision,
                kind=kind,
                relation=self.qualified(key) if relation is None else relation,
                action=action,
                query=query,
                meaning=meaning,
                failure=kind in FAILURE_KINDS if failure is None else failure,
                counts=counts,
                statement=shorten(self.source, 300) or "",
                reason=reason,
                missing_ok=missing_ok,
            )
        )

    def not_derived(
        self, kind: str, key: tuple[str, str], action: str, meaning: str, why: str,
        *, failure: bool | None = None, relation: str | None = None,
    ) -> None:
        def refuse() -> str:
            raise _NotDerived(why)

        self.add(kind, key, action, meaning, refuse, failure=failure, relation=relation)

    # ---- statements --------------------------------------------------------------------

    def statement(self, revision: str | None, stmt: ast.Node, source: str) -> None:
        self.revision, self.source = revision, source
        handler = getattr(self, f"on_{type(stmt).__name__}", None)
        if handler is not None:
            handler(stmt)

    def on_CreateStmt(self, stmt: ast.CreateStmt) -> None:
        self.tables[self.key(stmt.relation)] = _Table(env=None)

    def on_CreateTableAsStmt(self, stmt: ast.CreateTableAsStmt) -> None:
        self.tables[self.key(stmt.into.rel)] = _Table(env=None)

    def on_ViewStmt(self, stmt: ast.ViewStmt) -> None:
        self.tables[self.key(stmt.view)] = _Table(env=None)

    def on_SelectStmt(self, stmt: ast.SelectStmt) -> None:
        if stmt.intoClause is not None:  # SELECT ... INTO creates a table
            self.tables[self.key(stmt.intoClause.rel)] = _Table(env=None)

    def on_RenameStmt(self, stmt: ast.RenameStmt) -> None:
        if stmt.relation is None:
            return
        key = self.key(stmt.relation)
        if stmt.renameType == enums.ObjectType.OBJECT_TABLE:
            self.tables[(key[0], stmt.newname)] = self.state(key)
            self.tables[key] = _Table(env=None)
        elif stmt.renameType == enums.ObjectType.OBJECT_COLUMN:
            table = self.state(key)
            table.columns[stmt.newname] = self.value(table, stmt.subname)
            table.columns[stmt.subname] = None

    def on_AlterObjectSchemaStmt(self, stmt: ast.AlterObjectSchemaStmt) -> None:
        if stmt.objectType == enums.ObjectType.OBJECT_TABLE and stmt.relation is not None:
            key = self.key(stmt.relation)
            self.tables[(stmt.newschema, key[1])] = self.state(key)
            self.tables[key] = _Table(env=None)

    def on_AlterTableStmt(self, stmt: ast.AlterTableStmt) -> None:
        if stmt.objtype != enums.ObjectType.OBJECT_TABLE:
            return
        rv = stmt.relation
        key = self.key(rv)
        for cmd in stmt.cmds or ():
            table = self.state(key)
            sub = cmd.subtype
            T = enums.AlterTableType
            if sub == T.AT_AddColumn:
                self.add_column(key, table, rv, cmd.def_)
            elif sub == T.AT_SetNotNull:
                self.not_null(
                    key, table, rv, [cmd.name], f"sets {self.shown(key)}.{_name(cmd.name)} NOT NULL"
                )
            elif sub == T.AT_AddConstraint:
                self.constraint(key, table, rv, cmd.def_)
            elif sub == T.AT_ValidateConstraint:
                self.validate(key, table, rv, cmd.name)
            elif sub == T.AT_AlterColumnType:
                self.alter_type(key, table, rv, cmd.name, cmd.def_)
            elif sub == T.AT_DropColumn:
                self.drop_column(
                    key, table, rv, cmd.name, missing_ok=cmd.missing_ok
                )
            elif sub == T.AT_AttachPartition:
                part = cmd.def_.name
                if table.env is None or self.state(self.key(part)).env is None:
                    continue  # made by the statements: its rows are theirs
                self.not_derived(
                    ATTACH_PARTITION, key,
                    f"attaches {self.shown(self.key(part))} as a partition of {self.shown(key)}",
                    "Rows of the attached table outside the partition bound make ATTACH "
                    "PARTITION fail.",
                    "the partition bound is not translated into a query",
                )

    # ---- ALTER TABLE pieces ------------------------------------------------------------

    def add_column(
        self, key: tuple[str, str], table: _Table, rv: ast.RangeVar, coldef: ast.ColumnDef
    ) -> None:
        if table.env is None:
            return
        constraints = list(coldef.constraints or ())
        type_parts = _typename_parts(coldef.typeName)
        default = next(
            (c.raw_expr for c in constraints if c.contype == enums.ConstrType.CONSTR_DEFAULT),
            None,
        )
        unknown = (
            coldef.typeName.pct_type
            or (len(type_parts) == 1 and type_parts[0].lower() in _SERIAL_TYPES)
            or any(
                c.contype in (enums.ConstrType.CONSTR_IDENTITY, enums.ConstrType.CONSTR_GENERATED)
                for c in constraints
            )
            or (default is not None and any(
                isinstance(n, ast.FuncCall) and n.funcname[-1].sval == "nextval"
                for n in _walk(default)
            ))
        )
        expr = None if unknown else ast.TypeCast(
            arg=copy.deepcopy(default) if default is not None else ast.A_Const(isnull=True),
            typeName=copy.deepcopy(coldef.typeName),
        )
        table.columns[coldef.colname] = _Column(expr, added=True)
        column = f"{self.shown(key)}.{_name(coldef.colname)}"
        for con in constraints:
            if con.contype == enums.ConstrType.CONSTR_NOTNULL:
                self.not_null(key, table, rv, [coldef.colname], f"adds {column} NOT NULL")
            else:
                self.constraint(key, table, rv, con, column=coldef.colname)

    def not_null(
        self,
        key: tuple[str, str],
        table: _Table,
        rv: ast.RangeVar,
        columns: Sequence[str],
        action: str,
        *,
        counts: str = "rows are NULL",
    ) -> None:
        def build() -> str:
            self.readable(key, table)
            values = [self.rewrite(_colref(c), key, table) for c in columns]
            if all(
                isinstance(v, ast.TypeCast) and isinstance(v.arg, ast.A_Const)
                and not v.arg.isnull for v in values
            ):
                raise _Skip  # a new column with a constant default: never NULL
            nulls = " OR ".join(f"{_p(v)} IS NULL" for v in values)
            nulls = f"({nulls})" if len(values) > 1 else nulls
            conds = [*self.filters(table), nulls]
            return (
                f"SELECT {_count(conds)} AS found, count(*) AS total "
                f"FROM {self.relation_sql(table, rv)}"
            )

        self.add(
            NOT_NULL, key, action,
            "Rows with a NULL there make the statement fail: fill them (or give the column "
            "a value) first.",
            build, counts=counts,
        )

    def constraint(
        self,
        key: tuple[str, str],
        table: _Table,
        rv: ast.RangeVar,
        con: ast.Constraint,
        *,
        column: str | None = None,
        validating: bool = False,
    ) -> None:
        C = enums.ConstrType
        name = f" {_name(con.conname)}" if con.conname else ""
        keys = [k.sval for k in con.keys or ()] or ([column] if column else [])
        shown_keys = ", ".join(_name(k) for k in keys)
        verb = "validates" if validating else "adds"
        if con.contype == C.CONSTR_PRIMARY:
            columns = f"USING INDEX {_name(con.indexname)}" if con.indexname else f"({shown_keys})"
            action = f"adds PRIMARY KEY{name} {columns} on {self.shown(key)}"
            if con.indexname:
                self.not_derived(
                    NOT_NULL, key, action,
                    "Rows with a NULL in the index's columns make the statement fail.",
                    f"the columns of index {_name(con.indexname)} are not known without "
                    "the environment's catalog",
                )
                return
            self.not_null(
                key, table, rv, keys, action, counts="rows have a NULL in the key",
            )
            self.unique(key, table, rv, [_colref(k) for k in keys], None, False, action)
        elif con.contype == C.CONSTR_UNIQUE:
            if con.indexname:
                return  # built from an existing unique index: nothing left to check
            nnd = " NULLS NOT DISTINCT" if con.nulls_not_distinct else ""
            action = f"adds UNIQUE{name}{nnd} ({shown_keys}) on {self.shown(key)}"
            self.unique(key, table, rv, [_colref(k) for k in keys], None,
                        con.nulls_not_distinct, action)
        elif con.contype == C.CONSTR_CHECK:
            if con.skip_validation and not validating:
                self.remember_not_valid(key, con)
                return
            action = f"{verb} CHECK{name} ({_sql(con.raw_expr)}) on {self.shown(key)}"
            self.check(key, table, rv, con.raw_expr, action)
        elif con.contype == C.CONSTR_FOREIGN:
            if con.skip_validation and not validating:
                self.remember_not_valid(key, con)
                return
            fk_cols = [a.sval for a in con.fk_attrs or ()] or ([column] if column else [])
            self.foreign_key(key, table, rv, con, fk_cols, verb, name)
        elif con.contype == C.CONSTR_EXCLUSION:
            self.not_derived(
                EXCLUSION, key, f"adds an EXCLUDE constraint{name} on {self.shown(key)}",
                "Pairs of rows that conflict under the exclusion operators make the "
                "statement fail.",
                "exclusion constraints are not translated into a query",
            )

    def remember_not_valid(self, key: tuple[str, str], con: ast.Constraint) -> None:
        if con.conname:
            self.not_valid[(key, con.conname)] = con

    def validate(self, key: tuple[str, str], table: _Table, rv: ast.RangeVar, name: str) -> None:
        con = self.not_valid.get((key, name))
        if con is None:
            if table.env is None:
                return
            self.not_derived(
                VALIDATE, key, f"validates constraint {_name(name)} on {self.shown(key)}",
                "Rows that violate the constraint make VALIDATE CONSTRAINT fail.",
                "the constraint was added before the pending revisions: its definition is "
                "not in the statements",
            )
            return
        self.constraint(key, table, rv, con, validating=True)

    def unique(
        self,
        key: tuple[str, str],
        table: _Table,
        rv: ast.RangeVar,
        keys: Sequence[ast.Node],
        predicate: ast.Node | None,
        nulls_not_distinct: bool,
        action: str,
    ) -> None:
        def build() -> str:
            self.readable(key, table)
            values = [self.rewrite(k, key, table) for k in keys]
            if not nulls_not_distinct and any(_null_constant(v) for v in values):
                raise _Skip  # a key that is NULL on every row: no two rows can collide
            conds = self.filters(table)
            if predicate is not None:
                conds.append(_p(self.rewrite(predicate, key, table)))
            inner = [f"{_count(conds)} AS in_index"]
            if conds:
                inner.append("count(*) AS all_rows")
            duplicate = "in_index > 1"
            if not nulls_not_distinct:
                complete = " AND ".join(f"{_p(v)} IS NOT NULL" for v in values)
                inner.append(f"bool_and({complete}) AS no_null")
                duplicate = "no_null AND in_index > 1"
            return (
                f"SELECT count(*) FILTER (WHERE {duplicate}) AS groups, "
                f"coalesce(sum(in_index) FILTER (WHERE {duplicate}), 0) AS found, "
                f"coalesce(sum({'all_rows' if conds else 'in_index'}), 0) AS total "
                f"FROM (SELECT {', '.join(inner)} "
                f"FROM {self.relation_sql(table, rv)} "
                f"GROUP BY {', '.join(_sql(v) for v in values)}) AS k"
            )

        self.add(
            UNIQUE, key, action,
            "Rows sharing one key make the unique constraint or index fail to build: remove "
            "or change the duplicates first.",
            build, counts="rows in duplicate groups",
        )

    def check(
        self,
        key: tuple[str, str],
        table: _Table,
        rv: ast.RangeVar,
        expr: ast.Node,
        action: str,
    ) -> None:
        def build() -> str:
            self.readable(key, table)
            value = self.rewrite(expr, key, table)
            conds = [*self.filters(table), f"NOT {_p(value)}"]
            return (
                f"SELECT {_count(conds)} AS found, count(*) AS total "
                f"FROM {self.relation_sql(table, rv)}"
            )

        self.add(
            CHECK, key, action,
            "Rows for which the expression is false make the statement fail (NULL passes a "
            "CHECK): fix them first, or add the constraint NOT VALID.",
            build, counts="rows fail the check",
        )

    def foreign_key(
        self,
        key: tuple[str, str],
        table: _Table,
        rv: ast.RangeVar,
        con: ast.Constraint,
        fk_cols: Sequence[str],
        verb: str,
        name: str,
    ) -> None:
        parent_rv = con.pktable
        parent_key = self.key(parent_rv)
        pk_cols = [a.sval for a in con.pk_attrs or ()]
        full = con.fk_matchtype == "f"
        refs = f" ({', '.join(_name(c) for c in pk_cols)})" if pk_cols else ""
        action = (
            f"{verb} FOREIGN KEY{name} "
            f"({', '.join(_name(c) for c in fk_cols)}) REFERENCES "
            f"{self.shown(parent_key)}{refs}{' MATCH FULL' if full else ''} on "
            f"{self.shown(key)}"
        )

        def build() -> str:
            self.readable(key, table)
            parent = self.state(parent_key)
            self.readable(parent_key, parent)
            if not pk_cols:
                raise _NotDerived(
                    "it references the primary key of "
                    f"{self.shown(parent_key)} without naming its columns"
                )
            if len(pk_cols) != len(fk_cols):
                raise _Skip  # the server refuses it whatever the rows
            child_vals = [
                self.rewrite(_colref(c), key, table, qualifier="child") for c in fk_cols
            ]
            if not full and any(_null_constant(v) for v in child_vals):
                raise _Skip  # MATCH SIMPLE: a key NULL on every row references nothing
            parent_vals = [
                self.rewrite(_colref(c), parent_key, parent, qualifier="parent")
                for c in pk_cols
            ]
            match = [
                *self.filters(parent, "parent"),
                *(f"{_p(pv)} = {_p(cv)}" for pv, cv in zip(parent_vals, child_vals, strict=True)),
            ]
            exists = (
                f"EXISTS (SELECT 1 FROM {self.relation_sql(parent, parent_rv, 'parent')} "
                f"WHERE {' AND '.join(match)})"
            )
            set_ = [f"{_p(cv)} IS NOT NULL" for cv in child_vals]
            if full and len(child_vals) > 1:
                all_set, any_set = " AND ".join(set_), " OR ".join(set_)
                violation = (
                    f"(({any_set}) AND NOT ({all_set}) OR ({all_set}) AND NOT {exists})"
                )
                conds = [*self.filters(table, "child"), violation]
            else:
                conds = [*self.filters(table, "child"), *set_, f"NOT {exists}"]
            return (
                f"SELECT {_count(conds)} AS found, count(*) AS total "
                f"FROM {self.relation_sql(table, rv, 'child')}"
            )

        self.add(
            FOREIGN_KEY, key, action,
            f"Rows whose key has no matching row in {self.shown(parent_key)} make the "
            "statement fail: fix them first, or add the constraint NOT VALID.",
            build,
            counts=f"rows have no matching row in {self.shown(parent_key)}"
            if not full else "rows have no matching row or a partly NULL key",
        )

    def alter_type(
        self,
        key: tuple[str, str],
        table: _Table,
        rv: ast.RangeVar,
        column: str,
        coldef: ast.ColumnDef,
    ) -> None:
        type_name = coldef.typeName
        using = coldef.raw_default
        shown_type = _sql(type_name)
        action = f"changes {self.shown(key)}.{_name(column)} to {shown_type}" + (
            f" USING {_sql(using)}" if using is not None else ""
        )
        parts = _typename_parts(type_name)
        builtin = parts[-1] if len(parts) == 2 and parts[0] == "pg_catalog" else None
        mods = _typmod_ints(type_name)
        length = mods[0] if builtin in _LENGTH_TYPES and mods and len(mods) == 1 else None

        def source() -> ast.Node:
            return self.rewrite(using if using is not None else _colref(column), key, table)

        def build() -> str:
            self.readable(key, table)
            if builtin in _BIT_TYPES and type_name.typmods:
                raise _NotDerived(
                    f"a bit string length ({shown_type}) is enforced by the ALTER but not by "
                    "an explicit cast"
                )
            if type_name.arrayBounds and length is not None:
                raise _NotDerived(
                    f"the element length of {shown_type} is enforced by the ALTER but not by "
                    "an explicit cast"
                )
            value = source()
            if _null_constant(value) and builtin is not None:
                raise _Skip  # NULL casts to any built-in type (a domain may refuse it)
            cast = _sql(ast.TypeCast(arg=value, typeName=copy.deepcopy(type_name)))
            conds = self.filters(table)
            too_long = (
                _count([*conds, f"char_length(rtrim(CAST({_sql(value)} AS text), ' ')) > {length}"])
                if length is not None else "0"
            )
            return (
                f"SELECT {too_long} AS found, count(*) AS total, {_count(conds, cast)} "
                f"AS converted FROM {self.relation_sql(table, rv)}"
            )

        self.add(
            TYPE_CAST, key, action,
            f"Values that do not convert to {shown_type} make the statement fail: fix them "
            "first, or give a USING expression that converts them.",
            build,
            counts=f"rows are longer than {length} characters" if length is not None
            else "rows do not convert",
        )
        current = self.value(table, column)
        if current is None or table.env is None:
            return
        try:
            expr: ast.Node | None = ast.TypeCast(
                arg=source(), typeName=copy.deepcopy(type_name)
            )
        except (_Skip, _NotDerived):
            expr = None
        table.columns[column] = _Column(expr, added=current.added)

    def drop_column(
        self, key: tuple[str, str], table: _Table, rv: ast.RangeVar, column: str,
        *, missing_ok: bool = False,
    ) -> None:
        current = self.value(table, column)

        def build() -> str:
            self.readable(key, table)
            if current is None or current.added:
                raise _Skip  # gone already, or its values were made by the statements
            value = self.rewrite(_colref(column), key, table)
            return (
                f"SELECT {_count(self.filters(table), _sql(value))} AS found, "
                f"count(*) AS total FROM {self.relation_sql(table, rv)}"
            )

        self.add(
            DROP_COLUMN, key, f"drops {self.shown(key)}.{_name(column)}",
            "The column's non-NULL values are lost when it is dropped.",
            build, counts=f"rows have a value in {_name(column)} (lost)", missing_ok=missing_ok,
        )
        table.columns[column] = None

    # ---- other statements ------------------------------------------------------------

    def on_IndexStmt(self, stmt: ast.IndexStmt) -> None:
        if not stmt.unique:
            return
        rv = stmt.relation
        key = self.key(rv)
        table = self.state(key)
        keys: list[ast.Node] = []
        for elem in stmt.indexParams or ():
            node = elem.expr if elem.expr is not None else _colref(elem.name)
            if elem.collation:
                node = ast.CollateClause(arg=node, collname=elem.collation)
            keys.append(node)
        where = f" WHERE {_sql(stmt.whereClause)}" if stmt.whereClause is not None else ""
        nnd = " NULLS NOT DISTINCT" if stmt.nulls_not_distinct else ""
        action = (
            f"creates unique index {_name(stmt.idxname) if stmt.idxname else '(unnamed)'} on "
            f"{self.shown(key)} ({', '.join(_sql(k) for k in keys)}){nnd}{where}"
        )
        self.unique(key, table, rv, keys, stmt.whereClause, stmt.nulls_not_distinct, action)

    def on_DropStmt(self, stmt: ast.DropStmt) -> None:
        kinds = enums.ObjectType
        if stmt.removeType == kinds.OBJECT_TABLE:
            for names in stmt.objects or ():
                parts = [n.sval for n in names]
                key = (parts[-2] if len(parts) > 1 else self.schema, parts[-1])
                table = self.state(key)
                rv = ast.RangeVar(relname=key[1], inh=True)
                self.whole_table(
                    DROP_TABLE, key, table, rv, f"drops table {self.shown(key)}",
                    "The table's rows are lost when it is dropped.",
                    missing_ok=stmt.missing_ok,
                )
                self.tables[key] = _Table(env=None)
        elif (
            stmt.behavior == enums.DropBehavior.DROP_CASCADE
            and stmt.removeType in (kinds.OBJECT_SCHEMA, kinds.OBJECT_TYPE, kinds.OBJECT_DOMAIN,
                                    kinds.OBJECT_EXTENSION)
        ):
            what = stmt.removeType.name.removeprefix("OBJECT_").lower()
            names = ", ".join(_object_name(o) for o in stmt.objects or ())
            self.not_derived(
                DROP_CASCADE, (self.schema, names), f"drops {what} {names} CASCADE",
                "Tables or columns that depend on it are dropped with their data.",
                "what CASCADE drops is known only from the environment's catalog",
                failure=False, relation=names,
            )

    def on_TruncateStmt(self, stmt: ast.TruncateStmt) -> None:
        for rv in stmt.relations or ():
            key = self.key(rv)
            table = self.state(key)
            self.whole_table(
                TRUNCATE, key, table, rv, f"truncates {self.shown(key)}",
                "The table's rows are lost when it is truncated.",
            )
            if stmt.behavior == enums.DropBehavior.DROP_CASCADE and table.env is not None:
                self.not_derived(
                    TRUNCATE, key, f"truncates the tables referencing {self.shown(key)} (CASCADE)",
                    "The rows of every table with a foreign key to it are lost too.",
                    "which tables CASCADE empties is known only from the environment's catalog",
                )
            if table.env is not None:
                table.filters = [ast.A_Const(val=ast.Boolean(boolval=True))]

    def whole_table(
        self, kind: str, key: tuple[str, str], table: _Table, rv: ast.RangeVar, action: str,
        meaning: str, *, missing_ok: bool = False,
    ) -> None:
        def build() -> str:
            self.readable(key, table)
            return (
                f"SELECT {_count(self.filters(table))} AS found, count(*) AS total "
                f"FROM {self.relation_sql(table, rv)}"
            )

        self.add(kind, key, action, meaning, build, counts="rows are lost",
                 missing_ok=missing_ok)

    def on_UpdateStmt(self, stmt: ast.UpdateStmt) -> None:
        rv = stmt.relation
        key = self.key(rv)
        table = self.state(key)
        targets = list(stmt.targetList or ())
        columns = list(dict.fromkeys(t.name for t in targets))
        action = f"updates {self.shown(key)} ({', '.join(_name(c) for c in columns)})"
        added = all((self.value(table, c) or _Column(None)).added for c in columns)

        def build() -> str:
            if added:
                raise _Skip  # only fills columns the pending statements added
            return self.matched(key, table, rv, stmt, stmt.fromClause)

        self.add(
            UPDATE, key, action,
            "The rows it matches have their old values overwritten.",
            build, counts="rows are overwritten",
        )
        if table.env is None or table.opaque:
            return
        simple = not (
            stmt.fromClause or stmt.withClause or _has(stmt.whereClause, ast.SubLink)
            or any(
                t.indirection or isinstance(t.val, (ast.MultiAssignRef, ast.SetToDefault))
                or _has(t.val, ast.SubLink) for t in targets
            )
        )
        if not simple:
            table.opaque = self.changed_by_this()
            return
        names = [rv.alias.aliasname] if rv.alias else []
        try:
            where = (
                self.rewrite(stmt.whereClause, key, table, names=names)
                if stmt.whereClause is not None else None
            )
        except (_Skip, _NotDerived):
            table.opaque = self.changed_by_this()
            return
        new: dict[str, _Column] = {}
        for target in targets:
            old = self.value(table, target.name)
            if old is None:
                continue
            try:
                value: ast.Node | None = self.rewrite(target.val, key, table, names=names)
            except _Skip:
                value = None
            except _NotDerived:
                table.opaque = self.changed_by_this()
                return
            if value is not None and where is not None:
                value = None if old.expr is None else ast.CaseExpr(
                    args=(ast.CaseWhen(expr=copy.deepcopy(where), result=value),),
                    defresult=copy.deepcopy(old.expr),
                )
            new[target.name] = _Column(value, added=old.added)
        table.columns.update(new)

    def on_DeleteStmt(self, stmt: ast.DeleteStmt) -> None:
        rv = stmt.relation
        key = self.key(rv)
        table = self.state(key)

        def build() -> str:
            return self.matched(key, table, rv, stmt, stmt.usingClause)

        self.add(
            DELETE, key, f"deletes from {self.shown(key)}",
            "The rows it matches are lost.", build, counts="rows are deleted",
        )
        if table.env is None or table.opaque:
            return
        if stmt.usingClause or stmt.withClause or _has(stmt.whereClause, ast.SubLink):
            table.opaque = self.changed_by_this()
            return
        if stmt.whereClause is None:
            table.filters.append(ast.A_Const(val=ast.Boolean(boolval=True)))
            return
        names = [rv.alias.aliasname] if rv.alias else []
        try:
            where = self.rewrite(stmt.whereClause, key, table, names=names)
        except (_Skip, _NotDerived):
            table.opaque = self.changed_by_this()
            return
        table.filters.append(where)

    def matched(
        self, key: tuple[str, str], table: _Table, rv: ast.RangeVar, stmt: Any,
        joined: Sequence[ast.Node] | None,
    ) -> str:
        """Query counting the rows an UPDATE or DELETE matches (with FROM/USING as EXISTS)."""
        self.readable(key, table)
        if stmt.withClause is not None:
            raise _NotDerived("a WITH clause is not translated")
        if isinstance(stmt.whereClause, ast.CurrentOfExpr):
            raise _NotDerived("WHERE CURRENT OF a cursor is not translated")
        alias = rv.alias.aliasname if rv.alias else None
        if joined or _has(stmt.whereClause, ast.SubLink):
            # Kept as written (tables qualified): the target must be the environment's own.
            if not table.plain(key):
                raise _NotDerived(
                    f"it joins or queries other rows after earlier pending statements "
                    f"changed {self.shown(key)}"
                )
            where = (
                _sql(self.resolve_relations(stmt.whereClause))
                if stmt.whereClause is not None else None
            )
            if joined:
                items = ", ".join(_sql(self.resolve_relations(item)) for item in joined)
                cond = f"EXISTS (SELECT 1 FROM {items}" + (
                    f" WHERE {where})" if where else ")"
                )
            else:
                cond = f"({where})"
            target = self.relation_sql(table, rv, _name(alias) if alias else None)
            return f"SELECT {_count([cond])} AS found, count(*) AS total FROM {target}"
        conds = self.filters(table)
        if stmt.whereClause is not None:
            names = [alias] if alias else []
            conds.append(_p(self.rewrite(stmt.whereClause, key, table, names=names)))
        return (
            f"SELECT {_count(conds)} AS found, count(*) AS total "
            f"FROM {self.relation_sql(table, rv)}"
        )

    def on_InsertStmt(self, stmt: ast.InsertStmt) -> None:
        self.writes_rows(INSERT, stmt.relation, "inserts into",
                         "Inserted rows that collide with the table's rows (a unique key, a "
                         "foreign key) make the statement fail.",
                         "whether inserted rows collide with the environment's is not "
                         "translated into a query")

    def on_MergeStmt(self, stmt: ast.MergeStmt) -> None:
        self.writes_rows(MERGE, stmt.relation, "merges into",
                         "The rows it matches are updated or deleted.",
                         "MERGE is not translated into a query")

    def on_CopyStmt(self, stmt: ast.CopyStmt) -> None:
        if stmt.is_from and stmt.relation is not None:
            self.writes_rows(INSERT, stmt.relation, "copies rows into",
                             "Copied rows that collide with the table's rows make the "
                             "statement fail.",
                             "COPY FROM is not translated into a query")

    def writes_rows(self, kind: str, rv: ast.RangeVar, verb: str, meaning: str, why: str) -> None:
        key = self.key(rv)
        table = self.state(key)
        if table.env is None:
            return
        self.not_derived(kind, key, f"{verb} {self.shown(key)}", meaning, why)
        table.opaque = self.changed_by_this()

    def on_DoStmt(self, stmt: ast.DoStmt) -> None:
        self.procedural("runs a DO block")

    def on_CallStmt(self, stmt: ast.CallStmt) -> None:
        self.procedural(f"calls {_sql(stmt.funccall)}")

    def procedural(self, action: str) -> None:
        self.not_derived(
            PROCEDURAL, (self.schema, "*"), action,
            "Procedural code may change or fail on any table's rows.",
            "what procedural code does is not known from its text",
            relation="*",
        )
        self.everything_changed = self.changed_by_this()
        for table in self.tables.values():
            if table.env is not None:
                table.opaque = self.everything_changed

    def on_AlterDomainStmt(self, stmt: ast.AlterDomainStmt) -> None:
        adds = stmt.subtype == "C" and isinstance(stmt.def_, ast.Constraint) and not (
            stmt.def_.skip_validation
        )
        if adds or stmt.subtype in ("O", "V"):
            domain = ".".join(_name(n.sval) for n in stmt.typeName)
            self.not_derived(
                DOMAIN, (self.schema, domain), f"constrains domain {domain}",
                "Values of columns of that domain that violate the constraint make the "
                "statement fail.",
                "which columns use the domain is known only from the environment's catalog",
                relation=domain,
            )


def _object_name(obj: Any) -> str:
    """A dropped object's name as written (a name, a dotted name or a type)."""
    if isinstance(obj, ast.String):
        return _name(obj.sval)
    if isinstance(obj, tuple):
        return ".".join(_name(n.sval) for n in obj if isinstance(n, ast.String))
    return _sql(obj)


def _statements_of(sql: str) -> list[tuple[ast.Node, str]]:
    """The statements in ``sql`` with their own text (an empty list when it does not parse)."""
    try:
        parsed = pglast.parse_sql(sql)
    except ParseError:
        return []
    out = []
    for raw in parsed:
        end = raw.stmt_location + raw.stmt_len if raw.stmt_len else len(sql)
        out.append((raw.stmt, sql[raw.stmt_location:end].strip()))
    return out


def derive_prechecks(
    statements: Sequence[ExecutedStatement], *, schema: str = "public"
) -> list[PreCheck]:
    """Read-only checks for the data-dependent statements among ``statements``, in order.

    Why: a rehearsal on a schema-only copy cannot see what the environment's rows will do
    to the statements (NULLs, duplicates, values that do not cast) nor what they will
    lose; these checks ask the environment itself, without writing. ``statements`` are
    what the rehearsal executed (several statements in one ``sql`` are split); unqualified
    tables are in ``schema``. Statements that do not depend on the rows, or that do not
    parse, give nothing; those that do but cannot be translated give a check with
    ``query=None`` and a reason (see the module documentation for the model of earlier
    statements' effects).
    """
    deriver = _Deriver(schema)
    for executed in statements:
        for stmt, text in _statements_of(executed.sql):
            deriver.statement(executed.revision, stmt, text)
    return deriver.out


def _message(check: PreCheck, found: int | None, total: int | None, groups: int | None) -> str:
    """What the counts say, in words."""
    if check.kind == UNIQUE:
        rows = f" ({found} rows)" if groups else ""
        return f"{groups} duplicate groups{rows} among {total} rows"
    if check.kind in (DROP_TABLE, TRUNCATE):
        return f"{found} rows are lost"
    return f"{found} of {total} {check.counts}"


def _label(check: PreCheck) -> str:
    return f"{check.revision or '(before the first revision)'} {check.action}"


def _as_int(value: Any) -> int | None:
    return None if value is None else int(value)


def run_prechecks(
    url: str,
    prechecks: Sequence[PreCheck],
    *,
    statement_timeout_s: float,
    environment: str,
) -> list[PreCheckResult]:
    """Run ``prechecks`` on the environment at ``url``, read-only; one result per check.

    Why: it is the environment's own rows that decide whether the apply fails or loses
    data; a check must never change them, nor let one slow or failing check hide the
    others. All queries run in ONE transaction set ``READ ONLY`` (the server refuses any
    write in it) with ``SET LOCAL statement_timeout``, each in its own savepoint: a
    timeout, a cast the server refuses or a missing table becomes that check's result and
    the next one runs. The transaction is rolled back at the end. The queries go to the
    driver as they are, without parameters (so a ``%`` in them is never read as a
    placeholder). ``environment`` names the environment in messages (the URL never
    appears in one); a server that cannot be reached, or a connection lost on the way,
    raises one :class:`~abparts_ops.core.errors.DatabaseError` line.
    """
    if not statement_timeout_s or statement_timeout_s <= 0:
        raise ValueError(
            f"{environment}: statement_timeout_s must be a positive number of seconds, "
            f"not {statement_timeout_s!r}."
        )
    timeout_ms = max(1, int(round(statement_timeout_s * 1000)))
    results: list[PreCheckResult] = [
        PreCheckResult(check, NOT_DERIVED, f"{_label(check)}: {check.reason}")
        for check in prechecks
    ]
    todo = [i for i, check in enumerate(prechecks) if check.query is not None]
    if not todo:
        return results
    connection = connect_dbapi(url, label=environment)
    try:
        with connection.cursor() as cursor:
            _execute(cursor, "BEGIN", url, environment)
            _execute(cursor, "SET TRANSACTION READ ONLY", url, environment)
            _execute(cursor, f"SET LOCAL statement_timeout = {timeout_ms}", url, environment)
            for index in todo:
                results[index] = _run_one(
                    cursor, prechecks[index], url, statement_timeout_s, environment
                )
            _execute(cursor, "ROLLBACK", url, environment)
    finally:
        connection.close()
    return results


def _execute(cursor: Any, sql: str, url: str, environment: str) -> None:
    """Run one statement of the runner's own; any error is the environment's, in one line."""
    try:
        cursor.execute(sql)
    except psycopg2.Error as exc:
        raise explain_error(exc, label=environment, url=url) from None


def _run_one(
    cursor: Any, check: PreCheck, url: str, timeout_s: float, environment: str
) -> PreCheckResult:
    """One check in its own savepoint; its error (if any) becomes its result."""
    label = _label(check)
    started = time.monotonic()
    _execute(cursor, "SAVEPOINT precheck", url, environment)
    try:
        cursor.execute(check.query)
        fetched = cursor.fetchone() if cursor.description else None
        row = (
            dict(zip([c.name for c in cursor.description], fetched, strict=True))
            if fetched is not None else None
        )
    except psycopg2.Error as exc:
        seconds = time.monotonic() - started
        code = exc.pgcode
        if code is None or cursor.connection.closed:
            raise explain_error(exc, label=environment, url=url) from None
        _execute(cursor, "ROLLBACK TO SAVEPOINT precheck", url, environment)
        diag = getattr(exc, "diag", None)
        text = getattr(diag, "message_primary", None) or (str(exc).strip().splitlines() or [
            code
        ])[0]
        text = scrub(text, url)
        if check.missing_ok and code in (_UNDEFINED_TABLE, _UNDEFINED_COLUMN):
            return PreCheckResult(
                check, PASSED,
                f"{label}: not on the environment ({text}); IF EXISTS makes it a no-op",
                error=text, seconds=seconds,
            )
        if check.failure and code[:2] in _DATA_ERROR_CLASSES:
            return PreCheckResult(
                check, FOUND, f"{label}: the environment's rows make it fail: {text}",
                error=text, seconds=seconds,
            )
        if code == _TIMEOUT_SQLSTATE:
            text = f"the query ran longer than the {timeout_s:g}s statement timeout"
        return PreCheckResult(
            check, ERROR, f"{label}: not checked: {text}", error=text, seconds=seconds
        )
    _execute(cursor, "RELEASE SAVEPOINT precheck", url, environment)
    seconds = time.monotonic() - started
    if row is None:
        text = "the query returned no row"
        return PreCheckResult(
            check, ERROR, f"{label}: not checked: {text}", error=text, seconds=seconds
        )
    found, total = _as_int(row.get("found")), _as_int(row.get("total"))
    groups = _as_int(row.get("groups"))
    status = FOUND if found else PASSED
    return PreCheckResult(
        check, status, f"{label}: {_message(check, found, total, groups)}",
        found=found, total=total, groups=groups, seconds=seconds,
    )
