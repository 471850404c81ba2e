"""Lint the pending revisions' SQL with ``squawk`` before they reach an environment.

The SQL is what ``alembic upgrade <from>:<to> --sql`` prints: Alembic's offline mode,
configured here with an :class:`EnvironmentContext` of our own (the application's
``env.py`` is never run), one transaction around every pending revision, as the guarded
upgrade applies them. The ``SET lock_timeout`` / ``SET statement_timeout`` the upgrade
runs first are put at the top, so squawk judges the statements as they really run.

``squawk`` (the ``squawk-cli`` package) reads that file and reports JSON; each finding
becomes a :class:`LintFinding` with the revision whose SQL holds its line. squawk 2
reports every rule violation as a warning (its errors are syntax errors), so the level
that may block an upgrade is ours: ``error`` for squawk's errors and for the rules in the
policy's ``error_rules`` (the ones that take long exclusive locks or lose data), else
``warning``. A revision whose SQL cannot be rendered offline (one that reads the database
through ``op.get_bind()``) gives an ``error`` finding of the rule
:data:`OFFLINE_SQL_RULE`, which a run may acknowledge like any other.

Rule names are checked when they are given (the configuration's exclusions, a run's
acknowledgements): :func:`unknown_rules` asks the installed squawk itself which names it
knows (a ``-- squawk-ignore <name>`` line per name: squawk reports every unknown one in a
single run), and :func:`known_rules` lists the names read from the squawk binary (each
confirmed the same way) plus :data:`PROJECT_RULES`, for the suggestions of
:func:`check_rule_names`. Both are cached per squawk executable (path, mtime, size).
"""

from __future__ import annotations

import difflib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alembic.runtime.environment import EnvironmentContext
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from abparts_ops.core.errors import AbpartsOpsError, MigrationError, UpgradeRefused
from abparts_ops.core.migrations.project import AlembicProject

OFFLINE_SQL_RULE = "offline-sql-unavailable"
SQUAWK_TIMEOUT_SECONDS = 120
DEFAULT_ERROR_RULES = (
    "adding-not-nullable-field",
    "adding-required-field",
    "adding-serial-primary-key-field",
    "ban-concurrent-index-creation-in-transaction",
    "ban-drop-column",
    "ban-drop-database",
    "ban-drop-table",
    "ban-truncate-cascade",
    "changing-column-type",
    "disallowed-unique-constraint",
    "renaming-column",
    "renaming-table",
    OFFLINE_SQL_RULE,
)
"""Rules whose findings are error-level: long ACCESS EXCLUSIVE locks, rewrites, data loss."""
PROJECT_RULES = frozenset({OFFLINE_SQL_RULE})
"""Rule names this project's lint reports itself; squawk does not know them."""
SQUAWK_RULES_URL = "https://squawkhq.com/docs/rules"

@dataclass(frozen=True)
class LintExclusion:
    """A squawk rule left out of every lint, with the reason kept in the configuration."""

    rule: str
    reason: str


@dataclass(frozen=True)
class LintFinding:
    """One squawk finding: rule, our level, squawk's message, where, and which revision.

    ``line`` is 1-based in the revision's own SQL (``sql_line`` in the whole file);
    ``revision`` is None for a line outside every revision (the file's preamble).
    """

    rule: str
    level: str
    message: str
    line: int
    sql_line: int
    revision: str | None
    statement: str = ""
    help: str = ""
    squawk_level: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return dict(self.__dict__)


@dataclass(frozen=True)
class RevisionSQL:
    """The offline SQL of one pending revision, and its first line in the whole file."""

    revision: str
    path: str | None
    sql: str
    first_line: int


@dataclass(frozen=True)
class LintReport:
    """What squawk said about the pending revisions' SQL."""

    findings: tuple[LintFinding, ...]
    revisions: tuple[RevisionSQL, ...]
    sql: str
    excluded: tuple[LintExclusion, ...] = ()

    @property
    def errors(self) -> tuple[LintFinding, ...]:
        """The error-level findings."""
        return tuple(f for f in self.findings if f.level == "error")

    def blocking(self, acknowledged: Iterable[str]) -> tuple[LintFinding, ...]:
        """Error-level findings whose rule is not in ``acknowledged``."""
        allowed = set(acknowledged)
        return tuple(f for f in self.errors if f.rule not in allowed)

    def to_markdown(self, max_rows: int = 100) -> str:
        """The findings as a Markdown table (or one line saying there are none)."""
        if not self.findings:
            return "squawk found nothing in the pending revisions' SQL."
        lines = [
            "| level | rule | revision | line | message | statement |",
            "|---|---|---|---|---|---|",
        ]
        for f in self.findings[:max_rows]:
            cells = [f.level, f"`{f.rule}`", f.revision or "-", str(f.line), f.message,
                     f"`{f.statement[:120]}`" if f.statement else ""]
            lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
        if len(self.findings) > max_rows:
            lines.append(f"\n… and {len(self.findings) - max_rows} more.")
        return "\n".join(lines)


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def squawk_executable() -> Path:
    """The ``squawk`` binary: next to this Python (the venv's bin), else on ``PATH``."""
    beside = Path(sys.executable).parent / "squawk"
    if beside.is_file() and os.access(beside, os.X_OK):
        return beside
    found = shutil.which("squawk")
    if found:
        return Path(found)
    raise MigrationError(
        "lint: the squawk binary is not installed (pip install 'squawk-cli>=2.70,<3' in "
        "the environment that runs abparts_ops)."
    )


# ------------------------------------------------------------------------ rule names

_RULE_NAME_RE = re.compile(r"[a-z][a-z0-9]*(?:-[a-z0-9]+)*")
"""What a rule name looks like; anything else is unknown without asking squawk."""
_RULE_FAMILIES = (
    b"adding", b"ban", b"changing", b"constraint", b"disallowed", b"identifier", b"prefer",
    b"renaming", b"require", b"transaction", b"unused",
)
"""The first words of squawk's rule names: where a name may start in the binary's text."""
_RULE_CANDIDATE_RE = re.compile(
    rb"(?=((?:" + b"|".join(_RULE_FAMILIES) + rb")-[a-z0-9-]{1,80}))"
)
_PROBE_SENTINEL = "abparts-ops-no-such-rule"
_PROBE_TIMEOUT_SECONDS = 30
_verdicts: dict[tuple[str, int, int], dict[str, bool]] = {}
_listings: dict[tuple[str, int, int], frozenset[str]] = {}


def _identity(binary: Path) -> tuple[str, int, int]:
    """The cache key of a squawk executable: its real path, mtime and size."""
    try:
        real = binary.resolve()
        stat = real.stat()
    except OSError as exc:
        raise MigrationError(
            f"lint: cannot read {binary}: {exc.strerror} (reinstall squawk-cli)."
        ) from None
    return str(real), stat.st_mtime_ns, stat.st_size


def _rejected_by_squawk(binary: Path, names: Sequence[str]) -> set[str]:
    """The ``names`` that ``binary`` does not know, found in one squawk run.

    Each name goes on a ``-- squawk-ignore <name>`` line of its own; squawk parses them
    with the parser of ``--exclude`` and reports every unknown one as ``unknown name
    <name>`` on that line. A made-up name is asked too: if squawk does not report it,
    the answer cannot be trusted and :class:`MigrationError` is raised.
    """
    asked = [*names, _PROBE_SENTINEL]
    sql = "".join(f"-- squawk-ignore {name}\nSELECT 1;\n" for name in asked)
    with tempfile.TemporaryDirectory(prefix="abparts_ops_rules_") as folder:
        config = Path(folder) / "empty.toml"  # no .squawk.toml found nearby is read
        config.write_text("", encoding="utf-8")
        path = Path(folder) / "rule_names.sql"
        path.write_text(sql, encoding="utf-8")
        args = [str(binary), "--config", str(config), "--reporter", "json", str(path)]
        try:
            result = subprocess.run(
                args, capture_output=True, text=True, timeout=_PROBE_TIMEOUT_SECONDS, cwd=folder
            )
        except (OSError, subprocess.SubprocessError) as exc:
            raise MigrationError(
                f"lint: cannot run {binary}: {exc} (reinstall squawk-cli)."
            ) from None
    try:
        parsed = json.loads(result.stdout.strip() or "[]")
    except json.JSONDecodeError:
        parsed = None
    rejected: set[str] = set()
    for item in parsed if isinstance(parsed, list) else ():
        line = item.get("line") if isinstance(item, dict) else None
        index = line // 2 if isinstance(line, int) else -1  # 0-based; two lines a name
        if 0 <= index < len(asked) and item.get("message") == f"unknown name {asked[index]}":
            rejected.add(asked[index])
    if _PROBE_SENTINEL not in rejected:
        raise MigrationError(
            f"lint: cannot tell which rule names {binary} knows (it did not report the "
            f"made-up rule {_PROBE_SENTINEL}); install squawk-cli>=2.70,<3."
        )
    rejected.discard(_PROBE_SENTINEL)
    return rejected


def _candidates_in(binary: Path) -> set[str]:
    """Every rule-shaped string in the binary's bytes (names are stored run together)."""
    try:
        data = binary.read_bytes()
    except OSError as exc:
        raise MigrationError(
            f"lint: cannot read {binary}: {exc.strerror} (reinstall squawk-cli)."
        ) from None
    found: set[str] = set()
    for match in _RULE_CANDIDATE_RE.finditer(data):
        text = match.group(1).decode("ascii")
        for end in range(len(text), 0, -1):
            prefix = text[:end]
            if "-" in prefix and _RULE_NAME_RE.fullmatch(prefix):
                found.add(prefix)
    return found


def squawk_rules(executable: Path | None = None) -> frozenset[str]:
    """The rule names of the installed squawk, read from its binary; cached per binary.

    squawk 2 has no command that lists its rules. Its names are in the executable's
    text, stored run together; every rule-shaped substring that starts like a rule
    (``ban-``, ``prefer-``, ``require-``, ...) is a candidate, and the candidates squawk
    itself accepts (:func:`_rejected_by_squawk`, one run) are the list. Raises
    :class:`MigrationError` when squawk is missing or does not answer.
    """
    binary = executable or squawk_executable()
    key = _identity(binary)
    listed = _listings.get(key)
    if listed is None:
        candidates = _candidates_in(Path(key[0]))
        rejected = _rejected_by_squawk(binary, sorted(candidates))
        listed = frozenset(candidates - rejected)
        _listings[key] = listed
        _verdicts.setdefault(key, {}).update({name: name in listed for name in candidates})
    return listed


def known_rules(executable: Path | None = None) -> frozenset[str]:
    """Every rule name a finding can have: squawk's (:func:`squawk_rules`) and ours."""
    return squawk_rules(executable) | PROJECT_RULES


def unknown_rules(names: Iterable[str], *, executable: Path | None = None) -> tuple[str, ...]:
    """The ``names`` that are neither :data:`PROJECT_RULES` nor known to squawk.

    In the given order, each once. squawk is asked about the names themselves (so an
    alias it accepts, such as ``prefer-timestamptz``, is known); it is not run when every
    name is ours or not rule-shaped. Verdicts are cached per squawk binary. Raises
    :class:`MigrationError` when squawk is needed and missing.
    """
    ordered = list(dict.fromkeys(str(name) for name in names))
    ask = [
        name for name in ordered
        if name not in PROJECT_RULES and len(name) <= 100 and _RULE_NAME_RE.fullmatch(name)
    ]
    verdicts: dict[str, bool] = {}
    if ask:
        binary = executable or squawk_executable()
        verdicts = _verdicts.setdefault(_identity(binary), {})
        todo = [name for name in ask if name not in verdicts]
        if todo:
            rejected = _rejected_by_squawk(binary, todo)
            verdicts.update({name: name not in rejected for name in todo})
    return tuple(
        name for name in ordered if name not in PROJECT_RULES and not verdicts.get(name, False)
    )


def closest_rules(name: str, *, executable: Path | None = None, n: int = 3) -> list[str]:
    """The known rule names closest to ``name`` (difflib), best first: at most ``n``,
    those about as close as the best one (a typo has one answer, ``ban-drop`` several).

    Empty when squawk's list cannot be read (the check itself does not depend on it).
    """
    try:
        known = known_rules(executable)
    except MigrationError:
        known = PROJECT_RULES
    wanted = name.strip().lower()
    scored = sorted(
        ((difflib.SequenceMatcher(None, wanted, rule).ratio(), rule) for rule in known),
        key=lambda item: (-item[0], item[1]),
    )
    if not scored or scored[0][0] < 0.6:
        return []
    best = scored[0][0]
    return [rule for ratio, rule in scored[:n] if ratio >= max(0.6, best - 0.05)]


def describe_unknown_rules(unknown: Sequence[str], *, executable: Path | None = None) -> str:
    """One line for ``unknown`` rule names: each with its closest known names, and the fix."""
    parts = []
    for name in unknown:
        close = closest_rules(name, executable=executable)
        hint = " or ".join(f"`{c}`" for c in close)
        parts.append(f"`{name}` (did you mean {hint}?)" if close else f"`{name}`")
    noun = "rule" if len(parts) == 1 else "rules"
    return (
        f"unknown lint {noun} {', '.join(parts)}: use the names squawk reports "
        f"({SQUAWK_RULES_URL}) or {', '.join(sorted(PROJECT_RULES))}."
    )


def check_rule_names(
    names: Iterable[str],
    *,
    where: str,
    error: type[AbpartsOpsError] = UpgradeRefused,
    executable: Path | None = None,
) -> None:
    """Refuse rule names that no finding can have, before anything runs.

    Raises ``error`` (default :class:`UpgradeRefused`) with one line: ``where`` (e.g.
    ``"prod: run config acknowledge"``), the unknown names, the closest known names and
    the fix. Raises :class:`MigrationError` when squawk is needed and missing.
    """
    unknown = unknown_rules(names, executable=executable)
    if unknown:
        raise error(f"{where}: {describe_unknown_rules(unknown, executable=executable)}")


def render_offline_sql(
    project: AlembicProject,
    script: ScriptDirectory,
    start: Sequence[str],
    target: str,
    *,
    preamble: Sequence[str] = (),
) -> tuple[str, tuple[RevisionSQL, ...], LintFinding | None]:
    """``alembic upgrade <start>:<target> --sql``, split by revision.

    Returns the whole text (``preamble`` lines first), the SQL of each revision, and a
    finding of :data:`OFFLINE_SQL_RULE` when a revision cannot be rendered offline (the
    SQL rendered before it is kept).
    """
    buffer = io.StringIO()
    for line in preamble:
        buffer.write(line + "\n")
    marks: list[tuple[str, str | None, int]] = []

    def fn(heads: Any, context: MigrationContext) -> Iterator[Any]:
        for step in script._upgrade_revs(target, heads):
            revision = step.revision
            marks.append((revision.revision, revision.path, buffer.tell()))
            yield step

    failure: LintFinding | None = None
    starting = ",".join(start) if start else None
    try:
        with EnvironmentContext(
            project.config(),
            script,
            fn=fn,
            as_sql=True,
            starting_rev=starting,
            destination_rev=target,
        ) as env:
            env.configure(
                dialect_name="postgresql",
                output_buffer=buffer,
                target_metadata=None,
                version_table=project.version_table,
                version_table_schema=project.version_table_schema,
                transaction_per_migration=False,
                literal_binds=True,
            )
            with env.begin_transaction():
                env.run_migrations()
    except Exception as exc:  # noqa: BLE001 - any error of a revision's code in offline mode
        failing = marks[-1][0] if marks else None
        first = str(exc).strip().splitlines()
        detail = first[0] if first else exc.__class__.__name__
        failure = LintFinding(
            rule=OFFLINE_SQL_RULE,
            level="error",
            message=(
                f"cannot render this revision's SQL offline: {exc.__class__.__name__}: "
                f"{detail[:300]} (it was not linted; acknowledge `{OFFLINE_SQL_RULE}` if "
                "the rehearsal's result is enough)"
            ),
            line=1,
            sql_line=0,
            revision=failing,
            squawk_level="",
        )
    text = buffer.getvalue()
    pieces: list[RevisionSQL] = []
    for index, (revision, path, offset) in enumerate(marks):
        end = marks[index + 1][2] if index + 1 < len(marks) else len(text)
        pieces.append(
            RevisionSQL(
                revision=revision,
                path=path,
                sql=text[offset:end],
                first_line=text.count("\n", 0, offset) + 1,
            )
        )
    return text, tuple(pieces), failure


def _revision_at(pieces: Sequence[RevisionSQL], line: int) -> RevisionSQL | None:
    found = None
    for piece in pieces:
        if piece.first_line <= line:
            found = piece
    return found


def run_squawk(
    sql: str,
    *,
    excluded: Sequence[str] = (),
    pg_version: str | None = None,
    executable: Path | None = None,
) -> list[dict[str, Any]]:
    """Run squawk on ``sql`` with its JSON reporter; the raw findings.

    Raises :class:`MigrationError` when squawk cannot run or prints no JSON.
    """
    binary = executable or squawk_executable()
    with tempfile.TemporaryDirectory(prefix="abparts_ops_lint_") as folder:
        path = Path(folder) / "pending_revisions.sql"
        path.write_text(sql, encoding="utf-8")
        args = [str(binary), "--reporter", "json"]
        if excluded:
            args.append("--exclude=" + ",".join(excluded))
        if pg_version:
            args.append(f"--pg-version={pg_version}")
        args.append(str(path))
        try:
            result = subprocess.run(
                args, capture_output=True, text=True, timeout=SQUAWK_TIMEOUT_SECONDS, cwd=folder
            )
        except (OSError, subprocess.SubprocessError) as exc:
            raise MigrationError(
                f"lint: cannot run {binary}: {exc} (reinstall squawk-cli)."
            ) from None
    output = result.stdout.strip()
    try:
        parsed = json.loads(output) if output else []
    except json.JSONDecodeError:
        parsed = None
    if not isinstance(parsed, list) or result.returncode not in (0, 1):
        stderr = (result.stderr.strip().splitlines() or [f"exit status {result.returncode}"])[0]
        raise MigrationError(
            f"lint: squawk failed: {stderr[:300]} (check the squawk-cli installation and the "
            "excluded rule names)."
        )
    return parsed


def _pg_version(server_version: str | None) -> str | None:
    match = re.match(r"(\d+)(?:\.(\d+))?", server_version or "")
    if not match:
        return None
    return f"{match.group(1)}.{match.group(2) or 0}"


def lint_pending(
    project: AlembicProject,
    script: ScriptDirectory,
    start: Sequence[str],
    target: str,
    *,
    excluded: Sequence[LintExclusion] = (),
    error_rules: Iterable[str] = DEFAULT_ERROR_RULES,
    preamble: Sequence[str] = (),
    server_version: str | None = None,
) -> LintReport:
    """Render the SQL of ``start -> target`` offline and lint it with squawk.

    ``excluded`` rules are not checked at all; findings of ``error_rules`` and squawk's
    own errors are error-level. The report attributes each finding to its revision.
    """
    text, pieces, failure = render_offline_sql(
        project, script, start, target, preamble=preamble
    )
    errors = set(error_rules)
    skip = {e.rule for e in excluded}
    raw = run_squawk(
        text, excluded=sorted(skip - PROJECT_RULES), pg_version=_pg_version(server_version)
    ) if text.strip() else []
    lines = text.splitlines()
    findings: list[LintFinding] = []
    for item in raw:
        rule = str(item.get("rule_name") or "unknown")
        if rule in skip:
            continue
        zero_based = int(item.get("line") or 0)
        end = int(item.get("line_end") or zero_based)
        sql_line = zero_based + 1
        piece = _revision_at(pieces, sql_line)
        statement = " ".join(
            part.strip() for part in lines[zero_based : end + 1] if part.strip()
        )
        squawk_level = str(item.get("level") or "")
        level = "error" if squawk_level.lower() == "error" or rule in errors else "warning"
        findings.append(
            LintFinding(
                rule=rule,
                level=level,
                message=str(item.get("message") or ""),
                help=str(item.get("help") or ""),
                line=sql_line - piece.first_line + 1 if piece else sql_line,
                sql_line=sql_line,
                revision=piece.revision if piece else None,
                statement=statement[:500],
                squawk_level=squawk_level,
            )
        )
    if failure is not None and failure.rule not in skip:
        findings.append(failure)
    findings.sort(key=lambda f: (f.level != "error", f.sql_line, f.rule))
    return LintReport(
        findings=tuple(findings),
        revisions=pieces,
        sql=text,
        excluded=tuple(excluded),
    )

