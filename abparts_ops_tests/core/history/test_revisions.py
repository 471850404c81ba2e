"""read_history: order, heads, merges, branch points, files, fingerprint, Markdown."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from abparts_ops.core.history.project import load_project
from abparts_ops.core.history.revisions import check_single_head, read_history
from abparts_ops_tests.core.history.projects import Rev, linear, write_project


def test_linear_chain(tmp_path: Path) -> None:
    ini = write_project(tmp_path, linear(4))
    versions = tmp_path / "migrations" / "versions"
    (versions / "README").write_text("notes\n", encoding="utf-8")
    (versions / "__init__.py").write_text("", encoding="utf-8")
    (versions / "stray.txt").write_text("x\n", encoding="utf-8")
    (versions / "__pycache__").mkdir()
    (versions / "__pycache__" / "r001_rev.cpython-311.pyc").write_bytes(b"\0")

    history = read_history(load_project(ini))

    assert [r.revision for r in history.revisions] == ["r001", "r002", "r003", "r004"]
    assert history.heads == ("r004",)
    assert history.bases == ("r001",)
    assert history.merges == () and history.branch_points == ()
    first, last = history.revisions[0], history.revisions[-1]
    assert first.is_base and not first.is_head and first.down_revisions == ()
    assert last.is_head and last.down_revisions == ("r003",)
    assert first.message == "revision r001"
    assert first.path == versions / "r001_rev.py"
    assert first.sha256 == hashlib.sha256(first.path.read_bytes()).hexdigest()
    assert sorted(p.name for p in history.non_revision_files) == [
        "README",
        "__init__.py",
        "stray.txt",
    ]
    assert check_single_head(history) == (True, "single head r004 (4 revisions)")


def test_fingerprint_tracks_revision_files_only(tmp_path: Path) -> None:
    ini = write_project(tmp_path, linear(2))
    project = load_project(ini)
    versions = tmp_path / "migrations" / "versions"
    before = read_history(project).fingerprint
    assert read_history(project).fingerprint == before  # deterministic
    (versions / "README").write_text("docs\n", encoding="utf-8")
    assert read_history(project).fingerprint == before
    path = versions / "r002_rev.py"
    path.write_text(path.read_text() + "# edited\n", encoding="utf-8")
    assert read_history(project).fingerprint != before
    expected = hashlib.sha256(
        "".join(
            f"{r.path.name}\t{r.sha256}\n"
            for r in sorted(read_history(project).revisions, key=lambda r: r.path.name)
        ).encode()
    ).hexdigest()
    assert read_history(project).fingerprint == expected


def test_two_heads(tmp_path: Path) -> None:
    revs = [*linear(2), Rev("b1", "r002"), Rev("a1", "r002")]
    history = read_history(load_project(write_project(tmp_path, revs)))
    assert [r.revision for r in history.revisions] == ["r001", "r002", "a1", "b1"]
    assert history.heads == ("a1", "b1")
    assert history.branch_points == ("r002",)
    assert history.get("r002").is_branch_point
    passed, text = check_single_head(history)
    assert not passed
    assert "a1" in text and "b1" in text and "2 heads" in text
    assert "\n" not in text


def test_merge(tmp_path: Path) -> None:
    revs = [
        *linear(1),
        Rev("a1", "r001"),
        Rev("b1", "r001"),
        Rev("m1", ("a1", "b1"), message="merge heads"),
        Rev("z1", "m1"),
    ]
    history = read_history(load_project(write_project(tmp_path, revs)))
    order = [r.revision for r in history.revisions]
    assert order == ["r001", "a1", "b1", "m1", "z1"]
    assert history.merges == ("m1",)
    assert history.get("m1").down_revisions == ("a1", "b1")
    assert history.get("m1").is_merge and history.get("m1").message == "merge heads"
    assert history.heads == ("z1",)
    assert check_single_head(history)[0]

    md = history.to_markdown()
    for rev in order:
        assert rev in md
    assert "merge" in md and "branch point" in md and "head" in md
    tree = history.tree_lines()
    assert tree[0].startswith("r001 [base, branch point]")
    assert any("m1 [merge]" in line for line in tree)
    assert any("m1 (merge, shown above)" in line for line in tree)
    assert any("z1 [head]" in line for line in tree)


def test_order_does_not_depend_on_file_names(tmp_path: Path) -> None:
    revs = [
        Rev("c", None, filename="zz_first.py"),
        Rev("b", "c", filename="mm_second.py"),
        Rev("a", "b", filename="aa_third.py"),
    ]
    history = read_history(load_project(write_project(tmp_path, revs)))
    assert [r.revision for r in history.revisions] == ["c", "b", "a"]


def test_markdown_and_dict_of_a_tangled_history(tmp_path: Path) -> None:
    revs = [
        *linear(3),
        Rev("a1", "r003"),
        Rev("b1", "r003"),
        Rev("m1", ("a1", "b1")),
        Rev("c1", "r001", message="side | branch"),
    ]
    history = read_history(load_project(write_project(tmp_path, revs)))
    md = history.to_markdown()
    for info in history.revisions:
        assert f"`{info.revision}`" in md
    assert "side \\| branch" in md  # table cells are escaped
    assert "heads: c1, m1" in md
    data = json.loads(json.dumps(history.to_dict()))
    assert data["heads"] == ["c1", "m1"]
    assert data["fingerprint"] == history.fingerprint
    assert [r["revision"] for r in data["revisions"]] == [r.revision for r in history.revisions]


def test_empty_history(tmp_path: Path) -> None:
    history = read_history(load_project(write_project(tmp_path, [])))
    assert history.revisions == () and history.heads == ()
    assert check_single_head(history)[0] is False
    assert "No revision files" in history.to_markdown()


def test_long_chain_does_not_recurse(tmp_path: Path) -> None:
    history = read_history(load_project(write_project(tmp_path, linear(1050))))
    assert len(history.tree_lines()) == 1050
    assert history.heads == ("r1050",)
