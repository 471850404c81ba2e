"""Exclusion patterns: exact names or shell-style globs, matched by PostgreSQL itself.

Patterns are compiled to anchored POSIX regular expressions so that the catalog query
(and therefore the cheap probe) applies exactly the same exclusions as the snapshot.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from abparts_ops.core.errors import ConfigError

_REGEX_SPECIAL = set(".^$+{}()|\\")


def glob_to_regex(pattern: str) -> str:
    """Translate a glob (``*``, ``?``, ``[abc]``, ``[!abc]``) to an anchored POSIX regex.

    Raises :class:`ConfigError` for an empty pattern or an unclosed ``[``.
    """
    if not pattern or not pattern.strip():
        raise ConfigError("exclude: an empty pattern is not allowed (remove it from the list).")
    out = ["^"]
    i = 0
    while i < len(pattern):
        char = pattern[i]
        if char == "*":
            out.append(".*")
        elif char == "?":
            out.append(".")
        elif char == "[":
            end = pattern.find("]", i + 2 if pattern[i + 1 : i + 2] in ("!", "]") else i + 1)
            if end == -1:
                raise ConfigError(
                    f"exclude: pattern {pattern!r} has an unclosed '[' (close it with ']')."
                )
            body = pattern[i + 1 : end]
            if body.startswith("!"):
                body = "^" + body[1:]
            out.append("[" + body.replace("\\", "\\\\") + "]")
            i = end
        elif char in _REGEX_SPECIAL:
            out.append("\\" + char)
        else:
            out.append(char)
        i += 1
    out.append("$")
    regex = "".join(out)
    try:
        re.compile(regex)
    except re.error as exc:
        raise ConfigError(f"exclude: pattern {pattern!r} is not a valid glob ({exc}).") from exc
    return regex


def compile_patterns(patterns: Iterable[str]) -> list[str]:
    """Compile every pattern with :func:`glob_to_regex`, keeping their order."""
    return [glob_to_regex(p) for p in patterns]


def is_excluded(name: str, patterns: Iterable[str]) -> bool:
    """True when ``name`` matches one of the glob ``patterns`` (same rule as the SQL)."""
    return any(re.match(glob_to_regex(p), name) for p in patterns)


def unused_patterns(patterns: Iterable[str], names: Iterable[str]) -> list[str]:
    """The ``patterns`` that match none of ``names`` (in the patterns' order).

    ``names`` are the tables the snapshot left out; a pattern matching none of them is
    most likely a typo (``knowledge_document`` for ``knowledge_documents``), and the
    table it meant is then compared after all.
    """
    present = list(names)
    return [p for p in patterns if not any(re.match(glob_to_regex(p), n) for n in present)]


def autogenerate_filters(patterns: Iterable[str], schema: str) -> dict[str, Any]:
    """Alembic ``include_name`` / ``include_object`` options that apply the exclusions.

    For every autogenerate comparison against the models (``models_match``, the smoke
    test): only ``schema`` is compared, and an excluded table is neither reported
    missing from the database nor from the models.
    """
    patterns = list(patterns)

    def include_name(name: str | None, type_: str, parent_names: Any) -> bool:
        if type_ == "schema":
            return name in (None, schema)
        if type_ == "table" and name is not None:
            return not is_excluded(name, patterns)
        return True

    def include_object(obj: Any, name: str | None, type_: str, reflected: bool, other: Any):
        if type_ == "table" and name is not None:
            return not is_excluded(name, patterns)
        return True

    return {"include_name": include_name, "include_object": include_object}
