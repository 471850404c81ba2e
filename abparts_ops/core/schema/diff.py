"""Differences between a reference snapshot and an actual one, classified and rendered.

Every object present on one side only is ``missing`` (in the reference, not in the actual
database) or ``extra`` (in the actual database only); an object on both sides with other
attributes is ``changed``, with the attributes that differ. A change is *destructive*
when bringing the actual database back to the reference would lose data or could fail on
existing rows (dropping a table or column, changing a type, tightening nullability,
removing enum labels, building again a unique index or key that is INVALID here), or
when an environment lacks a trigger or a row-level security policy of the reference (its
data is then no longer guarded as the reference guards it). An index that is INVALID on
one side only (a failed ``CREATE INDEX CONCURRENTLY``, see
:mod:`abparts_ops.core.schema.validity`) is a change whose detail says so and how to
repair it, never an equal object. The diff is empty if and only if the fingerprints are
equal.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from abparts_ops.core.schema.kinds import BY_NAME, REGISTRY
from abparts_ops.core.schema.model import KINDS, Snapshot
from abparts_ops.core.schema.validity import VALIDITY_FIELD, invalid_advice, is_invalid

# From the registry: kinds whose extra objects hold data (dropping them would lose it),
# and kinds whose missing objects silently remove a safeguard (a trigger, a policy); a
# change of attributes is judged by the kind's own rule (Kind.changed_destructive).
_DATA_KINDS = {kind.name for kind in REGISTRY if kind.extra_destructive}
_SAFEGUARD_KINDS = {kind.name for kind in REGISTRY if kind.missing_destructive}


@dataclass(frozen=True)
class Change:
    """One object that differs. ``fields`` maps attribute -> (reference, actual).

    ``notes`` maps an attribute to a sentence that describes it better than its two
    values do (an index's validity: what INVALID means here and how to repair it).
    """

    kind: str
    key: str
    change: str
    destructive: bool
    fields: Mapping[str, tuple[Any, Any]] = field(default_factory=dict)
    notes: Mapping[str, str] = field(default_factory=dict)

    def describe(self) -> str:
        """One readable line, e.g. ``default: 'a'::text -> 'b'::text``."""
        if self.change in ("missing", "extra"):
            where = (
                "in the reference, not in this database"
                if self.change == "missing"
                else "in this database, not in the reference"
            )
            return "; ".join([where, *self.notes.values()])
        parts = [
            self.notes[name] if name in self.notes else f"{name}: {_short(ref)} → {_short(act)}"
            for name, (ref, act) in self.fields.items()
        ]
        return "; ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return {
            "kind": self.kind,
            "key": self.key,
            "change": self.change,
            "destructive": self.destructive,
            "fields": {k: {"reference": r, "actual": a} for k, (r, a) in self.fields.items()},
            "notes": dict(self.notes),
        }


def _short(value: Any, limit: int = 160) -> str:
    text = json.dumps(value, ensure_ascii=False) if not isinstance(value, str) else value
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _is_destructive(kind: str, change: str, fields: Mapping[str, tuple[Any, Any]]) -> bool:
    if change == "extra":
        return kind in _DATA_KINDS
    if change == "missing":
        return kind in _SAFEGUARD_KINDS
    entry = BY_NAME.get(kind)  # each kind's rule for a change, beside its read
    if entry is None or entry.changed_destructive is None:
        return False
    return entry.changed_destructive(fields)


def _validity_notes(
    kind: str,
    reference: Snapshot,
    ref: Mapping[str, Any] | None,
    actual: Snapshot,
    act: Mapping[str, Any] | None,
) -> dict[str, str]:
    """The note on an index (or key) that is INVALID on one side (empty when on neither)."""
    ref_invalid, act_invalid = is_invalid(kind, ref), is_invalid(kind, act)
    if ref_invalid == act_invalid:
        return {}
    name = VALIDITY_FIELD[kind]
    if act_invalid:
        assert act is not None
        return {name: invalid_advice(actual, kind, act)}
    assert ref is not None
    here = "" if act is None else "; valid in this database"
    return {name: f"in the reference, {invalid_advice(reference, kind, ref)}{here}"}


def _invalid_unique(kind: str, act: Mapping[str, Any]) -> bool:
    """An INVALID unique index or key here: building it again can fail on existing rows."""
    return is_invalid(kind, act) and (kind != "index" or bool(act.get("unique")))


@dataclass(frozen=True)
class SchemaDiff:
    """All differences between ``reference`` and ``actual`` snapshots."""

    reference_fingerprint: str
    actual_fingerprint: str
    changes: tuple[Change, ...]
    reference_label: str = "reference"
    actual_label: str = "actual"

    @property
    def is_empty(self) -> bool:
        """True when nothing differs (equivalently: the fingerprints are equal)."""
        return not self.changes

    @property
    def destructive_count(self) -> int:
        """How many changes would lose data or could fail on existing rows."""
        return sum(1 for c in self.changes if c.destructive)

    def counts(self) -> dict[str, int]:
        """Changes per type: missing, extra, changed, destructive, total."""
        by_type = Counter(c.change for c in self.changes)
        return {
            "missing": by_type.get("missing", 0),
            "extra": by_type.get("extra", 0),
            "changed": by_type.get("changed", 0),
            "destructive": self.destructive_count,
            "total": len(self.changes),
        }

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form with counts and every change."""
        return {
            "reference": self.reference_label,
            "actual": self.actual_label,
            "reference_fingerprint": self.reference_fingerprint,
            "actual_fingerprint": self.actual_fingerprint,
            "counts": self.counts(),
            "changes": [c.to_dict() for c in self.changes],
        }

    def to_json(self) -> str:
        """The JSON form as text."""
        return json.dumps(self.to_dict(), indent=1, ensure_ascii=False, sort_keys=True)

    def to_markdown(self, max_rows: int = 200) -> str:
        """A readable report: a summary line and one table row per change."""
        if self.is_empty:
            return (
                f"**No schema differences**: {self.actual_label} equals {self.reference_label} "
                f"(fingerprint `{self.actual_fingerprint[:12]}`)."
            )
        counts = self.counts()
        lines = [
            f"**{counts['total']} schema difference(s)** between {self.reference_label} "
            f"(`{self.reference_fingerprint[:12]}`) and {self.actual_label} "
            f"(`{self.actual_fingerprint[:12]}`): {counts['missing']} missing, "
            f"{counts['extra']} extra, {counts['changed']} changed, "
            f"{counts['destructive']} destructive.",
            "",
            "| change | kind | object | detail |",
            "|---|---|---|---|",
        ]
        for change in self.changes[:max_rows]:
            flag = " ⚠" if change.destructive else ""
            detail = change.describe().replace("|", "\\|")
            lines.append(f"| {change.change}{flag} | {change.kind} | `{change.key}` | {detail} |")
        if len(self.changes) > max_rows:
            lines.append(f"| … | | | and {len(self.changes) - max_rows} more |")
        return "\n".join(lines)


def _tables_with_added_or_dropped_columns(reference: Snapshot, actual: Snapshot) -> set[str]:
    ref_columns = reference.kind("column")
    act_columns = actual.kind("column")
    changed = set(ref_columns).symmetric_difference(act_columns)
    return {key.split(".", 1)[0] for key in changed}


def diff_snapshots(
    reference: Snapshot,
    actual: Snapshot,
    *,
    reference_label: str = "reference",
    actual_label: str = "actual",
) -> SchemaDiff:
    """Compare two snapshots object by object (see the module docstring).

    Snapshots with the same fingerprint (the sha256 of their schema and objects) have no
    difference: that is said without walking their objects (at 5,000 tables, seconds and
    memory spent to find nothing).
    """
    if reference.fingerprint == actual.fingerprint:
        return SchemaDiff(
            reference_fingerprint=reference.fingerprint,
            actual_fingerprint=actual.fingerprint,
            changes=(),
            reference_label=reference_label,
            actual_label=actual_label,
        )
    changes: list[Change] = []
    if reference.schema != actual.schema:
        changes.append(
            Change("schema", "name", "changed", False, {"name": (reference.schema, actual.schema)})
        )
    shifted = _tables_with_added_or_dropped_columns(reference, actual)
    kinds = list(KINDS) + sorted((set(reference.objects) | set(actual.objects)) - set(KINDS))
    for kind in kinds:
        ref_objects = reference.kind(kind)
        act_objects = actual.kind(kind)
        for key in sorted(set(ref_objects) | set(act_objects)):
            ref = ref_objects.get(key)
            act = act_objects.get(key)
            if ref == act:
                continue
            notes = (
                _validity_notes(kind, reference, ref, actual, act) if kind in VALIDITY_FIELD else {}
            )
            if act is None:
                destructive = _is_destructive(kind, "missing", {})
                changes.append(Change(kind, key, "missing", destructive, notes=notes))
            elif ref is None:
                destructive = _is_destructive(kind, "extra", {})
                changes.append(Change(kind, key, "extra", destructive, notes=notes))
            else:
                fields = {
                    name: (ref.get(name), act.get(name))
                    for name in sorted(set(ref) | set(act))
                    if ref.get(name) != act.get(name)
                }
                if kind == "column" and set(fields) == {"position"} and ref["table"] in shifted:
                    continue  # only moved because a column before it is missing or extra
                destructive = _is_destructive(kind, "changed", fields) or (
                    VALIDITY_FIELD.get(kind) in fields and _invalid_unique(kind, act)
                )
                changes.append(Change(kind, key, "changed", destructive, fields, notes))
    return SchemaDiff(
        reference_fingerprint=reference.fingerprint,
        actual_fingerprint=actual.fingerprint,
        changes=tuple(changes),
        reference_label=reference_label,
        actual_label=actual_label,
    )
