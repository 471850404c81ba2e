"""What a kind's renderer reads and returns: a view of the snapshot, and sections of steps.

Every kind module (:mod:`abparts_ops.core.schema.kinds`) renders its objects as
:class:`Section` s of :class:`Step` s (one statement each, with the objects it creates and
those it needs); :mod:`~abparts_ops.core.schema.order` sorts them by the catalog's
dependencies, and the canonical DDL (:mod:`~abparts_ops.core.schema.ddl`) and the
baseline print them. A renderer reads the snapshot through :class:`SnapshotView`: the
schema's name, its objects by kind and what it excludes, which a
:class:`~abparts_ops.core.schema.model.Snapshot` has. This module imports nothing of the
schema package, so the kind modules, which the snapshot model's registry imports, can
use it without a cycle.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

#: An object of the dependency graph: ``(kind, key)`` as in the snapshot, plus
#: ``("column_default", "table.column")`` for a column's default.
ObjId = tuple[str, str]


class SnapshotView(Protocol):
    """What the renderers read of a snapshot (a
    :class:`~abparts_ops.core.schema.model.Snapshot` is one)."""

    @property
    def schema(self) -> str:
        """The schema's name."""
        ...

    @property
    def excluded(self) -> Mapping[str, str]:
        """The excluded objects (not compared), by name."""
        ...

    def kind(self, kind: str) -> Mapping[str, Mapping[str, Any]]:
        """The objects of ``kind`` by key (empty when there is none)."""
        ...


@dataclass(frozen=True)
class Step:
    """One statement of a DDL script (without its semicolon).

    ``creates`` are the objects it creates (for a removal: removes), the first one the
    object it is about; ``after`` the objects it needs beyond what those objects depend
    on (the table an ``ALTER TABLE`` changes, the object a ``COMMENT`` is on).
    """

    statement: str
    creates: tuple[ObjId, ...] = ()
    after: tuple[ObjId, ...] = ()


@dataclass(frozen=True)
class Section:
    """Statements of one step of the DDL, with what each creates.

    ``phase`` orders the steps (:data:`~abparts_ops.core.schema.kind_order.PHASE`); ``tag`` is
    the kind that produced it, or ``kind:part`` for a later part of a kind (``table:late``
    for constraints added after all tables, ``sequence:owner``, ``table:row_security``,
    ``<kind>:comment``); the baseline renderer replaces some tags with Alembic operations.
    """

    phase: int
    title: str
    tag: str
    steps: tuple[Step, ...]

    @property
    def statements(self) -> tuple[str, ...]:
        """The statements of the section, in order."""
        return tuple(step.statement for step in self.steps)


def section(phase: int, title: str, tag: str, steps: Iterable[Step | str]) -> Section:
    """A :class:`Section`; plain strings become steps that create nothing."""
    return Section(
        phase, title, tag, tuple(s if isinstance(s, Step) else Step(s) for s in steps)
    )
