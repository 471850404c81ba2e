"""Quoting of SQL names, in one place, one meaning per name.

- :func:`quote_ident` quotes exactly when PostgreSQL's own ``quote_ident`` would (the
  canonical DDL and the baseline are compared as text with what PostgreSQL prints);
- :func:`quote_always` always quotes (statements built at run time, where a name that
  reads well unquoted gains nothing);
- :func:`quote_collation` always quotes a collation (``"C"``, ``"en_US"``);
- :func:`quote_literal` makes a standard SQL string literal (``'it''s'``).
"""

from __future__ import annotations

import re

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

#: A name PostgreSQL prints unquoted unless it is a keyword.
SAFE_IDENT = re.compile(r"^[a-z_][a-z0-9_]*$")


def quote_ident(name: str) -> str:
    """Quote an identifier exactly when PostgreSQL's ``quote_ident`` would."""
    if SAFE_IDENT.match(name) and name not in QUOTED_KEYWORDS:
        return name
    return '"' + name.replace('"', '""') + '"'


def quote_collation(name: str) -> str:
    """A collation name, always double-quoted (``"C"``, ``"en_US"``, ``"und-x-icu"``)."""
    return '"' + name.replace('"', '""') + '"'


def quote_always(name: str) -> str:
    """Quote a name for SQL text, always (embedded quotes doubled)."""
    return '"' + name.replace('"', '""') + '"'


def quote_literal(text: str) -> str:
    """A standard SQL string literal (``'...'`` with embedded quotes doubled)."""
    return "'" + text.replace("'", "''") + "'"
