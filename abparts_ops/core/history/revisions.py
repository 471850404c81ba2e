"""Reading an Alembic history: the chain of revisions, its heads, merges and files.

:func:`read_history` loads the revisions through Alembic (so it sees exactly what
``alembic`` would) and adds what the pipeline needs as evidence: each file's sha256, the
files in the versions folders that are not revisions, a fingerprint of the revision files,
a deterministic base-to-head order, and a readable Markdown picture of the graph.
"""

from __future__ import annotations

import hashlib
import heapq
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alembic import util as alembic_util

from abparts_ops.core.history.project import AlembicProject, load_revisions, revision_files


def file_sha256(path: Path) -> str:
    """The sha256 hex digest of the bytes of ``path``."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 16), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class RevisionInfo:
    """One revision file: its id, parents, docstring message, file, hash and role."""

    revision: str
    down_revisions: tuple[str, ...]
    message: str | None
    path: Path
    sha256: str
    is_head: bool
    is_base: bool
    is_merge: bool
    is_branch_point: bool

    def flags(self) -> tuple[str, ...]:
        """Short role labels: base, head, merge, branch point."""
        labels = []
        if self.is_base:
            labels.append("base")
        if self.is_merge:
            labels.append("merge")
        if self.is_branch_point:
            labels.append("branch point")
        if self.is_head:
            labels.append("head")
        return tuple(labels)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (path as a string)."""
        return {
            "revision": self.revision,
            "down_revisions": list(self.down_revisions),
            "message": self.message,
            "path": str(self.path),
            "sha256": self.sha256,
            "is_head": self.is_head,
            "is_base": self.is_base,
            "is_merge": self.is_merge,
            "is_branch_point": self.is_branch_point,
        }


def _md_cell(text: str | None) -> str:
    return (text or "").replace("|", "\\|").replace("\n", " ")


@dataclass(frozen=True)
class History:
    """The whole history of a project, ordered base to head (ties broken by id)."""

    revisions: tuple[RevisionInfo, ...]
    heads: tuple[str, ...]
    bases: tuple[str, ...]
    merges: tuple[str, ...]
    branch_points: tuple[str, ...]
    non_revision_files: tuple[Path, ...]
    fingerprint: str

    def get(self, revision: str) -> RevisionInfo:
        """The revision with id ``revision`` (KeyError when absent)."""
        for info in self.revisions:
            if info.revision == revision:
                return info
        raise KeyError(revision)

    def children(self) -> dict[str, tuple[str, ...]]:
        """Each revision's direct successors, in history order."""
        kids: dict[str, list[str]] = {info.revision: [] for info in self.revisions}
        for info in self.revisions:
            for parent in info.down_revisions:
                if parent in kids:
                    kids[parent].append(info.revision)
        return {rev: tuple(v) for rev, v in kids.items()}

    def tree_lines(self) -> list[str]:
        """An indented tree from each base to the heads.

        A merge is drawn in full under its first parent; under its other parents a line
        ``└─ <id> (merge, shown above)`` points back to it.
        """
        by_id = {info.revision: info for info in self.revisions}
        kids = self.children()
        shown: set[str] = set()
        lines: list[str] = []

        def label(info: RevisionInfo) -> str:
            flags = info.flags()
            text = info.revision + (f" [{', '.join(flags)}]" if flags else "")
            if info.message:
                text += f"  {info.message}"
            return text

        def walk(rev: str, first: str, cont: str) -> None:
            # A chain of single successors continues at the same indentation (a loop, so
            # long histories do not hit the recursion limit); branches indent one level.
            while True:
                if rev in shown:
                    lines.append(f"{first}{rev} (merge, shown above)")
                    return
                shown.add(rev)
                lines.append(f"{first}{label(by_id[rev])}")
                children = kids[rev]
                if len(children) == 1 and not by_id[children[0]].is_merge:
                    rev, first = children[0], cont
                    continue
                for i, child in enumerate(children):
                    last = i == len(children) - 1
                    walk(
                        child, cont + ("└─ " if last else "├─ "), cont + ("   " if last else "│  ")
                    )
                return

        for base in self.bases:
            walk(base, "", "")
        return lines

    def to_markdown(self) -> str:
        """A readable picture of the chain: summary, revision table and tree."""
        out = ["## Alembic history", ""]
        out.append(f"- revisions: {len(self.revisions)}")
        out.append(f"- heads: {', '.join(self.heads) or '(none)'}")
        out.append(f"- bases: {', '.join(self.bases) or '(none)'}")
        if self.merges:
            out.append(f"- merges: {', '.join(self.merges)}")
        if self.branch_points:
            out.append(f"- branch points: {', '.join(self.branch_points)}")
        if self.non_revision_files:
            names = ", ".join(p.name for p in self.non_revision_files)
            out.append(f"- other files in versions: {names}")
        out.append(f"- fingerprint: `{self.fingerprint}`")
        out.append("")
        if not self.revisions:
            out.append("_No revision files._")
            return "\n".join(out) + "\n"
        out.append("| # | revision | down revisions | message | file | sha256 | role |")
        out.append("|---|---|---|---|---|---|---|")
        for i, info in enumerate(self.revisions, start=1):
            out.append(
                f"| {i} | `{info.revision}` | {', '.join(info.down_revisions) or '—'} "
                f"| {_md_cell(info.message)} | {_md_cell(info.path.name)} "
                f"| `{info.sha256[:12]}` | {', '.join(info.flags())} |"
            )
        out.extend(["", "```text", *self.tree_lines(), "```", ""])
        return "\n".join(out)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form of the whole history."""
        return {
            "revisions": [info.to_dict() for info in self.revisions],
            "heads": list(self.heads),
            "bases": list(self.bases),
            "merges": list(self.merges),
            "branch_points": list(self.branch_points),
            "non_revision_files": [str(p) for p in self.non_revision_files],
            "fingerprint": self.fingerprint,
        }


def history_order(parents: Mapping[str, Iterable[str]]) -> list[str]:
    """Topological order base→head; among revisions ready together, smallest id first.

    ``parents`` maps each revision to its down revisions (those outside it are ignored).
    The one order of the history: :func:`read_history` and the history graph use it.
    """
    indegree = {rev: 0 for rev in parents}
    kids: dict[str, list[str]] = {rev: [] for rev in parents}
    for rev, downs in parents.items():
        for parent in downs:
            if parent in parents:
                indegree[rev] += 1
                kids[parent].append(rev)
    ready = [rev for rev, n in indegree.items() if n == 0]
    heapq.heapify(ready)
    order: list[str] = []
    while ready:
        rev = heapq.heappop(ready)
        order.append(rev)
        for child in kids[rev]:
            indegree[child] -= 1
            if indegree[child] == 0:
                heapq.heappush(ready, child)
    return order


def fingerprint_files(pairs: list[tuple[str, str]]) -> str:
    """sha256 over sorted ``(filename, sha256)`` pairs, one ``name\\tsha`` line each."""
    digest = hashlib.sha256()
    for name, sha in sorted(pairs):
        digest.update(f"{name}\t{sha}\n".encode())
    return digest.hexdigest()


def versions_fingerprint(folders: Iterable[Path]) -> str:
    """sha256 over every revision file under ``folders`` (sub-folders too).

    Each file counts by its name relative to its folder and the sha256 of its content
    (:func:`fingerprint_files`); files are read, never imported. It is the fingerprint of
    the history that the expected schemas are keyed by and that ``revision_files_sensor``
    watches, so both always agree on whether the files changed.
    """
    pairs: list[tuple[str, str]] = []
    for folder in map(Path, folders):
        if not folder.is_dir():
            continue
        for path in revision_files(folder, recursive=True):
            try:
                pairs.append((path.relative_to(folder).as_posix(), file_sha256(path)))
            except OSError:
                continue
    return fingerprint_files(pairs)


def read_history(project: AlembicProject) -> History:
    """Read the revision history of ``project`` (raises MigrationError on broken files).

    The fingerprint covers the revision files only (name relative to its versions
    folder, and content), so a README next to them does not change it.
    """
    script = project.script()
    scripts = load_revisions(project, script)
    infos: dict[str, RevisionInfo] = {}
    revision_paths: set[Path] = set()
    pairs: list[tuple[str, str]] = []
    roots = [folder.resolve() for folder in project.versions_dirs]
    for sc in scripts:
        path = Path(sc.path).resolve()
        revision_paths.add(path)
        sha = file_sha256(path)
        root = next((r for r in roots if path.is_relative_to(r)), path.parent)
        pairs.append((path.relative_to(root).as_posix(), sha))
        infos[sc.revision] = RevisionInfo(
            revision=sc.revision,
            down_revisions=tuple(alembic_util.to_tuple(sc.down_revision, default=())),
            message=(sc.doc or "").strip() or None,
            path=path,
            sha256=sha,
            is_head=sc.is_head,
            is_base=sc.is_base,
            is_merge=sc.is_merge_point,
            is_branch_point=sc.is_branch_point,
        )
    ordered = tuple(infos[rev] for rev in history_order(
        {rev: info.down_revisions for rev, info in infos.items()}
    ))
    others: list[Path] = []
    recursive = script.recursive_version_locations
    for folder in project.versions_dirs:
        for root, dirs, files in os.walk(folder):
            dirs[:] = sorted(d for d in dirs if d != "__pycache__")
            for name in sorted(files):
                path = (Path(root) / name).resolve()
                if path not in revision_paths:
                    others.append(Path(root) / name)
            if not recursive:
                break
    return History(
        revisions=ordered,
        heads=tuple(sorted(i.revision for i in ordered if i.is_head)),
        bases=tuple(sorted(i.revision for i in ordered if i.is_base)),
        merges=tuple(i.revision for i in ordered if i.is_merge),
        branch_points=tuple(i.revision for i in ordered if i.is_branch_point),
        non_revision_files=tuple(others),
        fingerprint=fingerprint_files(pairs),
    )


def check_single_head(history: History) -> tuple[bool, str]:
    """Whether the history has exactly one head, and one line saying so.

    On failure the line names every head and the fix (merge them).
    """
    heads = history.heads
    if len(heads) == 1:
        return True, f"single head {heads[0]} ({len(history.revisions)} revisions)"
    if not heads:
        return False, "no head: the versions folder holds no revisions"
    return False, (
        f"{len(heads)} heads: {', '.join(heads)} (merge them with 'alembic merge heads' or "
        "reset the history to a single baseline)"
    )
