"""The normalized schema snapshot: what a PostgreSQL schema *is*, independent of history.

A :class:`Snapshot` holds, per object kind, a mapping from a stable key to the object's
attributes (plain JSON values). Keys are names (``users``), ``table.column`` for columns,
and ``table.constraint`` for constraints. The canonical form is the objects serialized
as JSON with sorted keys; the fingerprint is its sha256. Excluded objects are not
compared, but they are listed, each with a fingerprint of its own, so an excluded table
that changes is still visible.

The kinds and their attributes are declared in :mod:`abparts_ops.core.schema.kinds` and
listed below (this list is generated from that registry when the module loads).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from abparts_ops.core.errors import SchemaError
from abparts_ops.core.schema.kinds import KINDS, format_doc

FORMAT = "abparts-ops/schema-snapshot"
# 2: functions, triggers, policies, rules, composite and range types, privileges;
# tables record partitions and row security, extensions their version.
FORMAT_VERSION = 2

__doc__ = (__doc__ or "") + "\nKinds (key): attributes\n\n" + format_doc() + "\n"
__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "KINDS",
    "Snapshot",
    "canonical_json",
    "sha256_canonical",
    "sha256_text",
]

Attrs = Mapping[str, Any]
Objects = Mapping[str, Mapping[str, Attrs]]


def canonical_json(value: Any) -> str:
    """Serialize ``value`` deterministically: sorted keys, no whitespace, UTF-8 kept."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def sha256_text(text: str) -> str:
    """Hex sha256 of ``text`` encoded as UTF-8."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _canonical_parts(value: Any, depth: int) -> Iterator[str]:
    """:func:`canonical_json` of ``value`` in consecutive pieces, dicts opened ``depth``
    levels deep (a piece per entry below that), so the whole text is never held."""
    if depth <= 0 or not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        yield canonical_json(value)
        return
    yield "{"
    for i, key in enumerate(sorted(value)):
        head = ("," if i else "") + canonical_json(key) + ":"
        if depth == 1:
            yield head + canonical_json(value[key])
        else:
            yield head
            yield from _canonical_parts(value[key], depth - 1)
    yield "}"


def sha256_canonical(value: Any, depth: int = 3) -> str:
    """``sha256_text(canonical_json(value))``, computed piece by piece.

    The same digest, without building the text: at 5,000 tables a snapshot's canonical
    JSON is tens of MB, and its one-shot form (the encoder's chunks, the joined text and
    its UTF-8 bytes) took about three times that while a fingerprint was computed.
    ``depth`` is how many levels of dicts are walked (a snapshot's objects: kind, key).
    """
    digest = hashlib.sha256()
    for part in _canonical_parts(value, depth):
        digest.update(part.encode("utf-8"))
    return digest.hexdigest()


@dataclass(frozen=True)
class Snapshot:
    """A normalized, deterministic picture of one PostgreSQL schema.

    ``objects`` and ``excluded`` define equality and the fingerprint; ``source``,
    ``server_version`` and ``probe_fingerprint`` describe where it came from.
    ``probe_fingerprint`` is the server-side hash of the same catalog rows (see
    :mod:`abparts_ops.core.watch.probe`), kept so a cheap probe of another database can
    be compared with this snapshot without reading it again.

    ``dependencies`` (None when not read) are the dependencies PostgreSQL records between
    the compared objects, as ``(kind, key, ref_kind, ref_key)`` rows, sorted (see
    ``catalog_sql.DEPENDENCIES_SQL``; ``column_default`` stands for a column's default,
    ``outside`` for something the snapshot cannot hold). They say in which order the
    objects can be created and dropped (:mod:`abparts_ops.core.schema.order`); like the
    source, they are not part of equality or of the fingerprint.
    """

    schema: str
    objects: Objects
    excluded: Mapping[str, str] = field(default_factory=dict)
    source: str | None = field(default=None, compare=False)
    server_version: str | None = field(default=None, compare=False)
    probe_fingerprint: str | None = field(default=None, compare=False)
    dependencies: tuple[tuple[str, str, str, str], ...] | None = field(
        default=None, compare=False, repr=False
    )

    @cached_property
    def fingerprint(self) -> str:
        """sha256 of the canonical form of the compared objects (computed once)."""
        return sha256_canonical({"schema": self.schema, "objects": self.objects})

    def kind(self, kind: str) -> Mapping[str, Attrs]:
        """The objects of one kind, keyed by their stable key (empty when none)."""
        return self.objects.get(kind, {})

    def counts(self) -> dict[str, int]:
        """Number of objects per kind, every kind listed (zeros included)."""
        return {kind: len(self.objects.get(kind, {})) for kind in KINDS}

    def table_names(self) -> list[str]:
        """Names of the compared tables, sorted."""
        return sorted(self.kind("table"))

    def to_dict(self) -> dict[str, Any]:
        """The versioned JSON form (round-trips through :meth:`from_dict`); the
        ``dependencies`` key is there only when they were read."""
        data = {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "schema": self.schema,
            "source": self.source,
            "server_version": self.server_version,
            "fingerprint": self.fingerprint,
            "probe_fingerprint": self.probe_fingerprint,
            "excluded": dict(sorted(self.excluded.items())),
            "objects": {k: dict(sorted(v.items())) for k, v in sorted(self.objects.items())},
        }
        if self.dependencies is not None:
            data["dependencies"] = [list(row) for row in self.dependencies]
        return data

    def to_json(self, indent: int | None = 1) -> str:
        """The versioned JSON form as text (sorted keys, stable across runs)."""
        return json.dumps(self.to_dict(), sort_keys=True, indent=indent, ensure_ascii=False)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Snapshot:
        """Load a snapshot from its JSON form; rejects other formats and versions."""
        if data.get("format") != FORMAT:
            raise SchemaError(f"not a schema snapshot (format {data.get('format')!r}).")
        if data.get("version") != FORMAT_VERSION:
            raise SchemaError(
                f"schema snapshot version {data.get('version')!r} is not supported "
                f"(this abparts_ops reads version {FORMAT_VERSION}); take a new snapshot."
            )
        snapshot = cls(
            schema=data["schema"],
            objects={k: dict(v) for k, v in data["objects"].items()},
            excluded=dict(data.get("excluded", {})),
            source=data.get("source"),
            server_version=data.get("server_version"),
            probe_fingerprint=data.get("probe_fingerprint"),
            dependencies=(
                tuple(tuple(row) for row in data["dependencies"])  # type: ignore[misc]
                if data.get("dependencies") is not None
                else None
            ),
        )
        stored = data.get("fingerprint")
        if stored and stored != snapshot.fingerprint:
            raise SchemaError(
                "schema snapshot is corrupt: its fingerprint does not match its objects."
            )
        return snapshot

    @classmethod
    def from_json(cls, text: str) -> Snapshot:
        """Load a snapshot from the text written by :meth:`to_json`."""
        return cls.from_dict(json.loads(text))
