"""One environment's state as the commands print it: the same shape for drift and verify.

``drift`` reads each environment itself (through the one reference); ``verify`` reads the
metadata of the checks its ``verify_environments`` run recorded. Both print::

    {"environments": [{"name", "state", "revision", "expected_revision", "pending",
                       "summary", "diff", ...}]}

``revision`` is the environment's version row (several rows joined by ", "; null when
there is no version table or it is empty), ``pending`` the revisions an upgrade would
apply, oldest first, ``diff`` one object per differing database object (``kind``,
``key``, ``change``: missing/extra/changed, ``destructive``, ``fields``, ``notes``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from abparts_ops.cli.common import table
from abparts_ops.core.watch.reference import Assessment

STATE_FIELDS = ("name", "state", "revision", "expected_revision", "pending", "summary", "diff")


def _revision(revisions: Sequence[str] | None) -> str | None:
    return ", ".join(revisions) if revisions else None


def from_assessment(assessment: Assessment) -> dict[str, Any]:
    """The entry of one environment judged by the reference (``drift``)."""
    diff = assessment.diff
    return {
        "name": assessment.environment,
        "state": assessment.state.value,
        "revision": _revision(assessment.revisions),
        "expected_revision": assessment.expected_revision,
        "pending": list(assessment.pending),
        "summary": assessment.summary,
        "diff": [change.to_dict() for change in diff.changes] if diff is not None else [],
        "head": assessment.head,
        "ok": assessment.state.ok,
    }


def _current(text: str) -> str | None:
    """The check metadata's ``current`` ("(no version table)" and the like are null)."""
    text = text.strip()
    return None if not text or text.startswith("(") else text


def from_checks(name: str, checks: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """The entry of one environment from its checks' results (``verify``).

    ``summary`` is the reference's summary the check's description ends with (the same
    words as ``drift``), else the whole description (unreachable, stale expectations).

    ``checks`` maps a check name to ``{"passed", "description", "metadata"}``. The schema
    check (a full snapshot, with the diff) is preferred to the revision check (a probe)
    for the state and the summary.
    """
    schema = checks.get("schema_matches_reference")
    revision = checks.get("revision_is_head")
    main = schema or revision or {}
    meta: Mapping[str, Any] = main.get("metadata", {})
    pending = str(meta.get("pending") or "")
    state = str(meta.get("state") or ("unreachable" if meta.get("error") else "unknown"))
    passed = all(check.get("passed") for check in checks.values()) and bool(checks)
    diff = meta.get("diff_json")
    description = str(main.get("description") or "")
    # the checks' descriptions end with the reference's own summary ("State: ...")
    summary = description.split("State: ", 1)[1] if "State: " in description else description
    return {
        "name": name,
        "state": state,
        "revision": _current(str(meta.get("current") or "")),
        "expected_revision": meta.get("expected_revision") or None,
        "pending": [p.strip() for p in pending.split(",") if p.strip()],
        "summary": summary,
        "diff": list(diff) if isinstance(diff, list) else [],
        "head": meta.get("head") or None,
        "ok": passed,
        "checks": {
            check: {"passed": bool(result.get("passed")), "description": result.get("description")}
            for check, result in checks.items()
        },
    }


def _value(value: Any, limit: int = 80) -> str:
    text = " ".join(str(value).split()) if value is not None else "(none)"
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _diff_lines(entry: Mapping[str, Any]) -> list[str]:
    lines = []
    for change in entry["diff"][:50]:
        flag = " ⚠" if change.get("destructive") else ""
        notes = change.get("notes") or {}
        details = [
            notes.get(name) or f"{name}: {_value(pair.get('reference'))} → "
            f"{_value(pair.get('actual'))}"
            for name, pair in (change.get("fields") or {}).items()
        ]
        detail = f": {'; '.join(details)}" if details else ""
        lines.append(f"  {change['change']}{flag} {change['kind']} {change['key']}{detail}")
    if len(entry["diff"]) > 50:
        lines.append(f"  … and {len(entry['diff']) - 50} more")
    return lines


def state_lines(entries: Sequence[Mapping[str, Any]]) -> list[str]:
    """One environment in full (state, summary, pending, diff); several as a table of
    their states, then each drift's differences."""
    if len(entries) == 1:
        entry = entries[0]
        lines = [f"{entry['name']}: {entry['state']}", f"  {entry['summary']}"]
        if entry["pending"]:
            lines.append(f"  pending: {', '.join(entry['pending'])}")
        if entry["diff"]:
            lines.append(f"  {len(entry['diff'])} difference(s) from the expected schema:")
            lines += _diff_lines(entry)
        return lines
    rows = [
        {
            "environment": e["name"],
            "state": e["state"],
            "revision": e["revision"] or "-",
            "pending": len(e["pending"]),
            "summary": e["summary"],
        }
        for e in entries
    ]
    lines = table(rows, ["environment", "state", "revision", "pending", "summary"], width=100)
    for entry in entries:
        if entry["diff"]:
            lines += ["", f"{entry['name']}: {len(entry['diff'])} difference(s)"]
            lines += _diff_lines(entry)
    return lines
