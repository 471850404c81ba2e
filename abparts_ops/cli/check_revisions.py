"""``abparts-ops check-revisions``: a pull request's new revisions, checked before merge.

Touches no environment (at most it reads their version rows, to know what they ran):

1. the history on disk must have one head and build from empty: its expected schemas are
   built on the scratch server (:func:`~abparts_ops.core.history.expected_cache.
   load_or_build_expected`, the cache every other reader uses);
2. the revisions to check are those after ``--since REV``; by default those that no
   reachable environment has run yet (every revision when none is reachable, as in CI);
3. a scratch database is built at the revisions before them, and the guarded upgrade's
   own rehearsal (:func:`~abparts_ops.core.rollout.rehearsal.rehearse`) runs them on a
   copy of it, exactly as an upgrade would (one transaction, the configured timeouts,
   steps of their own where a revision leaves the transaction), and compares the result
   with the head's expected schema;
4. the SQL each revision really executed is linted as the upgrade lints it
   (:func:`~abparts_ops.core.rollout.lint.lint_executed`, with the configured
   exclusions and error rules, plus ``data-loss`` findings), and each revision's schema
   change is described (the expected schema at its parent against its own).

Exit 1 when the history does not qualify, the rehearsal fails, or a finding is
error-level (whatever an environment's ``block_on_lint_errors``: a pull request is
where to find out).
"""

from __future__ import annotations

import argparse
import contextlib
import os
from collections.abc import Mapping, Sequence
from typing import Any

from abparts_ops.cli.common import (
    EXIT_CODES,
    FOUND,
    OK,
    BadInput,
    Formatter,
    add_json,
    emit,
    load,
    table,
)

HELP = "check the revisions not yet run anywhere: rehearse and lint them (for pull requests)"
DESCRIPTION = """\
For a pull request: check the on-disk Alembic history without touching any environment.
Refuses a history with several heads or one that does not build from empty (its
expected schemas are built on the scratch server). Then rehearses the revisions after
--since REV (default: the revisions no reachable environment has run yet; all of them
when none is reachable, as in CI) on a scratch copy, exactly as the guarded upgrade
does, lints the SQL each one really executed (squawk with the configured exclusions,
plus data loss), and prints each revision's schema change and findings.

Needs: ABPARTS_OPS_CONFIG (or the demo) and the scratch server's URL variable; the
environments' variables are optional (only read to pick the default --since).

JSON: {"head", "since", "revisions": [{"revision", "file", "message", "schema_change",
"findings", "seconds"}], "rehearsal": {...}, "findings", "error_findings", "ok"}."""

EXAMPLES = """\
examples:
  abparts-ops check-revisions                 what no reachable environment has run yet
  abparts-ops check-revisions --since 1a2b3c  the revisions after 1a2b3c
  abparts-ops check-revisions --since base    the whole history, from empty"""

SCRATCH_PREFIX = "abparts_check"


def register(sub: Any) -> None:
    """Add the ``check-revisions`` command."""
    parser = sub.add_parser(
        "check-revisions", help=HELP, description=DESCRIPTION,
        epilog=f"{EXAMPLES}\n\n{EXIT_CODES}", formatter_class=Formatter,
    )
    parser.add_argument(
        "--since", metavar="REV", default=None,
        help="check the revisions after REV ('base': all); default: what no reachable "
        "environment has run",
    )
    add_json(parser)
    parser.set_defaults(func=run)


def _ancestors(expected: Any, revisions: Sequence[str]) -> set[str]:
    """``revisions`` and everything they build on (parents and depends_on)."""
    seen: set[str] = set()
    todo = list(revisions)
    while todo:
        rev = todo.pop()
        if rev in seen:
            continue
        seen.add(rev)
        todo.extend(expected.parents.get(rev, ()))
        todo.extend(expected.dependencies.get(rev, ()))
    return seen


def _tips(expected: Any, ran: set[str]) -> tuple[str, ...]:
    """The revisions of ``ran`` that no other revision of ``ran`` builds on, in order."""
    below: set[str] = set()
    for rev in ran:
        below |= _ancestors(expected, [rev]) - {rev}
    return tuple(rev for rev in expected.order if rev in ran and rev not in below)


def _reachable_runs(settings: Any, expected: Any, project: Any) -> tuple[set[str], list[str]]:
    """What the reachable environments ran (a read of their version rows), and a line for
    each environment saying what was read."""
    from abparts_ops.core.db import scrub
    from abparts_ops.core.errors import AbpartsOpsError
    from abparts_ops.core.watch.probe import probe

    ran: set[str] = set()
    lines = []
    for name, env in settings.environments.items():
        url = None
        try:
            url = env.url()
            seen = probe(
                url, environment=name, schema=env.schema, exclude=tuple(settings.exclude),
                version_table=project.version_table,
                version_table_schema=project.version_table_schema,
                timeout_s=settings.probe.timeout_s, privileges=expected.privileges,
            )
        except AbpartsOpsError as exc:
            reason = scrub(str(exc), url).strip().splitlines()[0]
            lines.append(f"{name}: not reachable, not counted ({reason})")
            continue
        known = [rev for rev in seen.revisions or () if expected.knows(rev)]
        ran |= _ancestors(expected, known)
        lines.append(f"{name}: at {', '.join(seen.revisions or ()) or 'no revision'}")
    return ran, lines


def _since(
    since: str | None, settings: Any, expected: Any, project: Any, script: Any
) -> tuple[tuple[str, ...], list[str]]:
    """``(current, lines)``: the revisions the checked ones come after, and how that was
    decided."""
    if since is None:
        ran, lines = _reachable_runs(settings, expected, project)
        return _tips(expected, ran), lines
    if since == "base":
        return (), ["--since base: the whole history, from empty"]
    try:
        found = script.get_revision(since)
    except Exception:  # noqa: BLE001 - alembic's own errors for an ambiguous or bad id
        found = None
    if found is None or not expected.knows(found.revision):
        raise BadInput(f"--since {since}: no such revision in the history on disk.")
    return (found.revision,), [f"--since {found.revision}"]


def _schema_change(expected: Any, revision: str, empty: Any) -> dict[str, Any]:
    """The expected schema at ``revision`` against its (first) parent's."""
    from abparts_ops.core.schema.diff import diff_snapshots

    parents = expected.parents.get(revision, ())
    before = expected.snapshot(parents[0]) if parents else empty
    after = expected.snapshot(revision)
    if before is None or after is None:
        return {"summary": "not known", "changes": []}
    diff = diff_snapshots(
        before, after, reference_label=f"expected at {parents[0] if parents else 'base'}",
        actual_label=f"expected at {revision}",
    )
    # The diff's "destructive" says what undoing a difference would lose; for the
    # revision's own change it is the reverse diff's (dropping a column loses data,
    # adding one does not).
    undo = {(c.kind, c.key): c.destructive for c in diff_snapshots(after, before).changes}
    changes = [
        {"change": {"extra": "added", "missing": "removed"}.get(c.change, c.change),
         "kind": c.kind, "key": c.key, "destructive": undo.get((c.kind, c.key), c.destructive),
         "detail": c.describe() if c.change == "changed" else ""}
        for c in diff.changes
    ]
    counts = diff.counts()
    summary = (
        "no schema change"
        if diff.is_empty
        else f"{counts['extra']} added, {counts['missing']} removed, {counts['changed']} "
        f"changed ({sum(1 for c in changes if c['destructive'])} destructive)"
    )
    return {"summary": summary, "changes": changes}


def _build_at(scratch_url: str, project: Any, script: Any, current: Sequence[str], schema: str,
              exclude: Sequence[str], privileges: bool, stack: contextlib.ExitStack):
    """A scratch database at ``current`` (its URL) and its snapshot."""
    from abparts_ops.core.db import connect, make_engine
    from abparts_ops.core.history.migrate import upgrade
    from abparts_ops.core.schema.introspect import snapshot_connection
    from abparts_ops.core.scratch import scratch_database

    url = stack.enter_context(scratch_database(scratch_url, prefix=SCRATCH_PREFIX))
    engine = make_engine(url, label="check-revisions database")
    try:
        with connect(engine, label="check-revisions database") as conn:
            for rev in current:
                upgrade(conn, project, rev, script=script)
            if conn.in_transaction():
                conn.commit()
            snapshot = snapshot_connection(
                conn, schema=schema, exclude=exclude, version_table=project.version_table,
                source="check-revisions database", require_tables=False, privileges=privileges,
            )
    finally:
        engine.dispose()
    return url, snapshot


def _findings(rehearsal: Any, policy: Any, script: Any, before: Any) -> Any:
    """The lint of what each revision executed, with data-loss findings, as the upgrade
    makes them (the same function, the same policy)."""
    from abparts_ops.core.rollout.upgrade import lint_rehearsal

    return lint_rehearsal(script, rehearsal.applied, rehearsal, policy, before=before)


def check(settings: Any, since: str | None) -> tuple[dict[str, Any], list[str]]:
    """Do the check (module doc); return the JSON document and the text lines."""
    from abparts_ops.core.errors import MigrationError
    from abparts_ops.core.history.expected_cache import default_cache_dir, load_or_build_expected
    from abparts_ops.core.history.project import load_project
    from abparts_ops.core.rollout.rehearsal import rehearse
    from abparts_ops.defs.upgrade_assets import upgrade_policy

    project = load_project(
        ini_path=settings.alembic.ini_path,
        script_location=settings.alembic.script_location,
        version_table=settings.alembic.version_table,
    )
    script = project.script()
    heads = tuple(sorted(script.get_heads()))
    document: dict[str, Any] = {"head": None, "since": since, "revisions": [], "ok": False}
    if len(heads) != 1:
        document["error"] = (
            f"the history has {len(heads)} heads ({', '.join(heads) or 'none'}); it needs "
            "exactly one (merge them with `alembic merge heads`)."
        )
        return document, [f"✗ {document['error']}"]
    head = heads[0]
    document["head"] = head
    source = settings.source_environment
    policy = upgrade_policy(settings, source)
    scratch_url = settings.scratch_url()
    try:
        expected, _reused = load_or_build_expected(
            scratch_url, project, schema=source.schema, exclude=settings.exclude,
            cache_dir=default_cache_dir(), privileges=settings.compare_privileges,
        )
    except MigrationError as exc:
        document["error"] = f"the history does not build from empty: {exc}"
        return document, [f"✗ {document['error']}"]
    current, how = _since(since, settings, expected, project, script)
    pending = expected.pending(current)
    document["since"] = list(current) or "base"
    document["read"] = how
    lines = [f"history: one head {head}; builds from empty", *[f"  {line}" for line in how]]
    if not pending:
        document["ok"] = True
        lines.append("nothing to check: every revision has already run")
        return document, lines
    lines.append(
        f"checking {len(pending)} revision(s) after {', '.join(current) or 'base'}: "
        + ", ".join(pending)
    )
    with contextlib.ExitStack() as stack:
        env_url, built = _build_at(
            scratch_url, project, script, current, source.schema, settings.exclude,
            settings.compare_privileges, stack,
        )
        before = expected.snapshot(current[0]) if len(current) == 1 else built
        before = before or built
        rehearsal = rehearse(
            env_url, scratch_url, project=project,
            environment=f"the history at {', '.join(current) or 'base'}",
            script=script, current=current, target=head, expected_from=before,
            expected=expected.snapshot(head), server_version=built.server_version,
            schema=source.schema, exclude=settings.exclude,
            privileges=settings.compare_privileges,
            statement_timeout_s=policy.statement_timeout_s,
            lock_timeout_s=policy.lock_timeout_s, copy=policy.rehearsal,
        )
        empty = built if not current else None  # a root revision is only pending from base
    document["rehearsal"] = rehearsal.to_dict()
    if not rehearsal.passed:
        where = f" ({os.path.basename(rehearsal.file)}" if rehearsal.file else ""
        where += f", line {rehearsal.line})" if where and rehearsal.line else (")" if where else "")
        document["error"] = f"the rehearsal failed: {rehearsal.verdict}"
        lines.append(f"✗ rehearsal of {rehearsal.failed_revision or 'the revisions'}{where}: "
                     f"{rehearsal.verdict}")
        if rehearsal.statement:
            lines.append(f"  statement: {rehearsal.statement[:300]}")
        return document, lines
    report = _findings(rehearsal, policy, script, before)
    lines.append(f"✓ {rehearsal.verdict}")
    by_revision: dict[str | None, list[Any]] = {}
    for finding in report.findings:
        by_revision.setdefault(finding.revision, []).append(finding)
    for revision in pending:
        found = script.get_revision(revision)
        change = _schema_change(expected, revision, empty)
        findings = by_revision.get(revision, [])
        document["revisions"].append(
            {
                "revision": revision,
                "file": found.path if found is not None else None,
                "message": (found.doc or "") if found is not None else "",
                "schema_change": change,
                "findings": [f.to_dict() for f in findings],
                "alone": revision in rehearsal.alone,
                "seconds": round(rehearsal.revision_seconds.get(revision, 0.0), 3),
            }
        )
        name = os.path.basename(found.path) if found is not None else revision
        lines.append("")
        lines.append(f"{revision} ({name}): {change['summary']}")
        for item in change["changes"][:30]:
            flag = " ⚠" if item["destructive"] else ""
            detail = f": {item['detail']}" if item["detail"] else ""
            lines.append(f"  {item['change']}{flag} {item['kind']} {item['key']}{detail}")
        if findings:
            lines += [
                "  " + line
                for line in table(
                    [_finding_row(f) for f in findings], ["level", "rule", "line", "message"],
                    width=80,
                )
            ]
        else:
            lines.append("  no lint finding")
    errors = [f for f in report.findings if f.level == "error"]
    document["findings"] = len(report.findings)
    document["error_findings"] = len(errors)
    document["excluded_rules"] = [e.rule for e in report.excluded]
    document["ok"] = not errors
    lines.append("")
    if errors:
        rules = sorted({f.rule for f in errors})
        lines.append(
            f"✗ {len(errors)} error-level finding(s): {', '.join(rules)} (an upgrade of a "
            "protected environment refuses them unless acknowledged after review)"
        )
    else:
        lines.append(f"✓ no error-level finding ({len(report.findings)} finding(s) in all)")
    return document, lines


def _finding_row(finding: Any) -> Mapping[str, Any]:
    return {
        "level": finding.level,
        "rule": finding.rule,
        "line": finding.statement_number or finding.line,
        "message": finding.message,
    }


def run(args: argparse.Namespace) -> int:
    """Check the revisions; exit 0 when they qualify, 1 otherwise."""
    settings = load()
    document, lines = check(settings, args.since)
    emit(args, document, lines)
    return OK if document.get("ok") else FOUND
