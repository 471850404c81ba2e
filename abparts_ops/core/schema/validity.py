"""INVALID indexes: how the snapshot records them, and what to tell a person about one.

A failed ``CREATE INDEX CONCURRENTLY`` leaves behind an index that PostgreSQL marks
INVALID (``pg_index.indisvalid``, or ``indisready``, false): it owns its name, may still
cost every write, and answers no query; a unique one guarantees nothing about the rows
already there. A partitioned index created ``ON ONLY`` the parent, or the index of a key
added to ``ONLY`` a partitioned table, is INVALID too until every partition's index is
attached to it. An environment with such an index does not have the schema of one whose
index was built, so it must never look in sync.

The snapshot records it as ``"valid": false`` on the index, and as ``"index_valid":
false`` on a primary key, unique or exclusion constraint whose index is INVALID (see
:mod:`abparts_ops.core.schema.kinds`). A valid index has no such attribute: the rows,
fingerprints and probe fingerprints of schemas without an INVALID index are the ones
they were before validity was read, and the snapshot format version did not change (a
stored version 2 snapshot never held an INVALID index it could tell).

Who uses it: the diff names a validity difference with :func:`invalid_advice` (and a
unique one is destructive: building it again can fail on the rows already there); the
canonical DDL (:func:`abparts_ops.core.schema.ddl.render_ddl`) warns in its header, as
``pg_dump`` leaves such an index out; the baseline renderer refuses a snapshot that has
one (:func:`invalid_objects`), since it would build a valid index the source does not
have; and the ``round_trip`` proof fails on it besides.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from abparts_ops.core.schema.model import Snapshot

#: The attribute that says "INVALID" (false; absent when valid), per kind that has one.
VALIDITY_FIELD: Mapping[str, str] = {
    "index": "valid",
    "primary_key": "index_valid",
    "unique": "index_valid",
    "exclusion": "index_valid",
}

FAILED_BUILD = (
    "INVALID (a failed CREATE INDEX CONCURRENTLY): drop it with DROP INDEX CONCURRENTLY "
    "and build it again"
)
NOT_ATTACHED = (
    "INVALID (a partitioned index that is not attached on every partition): create each "
    "missing partition's index and attach it with ALTER INDEX ... ATTACH PARTITION, or "
    "drop it and create it again without ONLY"
)
KEY_NOT_ATTACHED = (
    "its index is INVALID (a key added to ONLY the partitioned table, not attached on "
    "every partition): add the key to each partition and attach its index with ALTER "
    "INDEX ... ATTACH PARTITION"
)
KEY_INVALID = "its index is INVALID: rebuild it with REINDEX INDEX"


def is_invalid(kind: str, attrs: Mapping[str, Any] | None) -> bool:
    """True when ``attrs`` (an object of ``kind``) records an INVALID index."""
    name = VALIDITY_FIELD.get(kind)
    return name is not None and attrs is not None and attrs.get(name) is False


def _on_partitioned_table(snapshot: Snapshot, attrs: Mapping[str, Any]) -> bool:
    table = snapshot.kind("table").get(str(attrs.get("table")))
    if table is not None:
        return bool(table.get("partitioned"))
    return " ON ONLY " in str(attrs.get("definition") or "")


def invalid_advice(snapshot: Snapshot, kind: str, attrs: Mapping[str, Any]) -> str:
    """What an INVALID index (or a key with one) is and how to repair it, in one phrase.

    ``snapshot`` is the one ``attrs`` comes from (it says whether the table is
    partitioned, which decides the repair).
    """
    partitioned = _on_partitioned_table(snapshot, attrs)
    if kind == "index":
        return NOT_ATTACHED if partitioned else FAILED_BUILD
    return KEY_NOT_ATTACHED if partitioned else KEY_INVALID


def invalid_objects(snapshot: Snapshot) -> list[tuple[str, str, str]]:
    """Every INVALID index of ``snapshot``, and every key whose index is INVALID.

    ``(kind, key, advice)`` in kind then key order.
    """
    found = []
    for kind in VALIDITY_FIELD:
        objects = snapshot.kind(kind)
        for key in sorted(objects):
            if is_invalid(kind, objects[key]):
                found.append((kind, key, invalid_advice(snapshot, kind, objects[key])))
    return found
