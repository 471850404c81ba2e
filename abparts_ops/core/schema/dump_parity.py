"""An oracle independent of the snapshot: ``pg_dump`` of two databases must be identical.

The snapshot only knows the object kinds it models, so a round trip of snapshots cannot
see a trigger, a policy or any other kind it does not model. :func:`dump_parity` asks
``pg_dump`` instead: the schema-only dump of the source and of the database built by the
baseline, normalized, must be the same text.

Normalization (:func:`parity_text`): the dump is cut into pg_dump's entries (each opens
with a ``-- Name: x; Type: T; Schema: s; Owner: o`` header); the session preamble (``SET``
lines, ``set_config``), the ``Dumped from/by`` and ``\\restrict`` lines and the closing
comment are dropped; the owner in each header is blanked; entries of the excluded
objects are dropped (pg_dump's ``--exclude-table`` already leaves out the excluded tables
with their indexes, constraints, triggers, policies, rules and owned sequences; types,
domains, functions ... whose name matches an exclusion are dropped here, as the snapshot
drops them); the entries are then sorted, since pg_dump's order of objects with equal
names follows their OIDs, which differ between two databases with the same schema.

Both dumps go through :func:`~abparts_ops.core.schema.dump.run_pg_dump`: each URL reaches
pg_dump in a private service file, never on its command line.
"""

from __future__ import annotations

import difflib
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from abparts_ops.core.errors import AbpartsOpsError
from abparts_ops.core.schema.dump import (
    find_pg_dump,
    major_version,
    pg_dump_candidates,
    run_pg_dump,
    sequences_owned_by_excluded,
    supports_restrict_key,
    version_number,
)
from abparts_ops.core.schema.exclusions import compile_patterns

#: How many lines of the unified diff a failure shows.
DIFF_LINES = 200

_HEADER = re.compile(
    r"^-- (?:Data for )?Name: (?P<name>.*?); Type: (?P<type>.*?); Schema: (?P<schema>.*?);"
    r" Owner: [^;]*(?P<rest>;.*)?$"
)
_NOISE = re.compile(
    r"^(SET \w+|SELECT pg_catalog\.set_config\(|-- Dumped (from database|by pg_dump) version |"
    r"\\(un)?restrict\b|-- PostgreSQL database dump( complete)?$)"
)
#: Entry types whose pg_dump tag is ``<table> <object>``.
_ON_TABLE = {"CONSTRAINT", "FK CONSTRAINT", "TRIGGER", "POLICY", "RULE", "DEFAULT"}


@dataclass(frozen=True)
class DumpEntry:
    """One object of a pg_dump: its type and tag (``parts parts_pkey``) and its text."""

    type: str
    name: str
    schema: str
    text: str

    @property
    def label(self) -> str:
        """How a summary names it: ``TRIGGER parts_touch ON parts``, ``TABLE parts``."""
        if self.type in _ON_TABLE and " " in self.name:
            table, name = self.name.split(" ", 1)
            return f"{self.type} {name} ON {table}"
        return f"{self.type} {self.name}"

    def owner_names(self) -> list[str]:
        """The names an exclusion is matched against (the object, or its table)."""
        name = self.name
        if self.type == "COMMENT":
            words = name.split(" ")
            if " ON " in name:  # COMMENT of a CONSTRAINT/TRIGGER/POLICY/RULE x ON t
                return [name.rsplit(" ON ", 1)[1]]
            name = words[-1] if len(words) > 1 else name
            if words[0] == "COLUMN":
                return [name.split(".", 1)[0]]
        elif self.type in _ON_TABLE and " " in name:
            return [name.split(" ", 1)[0]]
        return [name.split("(", 1)[0]]


def parse_dump(text: str) -> list[DumpEntry]:
    """The entries of a pg_dump (plain format), noise lines left out (see module doc)."""
    lines = text.splitlines()
    starts = [
        i for i, line in enumerate(lines) if _HEADER.match(line) and i > 0 and lines[i - 1] == "--"
    ]
    entries = []
    for n, start in enumerate(starts):
        end = starts[n + 1] - 1 if n + 1 < len(starts) else len(lines)
        header = _HEADER.match(lines[start])
        assert header is not None
        body = [line.rstrip() for line in lines[start + 1 : end] if not _NOISE.match(line)]
        while body and body[-1] in ("", "--"):
            body.pop()
        while body and body[0] in ("", "--"):
            body.pop(0)
        head = (
            f"-- Name: {header['name']}; Type: {header['type']}; Schema: {header['schema']}"
            + (header["rest"] or "")
        )
        entries.append(
            DumpEntry(
                type=header["type"],
                name=header["name"],
                schema=header["schema"],
                text="\n".join([head, "", *body]),
            )
        )
    return entries


def parity_entries(text: str, exclude: Sequence[str] = ()) -> list[DumpEntry]:
    """The normalized, sorted entries of a dump, the excluded objects left out."""
    patterns = [re.compile(p) for p in compile_patterns(exclude)]
    kept = [
        entry
        for entry in parse_dump(text)
        if not any(p.search(name) for p in patterns for name in entry.owner_names())
    ]
    return sorted(kept, key=lambda e: (e.type, e.name, e.text))


def parity_text(text: str, exclude: Sequence[str] = ()) -> str:
    """The text two dumps of the same schema share (see the module docstring)."""
    return "".join(entry.text + "\n\n" for entry in parity_entries(text, exclude))


@dataclass(frozen=True)
class ParityResult:
    """The comparison of two normalized dumps.

    ``missing`` are entries of the source the built database lacks, ``unexpected`` the
    reverse, ``changed`` entries both have with different text (labels, sorted);
    ``diff`` is the first :data:`DIFF_LINES` lines of the unified diff.
    """

    identical: bool
    missing: tuple[str, ...] = ()
    unexpected: tuple[str, ...] = ()
    changed: tuple[str, ...] = ()
    diff: str = ""
    diff_lines: int = 0
    entries: int = 0
    pg_dump_version: str | None = None
    problem: str | None = None
    searched: tuple[str, ...] = field(default_factory=tuple)

    def summary(self) -> str:
        """One line: what differs, named (``missing in the baseline: TRIGGER x ON t``)."""
        if self.problem:
            return self.problem
        if self.identical:
            return (
                "pg_dump of the source and of the rebuilt database agree "
                f"({self.entries} objects)"
            )
        parts = []
        for what, labels in (
            ("missing in the baseline", self.missing),
            ("only in the baseline", self.unexpected),
            ("different", self.changed),
        ):
            if labels:
                more = f" and {len(labels) - 8} more" if len(labels) > 8 else ""
                shown = ", ".join(labels[:8]) + more
                parts.append(f"{what}: {shown}")
        return "pg_dump differs: " + "; ".join(parts or ["entry order or layout"])

    def to_markdown(self) -> str:
        """The named differences and the (truncated) unified diff, as Markdown."""
        if self.problem or self.identical:
            return self.summary()
        lines = []
        for what, labels in (
            ("Missing in the baseline", self.missing),
            ("Only in the baseline", self.unexpected),
            ("Different", self.changed),
        ):
            if labels:
                lines += [f"**{what}** ({len(labels)}):", ""]
                lines += [f"- `{label}`" for label in labels]
                lines.append("")
        shown = len(self.diff.splitlines())
        note = f" (first {shown} of {self.diff_lines} lines)" if shown < self.diff_lines else ""
        lines += [f"Unified diff of the normalized dumps{note}:", "", "```diff", self.diff, "```"]
        return "\n".join(lines)


def compare_dumps(
    source: str,
    built: str,
    *,
    exclude: Sequence[str] = (),
    source_label: str = "source",
    built_label: str = "baseline",
    diff_lines: int = DIFF_LINES,
) -> ParityResult:
    """Compare two raw pg_dump texts after :func:`parity_entries` normalization."""
    return compare_entries(
        parity_entries(source, exclude),
        parity_entries(built, exclude),
        source_label=source_label,
        built_label=built_label,
        diff_lines=diff_lines,
    )


def compare_entries(
    left: list[DumpEntry],
    right: list[DumpEntry],
    *,
    source_label: str = "source",
    built_label: str = "baseline",
    diff_lines: int = DIFF_LINES,
) -> ParityResult:
    """Compare two dumps' normalized entries (:func:`parity_entries`, same exclusions)."""
    if len(left) == len(right) and all(a.text == b.text for a, b in zip(left, right, strict=True)):
        return ParityResult(True, entries=len(left))
    left_text = "".join(e.text + "\n\n" for e in left)
    right_text = "".join(e.text + "\n\n" for e in right)
    if left_text == right_text:
        return ParityResult(True, entries=len(left))
    left_by: dict[str, Counter[str]] = {}
    right_by: dict[str, Counter[str]] = {}
    for entries, by in ((left, left_by), (right, right_by)):
        for entry in entries:
            by.setdefault(entry.label, Counter())[entry.text] += 1
    missing = tuple(sorted(k for k in left_by if k not in right_by))
    unexpected = tuple(sorted(k for k in right_by if k not in left_by))
    changed = tuple(sorted(k for k in left_by if k in right_by and left_by[k] != right_by[k]))
    diff = list(
        difflib.unified_diff(
            left_text.splitlines(),
            right_text.splitlines(),
            fromfile=source_label,
            tofile=built_label,
            lineterm="",
        )
    )
    return ParityResult(
        False,
        missing=missing,
        unexpected=unexpected,
        changed=changed,
        diff="\n".join(diff[:diff_lines]),
        diff_lines=len(diff),
        entries=len(left),
    )


def _dump(executable: Path, url: str, *, schema: str, patterns: list[str]) -> str:
    return run_pg_dump(
        executable,
        url,
        schema=schema,
        exclude=patterns,
        exclude_exact=sequences_owned_by_excluded(url, schema=schema, exclude=patterns),
        restrict_key=supports_restrict_key(executable),
    )


def dump_parity(
    source_url: str,
    built_url: str,
    *,
    server_version: str | None,
    built_server_version: str | None = None,
    schema: str = "public",
    exclude: Sequence[str] = (),
    version_table: str = "alembic_version",
    search_dirs: Sequence[Path | str] | None = None,
    diff_lines: int = DIFF_LINES,
) -> ParityResult:
    """``pg_dump`` the source and the built database with one pg_dump, and compare.

    ``server_version`` is the source's; a ``pg_dump`` of that major version is required
    (see :func:`~abparts_ops.core.schema.dump.find_pg_dump`, ``search_dirs``), and the
    built database must be on the same major version (pg_dump prints what the server
    deparses). Without either, the result is not identical and ``problem`` says why in
    one line. ``exclude`` holds the exclusion globs; the version table is always excluded.
    """
    patterns = list(exclude)
    if version_table not in patterns:
        patterns.append(version_table)
    found = find_pg_dump(server_version, search_dirs)
    searched = tuple(str(p) for p in pg_dump_candidates(server_version, search_dirs))
    if found is None:
        major = major_version(server_version) or "?"
        return ParityResult(
            False,
            problem=(
                f"no pg_dump of PostgreSQL {major} (the source's major version) was found "
                f"(looked at {', '.join(searched) or 'nothing'}); dump_parity cannot run and "
                f"does not pass (install postgresql-client-{major}, or list its bin folder "
                "in ABPARTS_OPS_PG_DUMP_DIRS)."
            ),
            searched=searched,
        )
    executable, line = found
    pg_version = version_number(line) or line
    if built_server_version is not None:
        if major_version(server_version) != major_version(built_server_version):
            return ParityResult(
                False,
                problem=(
                    f"the scratch server runs PostgreSQL {built_server_version} but the source "
                    f"runs {server_version}; pg_dump output is comparable only on one major "
                    "version (use a scratch server of the source's major version)."
                ),
                pg_dump_version=pg_version,
            )
    try:
        # one dump at a time: each is reduced to its normalized entries before the next is
        # read, so the raw texts (tens of MB at 5,000 tables) are never held together
        source = parity_entries(
            _dump(executable, source_url, schema=schema, patterns=patterns), patterns
        )
        built = parity_entries(
            _dump(executable, built_url, schema=schema, patterns=patterns), patterns
        )
    except AbpartsOpsError as exc:
        return ParityResult(False, problem=str(exc).splitlines()[0], pg_dump_version=pg_version)
    result = compare_entries(
        source,
        built,
        source_label="source (pg_dump)",
        built_label="baseline on an empty database (pg_dump)",
        diff_lines=diff_lines,
    )
    return ParityResult(
        result.identical,
        missing=result.missing,
        unexpected=result.unexpected,
        changed=result.changed,
        diff=result.diff,
        diff_lines=result.diff_lines,
        entries=result.entries,
        pg_dump_version=pg_version,
    )
