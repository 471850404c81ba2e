"""The ``sequence`` kind: standalone sequences (identity sequences belong to their column).

Created by ``CREATE SEQUENCE`` with the options that differ from PostgreSQL's defaults
(:func:`sequence_options`, shared with identity columns and the baseline's
``sa.Sequence``), then ``ALTER SEQUENCE ... OWNED BY`` once the tables exist; dropped by
``DROP SEQUENCE`` unless its owning column's table takes it along. A change of its data
type is destructive.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from abparts_ops.core.quoting import quote_ident
from abparts_ops.core.schema.kind_order import PHASE
from abparts_ops.core.schema.kinds.base import REL_CATALOGS, Kind, comment_section
from abparts_ops.core.schema.steps import Section, SnapshotView, Step, section

SEQUENCES_SQL = r"""
  -- standalone sequences (identity sequences belong to their column)
  SELECT 'sequence', r.relname,
         CASE WHEN so.excluded THEN so.relname WHEN r.excluded THEN r.relname END,
         json_build_object(
           'data_type', format_type(s.seqtypid, NULL),
           'start', s.seqstart, 'increment', s.seqincrement,
           'min_value', s.seqmin, 'max_value', s.seqmax,
           'cache', s.seqcache, 'cycle', s.seqcycle,
           'owned_by', CASE WHEN so.relname IS NOT NULL
                            THEN so.relname || '.' || so.attname END,
           'comment', d.description)
  FROM rels r
  JOIN pg_sequence s ON s.seqrelid = r.oid
  LEFT JOIN seq_owner so ON so.seqoid = r.oid AND so.deptype = 'a'
  LEFT JOIN descr d ON d.objoid = r.oid AND d.objsubid = 0
  WHERE r.relkind = 'S'
    AND NOT EXISTS (SELECT 1 FROM seq_owner i WHERE i.seqoid = r.oid AND i.deptype = 'i')
"""

SEQUENCES_ADDRESS = r"""
  -- an identity sequence stands for its table (it is part of the column)
  SELECT 'pg_class'::regclass, r.oid,
         CASE WHEN i.seqoid IS NULL THEN 'sequence' ELSE 'table' END,
         CASE WHEN i.seqoid IS NULL THEN r.relname ELSE i.relname END
  FROM rels r LEFT JOIN seq_owner i ON i.seqoid = r.oid AND i.deptype = 'i'
  WHERE r.relkind = 'S'
"""


_TYPE_LIMITS = {
    "smallint": (-32768, 32767),
    "integer": (-2147483648, 2147483647),
    "bigint": (-9223372036854775808, 9223372036854775807),
}


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


def sequence_clauses(options: Mapping[str, Any]) -> list[str]:
    """The clauses of :func:`sequence_options` as ``CREATE SEQUENCE`` / ``AS IDENTITY``
    spell them (``INCREMENT BY 10``, ``CYCLE``)."""
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


def identity_type(type_text: str) -> str:
    """The integer type whose limits an identity column's sequence has (else bigint)."""
    return type_text if type_text in _TYPE_LIMITS else "bigint"


def _sequence_ddl(snapshot: SnapshotView) -> list[Section]:
    steps = []
    owned = []
    columns = snapshot.kind("column")
    for name in sorted(snapshot.kind("sequence")):
        seq = snapshot.kind("sequence")[name]
        clauses = [f"AS {seq['data_type']}"] + sequence_clauses(
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
        comment_section(snapshot, "sequence", lambda name, _a: f"SEQUENCE {quote_ident(name)}"),
    ]


def _drop_sequences(snapshot: SnapshotView) -> list[Section]:
    sequences = snapshot.kind("sequence")
    columns = snapshot.kind("column")
    return [section(PHASE["sequence"], "Sequences", "sequence", [
        Step(f"DROP SEQUENCE {quote_ident(name)}", (("sequence", name),))
        for name in sorted(sequences, reverse=True)
        if (sequences[name].get("owned_by") or "") not in columns
    ])]


def _sequence_change(fields: Mapping[str, tuple[Any, Any]]) -> bool:
    """Another data type can fail on the values the environment's sequence has reached."""
    return "data_type" in fields


#: This module's kinds, with their renderers (collected by the registry, in this order).
REGISTERED: tuple[Kind, ...] = (
    Kind(
        "sequence", "sequence", "sequences", "name",
        "data_type, start, increment, min_value, max_value, cache, cycle, owned_by "
        "(table.column or None), comment",
        SEQUENCES_SQL, REL_CATALOGS + ("pg_sequence", "pg_type"),
        PHASE["sequence"], 0, "op.execute", extra_destructive=True,
        address=SEQUENCES_ADDRESS, create=_sequence_ddl, drop=_drop_sequences,
        changed_destructive=_sequence_change,
    ),
)
