"""Lint the pending revisions' SQL with ``squawk``, each revision on its own.

What is linted is, first of all, what runs: the statements each revision executed in
the rehearsal (:func:`lint_executed`; :func:`executed_revisions` takes them from the
runner's :class:`~.runner.RunProgress`), parameters bound, Alembic's version-table writes
left out. Only a dry run that cannot reach a scratch server falls back to Alembic's
offline mode (:func:`lint_pending`): ``alembic upgrade <down>:<rev> --sql`` once per
revision, configured here with an :class:`EnvironmentContext` of our own (the
application's ``env.py`` is never run). A revision whose SQL cannot be rendered offline
(one that reads the database through ``op.get_bind()``) gives an ``error`` finding of the
rule :data:`OFFLINE_SQL_RULE` for itself only, which a run may acknowledge like any
other; the revisions after it are rendered and linted all the same.

Each revision's SQL becomes a file of its own: a comment naming the revision, the
``SET lock_timeout`` / ``SET statement_timeout`` the upgrade runs first (so squawk judges
the statements as they really run), then the revision's statements in one transaction.
``squawk`` (the ``squawk-cli`` package) reads all the files in one run and reports JSON
naming each finding's file; each finding becomes a :class:`LintFinding` with its
revision, its file, its line and (for executed SQL) the number of its statement. squawk 2
reports every rule violation as a warning (its errors are syntax errors), so the level
that may block an upgrade is ours: ``error`` for squawk's errors and for the rules in the
policy's ``error_rules`` (the ones that take long exclusive locks or lose data), else
``warning``. A statement squawk cannot parse hides every other finding of its file, so a
revision's executed statements are linted again without it.

Rule names are checked when they are given (the configuration's exclusions, a run's
acknowledgements): :func:`unknown_rules` asks the installed squawk itself which names it
knows (a ``-- squawk-ignore <name>`` line per name: squawk reports every unknown one in a
single run), and :func:`known_rules` lists the names read from the squawk binary (each
confirmed the same way) plus :data:`PROJECT_RULES`, for the suggestions of
:func:`check_rule_names`. Both are cached per squawk executable (path, mtime, size).
"""

from __future__ import annotations

import bisect
import difflib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from alembic.runtime.environment import EnvironmentContext
from alembic.script import ScriptDirectory

from abparts_ops.core.errors import AbpartsOpsError, MigrationError, UpgradeRefused
from abparts_ops.core.history.project import AlembicProject

if TYPE_CHECKING:
    from abparts_ops.core.rollout.runner import RunProgress

OFFLINE_SQL_RULE = "offline-sql-unavailable"
SQUAWK_TIMEOUT_SECONDS = 120
SQUAWK_FILES_PER_RUN = 200
"""How many revisions' files one squawk run reads (the command line stays short)."""
SQUAWK_SYNTAX_RULE = "syntax-error"
"""The rule name of squawk's findings on SQL it cannot parse."""
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
DATA_LOSS_RULE = "data-loss"
"""Rows a revision deletes or overwrites, data it drops (:mod:`.data_loss`)."""
PROJECT_RULES = frozenset({OFFLINE_SQL_RULE, DATA_LOSS_RULE})
"""Rule names this project reports itself; squawk does not know them."""
SQUAWK_RULES_URL = "https://squawkhq.com/docs/rules"

@dataclass(frozen=True)
class LintExclusion:
    """A squawk rule left out of every lint, with the reason kept in the configuration."""

    rule: str
    reason: str


@dataclass(frozen=True)
class LintFinding:
    """One squawk finding: rule, our level, squawk's message, where, and which revision.

    ``line`` is 1-based in the text squawk read for the revision (its
    :attr:`RevisionSQL.sql`), ``sql_line`` in the report's whole text
    (:attr:`LintReport.sql`); ``file`` is the revision's file; ``statement_number`` is
    1-based among the statements the revision executed (None for offline SQL).
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
    file: str | None = None
    statement_number: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return dict(self.__dict__)


@dataclass(frozen=True)
class ExecutedRevision:
    """The statements one revision executed in the rehearsal, in order, and its file.

    Each statement as the server received it (parameters bound), with or without its
    terminating semicolon. ``in_transaction`` is False for a revision that ran as a step
    of its own, in autocommit: it is linted as it ran, without ``BEGIN``/``COMMIT``
    around it (so ``CREATE INDEX CONCURRENTLY`` there is what it should be).
    """

    revision: str
    file: str | None
    statements: tuple[str, ...]
    in_transaction: bool = True


@dataclass(frozen=True)
class RevisionSQL:
    """The text squawk read for one revision, and its first line in the report's text."""

    revision: str
    path: str | None
    sql: str
    first_line: int


@dataclass(frozen=True)
class LintReport:
    """What squawk said about the pending revisions' SQL.

    ``sql`` is every revision's text (:attr:`revisions`) one after the other; ``source``
    says what was linted: ``executed`` (the rehearsal's statements) or ``offline``.
    """

    findings: tuple[LintFinding, ...]
    revisions: tuple[RevisionSQL, ...]
    sql: str
    excluded: tuple[LintExclusion, ...] = ()
    source: str = "offline"

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


# ------------------------------------------------------------------- what squawk reads


@dataclass(frozen=True)
class RenderedRevision:
    """One pending revision's offline SQL (``alembic upgrade <down>:<rev> --sql``).

    ``failure`` is the :data:`OFFLINE_SQL_RULE` finding when its code cannot run offline;
    ``sql`` then holds what it printed before that point.
    """

    revision: str
    path: str | None
    sql: str
    failure: LintFinding | None = None


@dataclass(frozen=True)
class _Unit:
    """One squawk input: a revision's SQL as squawk reads it (header and preamble first).

    ``starts`` holds the 0-based line of each executed statement in ``text`` and ``stop``
    the line after the last (empty and 0 for offline SQL, whose statements are not known
    one by one).
    """

    revision: str
    path: str | None
    text: str
    statements: tuple[str, ...] = ()
    starts: tuple[int, ...] = ()
    stop: int = 0
    failure: LintFinding | None = None


def _header(revision: str, path: str | None, what: str) -> str:
    name = f" ({os.path.basename(path)})" if path else ""
    return " ".join(f"-- revision {revision}{name}: {what}".split()) + "\n"


def _terminated(statement: str) -> str:
    """``statement`` trimmed, ending in a semicolon that no trailing ``--`` comment swallows."""
    text = statement.strip()
    if text.endswith(";"):
        return text
    last = text.rsplit("\n", 1)[-1]
    return text + ("\n;" if "--" in last else ";")


def _executed_unit(item: ExecutedRevision, preamble: Sequence[str]) -> _Unit:
    parts = [_header(item.revision, item.file,
                     f"{len(item.statements)} statement(s) executed in the rehearsal")]
    parts.extend(line + "\n" for line in preamble)
    if item.in_transaction:
        parts.append("BEGIN;\n")
    line = sum(part.count("\n") for part in parts)
    starts: list[int] = []
    for statement in item.statements:
        text = _terminated(statement) + "\n"
        starts.append(line)
        parts.append(text)
        line += text.count("\n")
    if item.in_transaction:
        parts.append("COMMIT;\n")
    return _Unit(item.revision, item.file, "".join(parts), tuple(item.statements),
                 tuple(starts), line)


def _offline_failure(revision: str, path: str | None, exc: BaseException) -> LintFinding:
    first = str(exc).strip().splitlines()
    detail = first[0] if first else exc.__class__.__name__
    return LintFinding(
        rule=OFFLINE_SQL_RULE,
        level="error",
        message=(
            f"cannot render this revision's SQL offline: {exc.__class__.__name__}: "
            f"{detail[:300]} (what it printed before is linted, the rest is not; "
            f"acknowledge `{OFFLINE_SQL_RULE}` if the rehearsal's result is enough)"
        ),
        line=1,
        sql_line=0,
        revision=revision,
        file=path,
    )


def _unfinished(item: RenderedRevision) -> str:
    """The end of a revision that could not be rendered: said, and its transaction closed
    (squawk would otherwise report the missing COMMIT, which the upgrade does send)."""
    if item.failure is None:
        return ""
    closing = "COMMIT;\n" if re.search(r"^BEGIN;$", item.sql, re.M) else ""
    return "-- not rendered offline past this point\n" + closing


def render_offline_revisions(
    project: AlembicProject,
    script: ScriptDirectory,
    start: Sequence[str],
    target: str,
    *,
    preamble: Sequence[str] = (),
) -> tuple[RenderedRevision, ...]:
    """Each pending revision of ``start -> target`` rendered offline on its own.

    One ``alembic upgrade <down_revision(s)>:<revision> --sql`` pass per revision, in the
    order the upgrade runs them, each in one transaction after the ``preamble`` lines. A
    revision that cannot be rendered offline (it reads the database through
    ``op.get_bind()``, binds a value without a literal form, ...) gets its
    :data:`OFFLINE_SQL_RULE` finding and the next revisions are rendered all the same.
    Raises :class:`MigrationError` when ``start -> target`` is not an upgrade path.
    """
    try:
        steps = script._upgrade_revs(target, tuple(start))  # type: ignore[arg-type]
    except Exception as exc:  # noqa: BLE001 - alembic's revision errors, several classes
        shown = ", ".join(start) or "base"
        raise MigrationError(
            f"lint: cannot list the revisions from {shown} to {target}: "
            f"{str(exc).strip().splitlines()[0] if str(exc).strip() else exc!r} "
            "(check the history's heads)."
        ) from None
    config = project.config()
    rendered: list[RenderedRevision] = []
    for step in steps:
        revision = step.revision.revision
        path = step.revision.path
        buffer = io.StringIO()
        for line in preamble:
            buffer.write(line + "\n")
        down = tuple(step.from_revisions_no_deps)
        failure = None
        try:
            with EnvironmentContext(
                config,
                script,
                fn=lambda _heads, _context, step=step: [step],
                as_sql=True,
                starting_rev=down or None,  # type: ignore[arg-type]
                destination_rev=revision,
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
        except Exception as exc:  # noqa: BLE001 - any error of a revision's code offline
            failure = _offline_failure(revision, path, exc)
        rendered.append(RenderedRevision(revision, path, buffer.getvalue(), failure))
    return tuple(rendered)


# ------------------------------------------------------------------------- squawk runs


def _squawk_args(
    binary: Path, excluded: Sequence[str], pg_version: str | None
) -> list[str]:
    args = [str(binary), "--reporter", "json"]
    if excluded:
        args.append("--exclude=" + ",".join(excluded))
    if pg_version:
        args.append(f"--pg-version={pg_version}")
    return args


def _run_squawk_files(
    texts: Sequence[str],
    *,
    excluded: Sequence[str] = (),
    pg_version: str | None = None,
    executable: Path | None = None,
) -> list[list[dict[str, Any]]]:
    """squawk's raw findings for each of ``texts`` (one file each), in that order.

    squawk takes many paths and names each finding's file, so the files go to as few
    runs as the command line allows (:data:`SQUAWK_FILES_PER_RUN` a run).
    """
    found: list[list[dict[str, Any]]] = [[] for _ in texts]
    if not texts:
        return found
    binary = executable or squawk_executable()
    base = _squawk_args(binary, excluded, pg_version)
    with tempfile.TemporaryDirectory(prefix="abparts_ops_lint_") as folder:
        names = [f"rev_{index:05d}.sql" for index in range(len(texts))]
        for name, text in zip(names, texts, strict=True):
            (Path(folder) / name).write_text(text, encoding="utf-8")
        index_of = {name: index for index, name in enumerate(names)}
        for first in range(0, len(names), SQUAWK_FILES_PER_RUN):
            batch = names[first : first + SQUAWK_FILES_PER_RUN]
            for item in _squawk_json(binary, [*base, *batch], folder):
                where = index_of.get(os.path.basename(str(item.get("file") or "")))
                if where is None:
                    if len(batch) != 1:
                        raise MigrationError(
                            f"lint: squawk reported a finding without a known file "
                            f"({str(item.get('file'))[:100]!r}); install squawk-cli>=2.70,<3."
                        )
                    where = index_of[batch[0]]
                found[where].append(item)
    return found


def _squawk_json(binary: Path, args: list[str], folder: str) -> list[dict[str, Any]]:
    try:
        result = subprocess.run(
            args, capture_output=True, text=True, timeout=SQUAWK_TIMEOUT_SECONDS, cwd=folder
        )
    except (OSError, subprocess.SubprocessError) as exc:
        raise MigrationError(f"lint: cannot run {binary}: {exc} (reinstall squawk-cli).") from None
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
    return [item for item in parsed if isinstance(item, dict)]


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
    return _run_squawk_files(
        [sql], excluded=excluded, pg_version=pg_version, executable=executable
    )[0]


def _pg_version(server_version: str | None) -> str | None:
    match = re.match(r"(\d+)(?:\.(\d+))?", server_version or "")
    if not match:
        return None
    return f"{match.group(1)}.{match.group(2) or 0}"


# ------------------------------------------------------------------------------ lint


def _statement_at(unit: _Unit, zero_based: int) -> int | None:
    """The 0-based index of the executed statement holding ``zero_based`` (a line)."""
    if not unit.starts or not unit.starts[0] <= zero_based < unit.stop:
        return None
    return bisect.bisect_right(unit.starts, zero_based) - 1


def _findings_of(
    unit: _Unit,
    raw: Sequence[dict[str, Any]],
    *,
    first_line: int,
    errors: set[str],
    skip: set[str],
    line_map: Sequence[int] | None = None,
) -> list[LintFinding]:
    """``raw`` squawk findings on ``unit`` as :class:`LintFinding` (``line_map`` turns the
    lines of a re-run's text back into ``unit.text``'s)."""
    lines = unit.text.splitlines()
    out: list[LintFinding] = []
    for item in raw:
        rule = str(item.get("rule_name") or "unknown")
        if rule in skip:
            continue
        zero_based = int(item.get("line") or 0)
        end = int(item.get("line_end") or zero_based)
        if line_map is not None:
            zero_based = line_map[min(zero_based, len(line_map) - 1)]
            end = line_map[min(end, len(line_map) - 1)]
        number = _statement_at(unit, zero_based)
        if number is not None:
            statement = " ".join(_terminated(unit.statements[number]).split())
        else:
            statement = " ".join(
                part.strip() for part in lines[zero_based : end + 1] if part.strip()
            )
        squawk_level = str(item.get("level") or "")
        level = "error" if squawk_level.lower() == "error" or rule in errors else "warning"
        out.append(
            LintFinding(
                rule=rule,
                level=level,
                message=str(item.get("message") or ""),
                help=str(item.get("help") or ""),
                line=zero_based + 1,
                sql_line=first_line + zero_based,
                revision=unit.revision,
                statement=statement[:500],
                squawk_level=squawk_level,
                file=unit.path,
                statement_number=None if number is None else number + 1,
            )
        )
    return out


def _without_unparsed(unit: _Unit, bad: set[int]) -> tuple[str, list[int]]:
    """``unit.text`` without the executed statements in ``bad``, and for each line of the
    result its line in ``unit.text``."""
    lines = unit.text.splitlines(keepends=True)
    bounds = [*unit.starts, unit.stop]
    keep: list[int] = list(range(unit.starts[0]))
    for index in range(len(unit.statements)):
        if index not in bad:
            keep.extend(range(bounds[index], bounds[index + 1]))
    keep.extend(range(unit.stop, len(lines)))
    return "".join(lines[i] for i in keep), keep


def _lint_units(
    units: Sequence[_Unit],
    *,
    excluded: Sequence[LintExclusion],
    error_rules: Iterable[str],
    server_version: str | None,
    source: str,
    executable: Path | None,
) -> LintReport:
    """squawk on each unit's own file (one run for all), findings mapped to revisions.

    A squawk syntax error hides every other finding of its file; in executed SQL the
    statement that squawk could not parse is known, so the revision's other statements
    are linted again without it (one more run, only for such revisions).
    """
    errors = set(error_rules)
    skip = {e.rule for e in excluded}
    to_squawk = sorted(skip - PROJECT_RULES)
    pg_version = _pg_version(server_version)
    pieces: list[RevisionSQL] = []
    line = 1
    for unit in units:
        pieces.append(RevisionSQL(unit.revision, unit.path, unit.text, line))
        line += unit.text.count("\n")
    raw = _run_squawk_files(
        [unit.text for unit in units], excluded=to_squawk, pg_version=pg_version,
        executable=executable,
    )
    findings: list[LintFinding] = []
    again: list[tuple[int, str, list[int]]] = []
    for index, (unit, piece, items) in enumerate(zip(units, pieces, raw, strict=True)):
        found = _findings_of(unit, items, first_line=piece.first_line, errors=errors, skip=skip)
        findings.extend(found)
        bad = {
            f.statement_number - 1 for f in found
            if f.rule == SQUAWK_SYNTAX_RULE and f.statement_number is not None
        }
        if bad and len(bad) < len(unit.statements):
            text, line_map = _without_unparsed(unit, bad)
            again.append((index, text, line_map))
        if unit.failure is not None and unit.failure.rule not in skip:
            findings.append(replace(unit.failure, sql_line=piece.first_line))
    if again:
        rerun = _run_squawk_files(
            [text for _, text, _ in again], excluded=to_squawk, pg_version=pg_version,
            executable=executable,
        )
        for (index, _, line_map), items in zip(again, rerun, strict=True):
            seen = {(f.rule, f.line) for f in findings if f.revision == units[index].revision}
            findings.extend(
                f for f in _findings_of(
                    units[index], items, first_line=pieces[index].first_line,
                    errors=errors, skip=skip, line_map=line_map,
                )
                if (f.rule, f.line) not in seen
            )
    findings.sort(key=lambda f: (f.level != "error", f.sql_line, f.rule))
    return LintReport(
        findings=tuple(findings),
        revisions=tuple(pieces),
        sql="".join(unit.text for unit in units),
        excluded=tuple(excluded),
        source=source,
    )


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
    executable: Path | None = None,
) -> LintReport:
    """Lint the offline SQL of ``start -> target``, each revision on its own.

    The fallback of :func:`lint_executed` when no rehearsal ran: each revision is rendered
    by :func:`render_offline_revisions` (one that cannot be rendered gives one
    :data:`OFFLINE_SQL_RULE` finding, for itself only) and squawk reads one file per
    revision. ``excluded`` rules are not checked at all; findings of ``error_rules`` and
    squawk's own errors are error-level. Raises :class:`MigrationError` when squawk
    cannot run.
    """
    units = [
        _Unit(
            item.revision,
            item.path,
            _header(item.revision, item.path, "offline SQL (alembic upgrade --sql)")
            + item.sql
            + _unfinished(item),
            failure=item.failure,
        )
        for item in render_offline_revisions(project, script, start, target, preamble=preamble)
    ]
    return _lint_units(
        units, excluded=excluded, error_rules=error_rules, server_version=server_version,
        source="offline", executable=executable,
    )


def executed_revisions(progress: RunProgress) -> tuple[ExecutedRevision, ...]:
    """What each revision executed in a run of :func:`~.runner.run_revisions`.

    The revisions that ran to the end, in order, each with its file and its statements
    (none for a revision that executed nothing); then the one that was running when the
    run stopped, if it executed anything.
    """
    grouped: dict[str, list[str]] = {}
    for executed in progress.executed:
        if executed.revision is not None:
            grouped.setdefault(executed.revision, []).append(executed.sql)
    out = [
        ExecutedRevision(applied.revision, applied.file,
                         tuple(grouped.pop(applied.revision, ())))
        for applied in progress.applied
    ]
    if progress.current is not None and progress.current in grouped:
        out.append(ExecutedRevision(progress.current, progress.current_file,
                                    tuple(grouped.pop(progress.current))))
    return tuple(out)


def lint_executed(
    revisions: Sequence[ExecutedRevision],
    *,
    excluded: Sequence[LintExclusion] = (),
    error_rules: Iterable[str] = DEFAULT_ERROR_RULES,
    preamble: Sequence[str] = (),
    server_version: str | None = None,
    executable: Path | None = None,
) -> LintReport:
    """Lint the SQL each revision really executed in the rehearsal, each on its own.

    Each revision's statements (see :func:`executed_revisions`), each ending in a
    semicolon, go into a file of their own after the ``preamble`` lines, in one
    transaction; squawk reads all files in one run. Every finding names its revision, its
    file, the line in the revision's text (:attr:`LintReport.revisions`) and the number
    of the executed statement. ``excluded``, ``error_rules`` and ``server_version`` are
    those of :func:`lint_pending`. Raises :class:`MigrationError` when squawk cannot run.
    """
    units = [_executed_unit(item, preamble) for item in revisions]
    return _lint_units(
        units, excluded=excluded, error_rules=error_rules, server_version=server_version,
        source="executed", executable=executable,
    )
