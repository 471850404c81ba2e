"""A small formatter of Python call expressions, for the rendered baseline revision.

The baseline is plain, formatted Python: one call per object, printed on one line when it
fits within :data:`LINE_LENGTH`, else broken the way ruff/black break calls. SQL given to
``sa.text()`` / ``op.execute()`` is escaped so SQLAlchemy never reads ``:name`` as a bind
parameter.

Alembic's own renderer (``alembic.autogenerate.render_python_code``) is not used for the
calls themselves: it prints ``create_table`` arguments unindented and renders
``postgresql.ARRAY(Text())`` without the ``sa.`` prefix (a NameError when the file runs),
so the calls are formatted here in the shapes Alembic uses.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from abparts_ops.core.errors import MigrationError
from abparts_ops.core.reset.typemap import py_string

#: The line length of the rendered file (the project's ruff setting).
LINE_LENGTH = 100
#: How ``sa.text()`` finds bind parameters (``:name``); SQLAlchemy's own rule.
_BIND = re.compile(r"(?<![:\w\x5c]):(\w+)(?![:\w])", re.UNICODE)
_DIALECT = postgresql.psycopg2.dialect()


class Call:
    """A call expression, printed on one line when it fits, else one argument per line."""

    def __init__(self, func: str, *args: Any, **kwargs: Any) -> None:
        self.func = func
        self.args: list[tuple[str | None, Any]] = [(None, a) for a in args]
        self.args += [(k, v) for k, v in kwargs.items() if v is not None]

    def add(self, name: str | None, value: Any) -> Call:
        """Append a (keyword) argument; ``None`` values are skipped. Returns self."""
        if value is not None:
            self.args.append((name, value))
        return self


class ListExpr:
    """A list expression (``[a, b]``), broken like a call when it does not fit."""

    def __init__(self, items: Sequence[Any]) -> None:
        self.items = list(items)


def _flat(node: Any) -> str:
    if isinstance(node, Call):
        inner = ", ".join(_flat(v) if k is None else f"{k}={_flat(v)}" for k, v in node.args)
        return f"{node.func}({inner})"
    if isinstance(node, ListExpr):
        return "[" + ", ".join(_flat(i) for i in node.items) + "]"
    return str(node)


def _items(node: Call | ListExpr) -> list[tuple[str | None, Any]]:
    return node.args if isinstance(node, Call) else [(None, i) for i in node.items]


def fmt(node: Any, indent: int, used: int = 0, tail: int = 0) -> str:
    """Render ``node`` starting at column ``indent + used``, ``tail`` characters after it.

    The shapes are those of ruff/black: the whole call on one line; else its arguments on
    one line of their own; else one argument per line with a trailing comma (a lone
    argument is split recursively instead).
    """
    flat = _flat(node)
    if "\n" not in flat and indent + used + len(flat) + tail <= LINE_LENGTH:
        return flat
    if not isinstance(node, (Call, ListExpr)):
        return flat
    items = _items(node)
    opening, closing = (f"{node.func}(", ")") if isinstance(node, Call) else ("[", "]")
    if len(items) == 1 and items[0][0] is None and isinstance(items[0][1], str):
        if "\n" in items[0][1]:
            return f"{opening}{items[0][1]}{closing}"  # hug a triple-quoted string
    pad = " " * (indent + 4)
    end = " " * indent + closing
    body = ", ".join(_flat(v) if k is None else f"{k}={_flat(v)}" for k, v in items)
    if "\n" not in body and indent + 4 + len(body) <= LINE_LENGTH:
        return f"{opening}\n{pad}{body}\n{end}"
    if len(items) == 1:
        key, value = items[0]
        prefix = "" if key is None else f"{key}="
        return f"{opening}\n{pad}{prefix}{fmt(value, indent + 4, len(prefix))}\n{end}"
    lines = [opening]
    for key, value in items:
        prefix = "" if key is None else f"{key}="
        lines.append(f"{pad}{prefix}{fmt(value, indent + 4, len(prefix), 1)},")
    lines.append(end)
    return "\n".join(lines)


def sql_literal(text: str) -> str:
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


def sa_text(expr: str) -> Call:
    """``sa.text(...)`` of an SQL expression (a server default, an index key ...)."""
    return Call("sa.text", sql_literal(expr))


def op_execute(sql: str) -> Call:
    """``op.execute(...)`` of one SQL statement, for objects Alembic has no op for."""
    return Call("op.execute", sql_literal(sql))


def name_list(names: Sequence[str]) -> ListExpr:
    """A list of string literals (column names of a key, say)."""
    return ListExpr([py_string(n) for n in names])


def noqa_long_lines(chunk: str) -> str:
    """Mark lines longer than the limit (SQL strings cannot be broken) with ``noqa: E501``.

    In a chunk holding a triple-quoted string the mark goes on its last line, where ruff
    reads it for the whole string (a comment inside the string would change the SQL).
    """
    lines = chunk.split("\n")
    if all(len(line) <= LINE_LENGTH for line in lines):
        return chunk
    if '"""' in chunk:
        lines[-1] += "  # noqa: E501"
    else:
        lines = [line + "  # noqa: E501" if len(line) > LINE_LENGTH else line for line in lines]
    return "\n".join(lines)

