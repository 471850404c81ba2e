"""A pandas view of a snapshot: one row per column, the seed's "detailed schema rows"."""

from __future__ import annotations

from collections import defaultdict

import pandas as pd

from abparts_ops.core.schema.model import Snapshot

FRAME_COLUMNS: tuple[str, ...] = (
    "table",
    "column",
    "position",
    "data_type",
    "nullable",
    "default",
    "identity",
    "generated",
    "collation",
    "primary_key",
    "unique",
    "foreign_key",
    "comment",
)


def columns_frame(snapshot: Snapshot) -> pd.DataFrame:
    """One row per compared column, ordered by table then position.

    ``primary_key`` and ``unique`` say whether the column takes part in such a
    constraint; ``foreign_key`` names the referenced ``table.column`` (first match).
    """
    in_pk: set[tuple[str, str]] = set()
    in_unique: set[tuple[str, str]] = set()
    references: dict[tuple[str, str], str] = {}
    for attrs in snapshot.kind("primary_key").values():
        in_pk.update((attrs["table"], c) for c in attrs.get("columns", []))
    for attrs in snapshot.kind("unique").values():
        in_unique.update((attrs["table"], c) for c in attrs.get("columns", []))
    for _key, attrs in sorted(snapshot.kind("foreign_key").items()):
        for col, ref_col in zip(
            attrs.get("columns", []), attrs.get("ref_columns", []), strict=False
        ):
            references.setdefault((attrs["table"], col), f"{attrs['ref_table']}.{ref_col}")
    data: dict[str, list[object]] = defaultdict(list)
    ordered = sorted(snapshot.kind("column").values(), key=lambda a: (a["table"], a["position"]))
    for attrs in ordered:
        ident = (attrs["table"], attrs["name"])
        identity = attrs.get("identity")
        data["table"].append(attrs["table"])
        data["column"].append(attrs["name"])
        data["position"].append(int(attrs["position"]))
        data["data_type"].append(attrs["type"])
        data["nullable"].append(bool(attrs["nullable"]))
        data["default"].append(attrs.get("default"))
        data["identity"].append(
            None if not identity else ("always" if identity.get("always") else "by default")
        )
        data["generated"].append(attrs.get("generated"))
        data["collation"].append(attrs.get("collation"))
        data["primary_key"].append(ident in in_pk)
        data["unique"].append(ident in in_unique)
        data["foreign_key"].append(references.get(ident))
        data["comment"].append(attrs.get("comment"))
    frame = pd.DataFrame({name: data[name] for name in FRAME_COLUMNS}, columns=list(FRAME_COLUMNS))
    return frame.astype(
        {"position": "int64", "nullable": "bool", "primary_key": "bool", "unique": "bool"}
    )
