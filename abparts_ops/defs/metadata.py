"""Small builders of Dagster metadata shared by the assets and checks."""

from __future__ import annotations

import getpass
from collections.abc import Mapping

import dagster as dg
import pandas as pd

from abparts_ops.core.schema.diff import SchemaDiff
from abparts_ops.core.schema.model import Snapshot

_MAX_MD = 60_000
_MAX_CHANGES = 500


def md(text: str) -> dg.MetadataValue:
    """Markdown metadata, cut to a size the UI renders comfortably."""
    if len(text) > _MAX_MD:
        text = text[:_MAX_MD] + "\n\n… (cut; the full text is in the run's logs / files)"
    return dg.MetadataValue.md(text)


def frame_schema(frame: pd.DataFrame) -> dg.TableSchema:
    """The ``dagster/column_schema`` of a DataFrame: column names and dtypes."""
    return dg.TableSchema(
        columns=[dg.TableColumn(name=str(c), type=str(t)) for c, t in frame.dtypes.items()]
    )


def markdown_table(rows: list[Mapping[str, object]], columns: list[str]) -> str:
    """A Markdown table of ``rows`` (values stringified, pipes escaped)."""

    def cell(value: object) -> str:
        text = "" if value is None or (isinstance(value, float) and pd.isna(value)) else str(value)
        return text.replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(row.get(c)) for c in columns) + " |" for row in rows]
    return "\n".join(lines)


def snapshot_summary(snapshot: Snapshot, frame: pd.DataFrame, preview_rows: int = 25) -> str:
    """Markdown: object counts, exclusions and the first rows of the column table."""
    counts = {k: v for k, v in snapshot.counts().items() if v}
    lines = [
        f"### Schema `{snapshot.schema}` of `{snapshot.source}`",
        f"Fingerprint `{snapshot.fingerprint}`; PostgreSQL {snapshot.server_version}.",
        "",
        markdown_table([{"kind": k, "count": v} for k, v in counts.items()], ["kind", "count"]),
        "",
        "**Excluded** (not compared, fingerprinted): "
        + (", ".join(f"`{name}`" for name in sorted(snapshot.excluded)) or "none"),
        "",
        f"#### First {min(preview_rows, len(frame))} of {len(frame)} column rows",
        markdown_table(
            frame.head(preview_rows).to_dict("records"),
            ["table", "column", "data_type", "nullable", "default"],
        ),
    ]
    return "\n".join(lines)


def diff_metadata(diff: SchemaDiff) -> dict[str, dg.MetadataValue | int | str]:
    """Numeric counts (plotted over time in the UI) and the Markdown diff."""
    counts = diff.counts()
    return {
        "differences": counts["total"],
        "missing": counts["missing"],
        "extra": counts["extra"],
        "changed": counts["changed"],
        "destructive": counts["destructive"],
        "reference_fingerprint": diff.reference_fingerprint,
        "actual_fingerprint": diff.actual_fingerprint,
        "diff": md(diff.to_markdown()),
        # the same changes as data, for programs (abparts-ops verify --json)
        "diff_json": dg.MetadataValue.json([c.to_dict() for c in diff.changes[:_MAX_CHANGES]]),
    }


def launched_by(tags: Mapping[str, str]) -> str:
    """Who launched the run: the ``dagster/user`` or ``user`` tag, else the OS user."""
    for key in ("dagster/user", "user"):
        if tags.get(key):
            return str(tags[key])
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"
