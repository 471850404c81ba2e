"""The layers: ``core/`` knows nothing of Dagster, and imports go one way only.

``core/`` is a library a person can use from a plain script; ``defs/`` is the thin Dagster
layer on top of it and ``definitions.py`` the only wiring. These tests read the source
(fast, no database) and import the whole core in a fresh interpreter.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "abparts_ops"


def _imports(path: Path) -> set[str]:
    """Every module name ``path`` imports (absolute names; relative imports resolved)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = path.relative_to(PACKAGE.parent).with_suffix("").parts[: -node.level]
                names.add(".".join([*base, node.module] if node.module else base))
            elif node.module:
                names.add(node.module)
    return names


def _modules(folder: str) -> list[Path]:
    return sorted((PACKAGE / folder).rglob("*.py"))


def test_core_never_imports_dagster_or_the_layers_above() -> None:
    """No module under ``core/`` imports dagster, ``defs`` or ``definitions``."""
    offenders = {
        str(path.relative_to(PACKAGE)): sorted(
            name
            for name in _imports(path)
            if name.split(".")[0] in {"dagster", "dagster_graphql", "dagster_webserver"}
            or name.startswith(("abparts_ops.defs", "abparts_ops.definitions"))
        )
        for path in _modules("core")
    }
    assert not {k: v for k, v in offenders.items() if v}


def test_embedded_never_imports_the_dagster_layer() -> None:
    """The embedded server and demo are below ``defs/`` too (the CLI and tests use them)."""
    offenders = {
        str(path.relative_to(PACKAGE)): sorted(
            name
            for name in _imports(path)
            if name.split(".")[0] == "dagster"
            or name.startswith(("abparts_ops.defs", "abparts_ops.definitions"))
        )
        for path in _modules("embedded")
        if "demo_app" not in path.parts  # the sample application, not our code
    }
    assert not {k: v for k, v in offenders.items() if v}


def test_defs_never_import_the_wiring() -> None:
    """``defs/`` modules never import ``definitions.py`` (it imports them)."""
    offenders = [
        str(path.relative_to(PACKAGE))
        for path in _modules("defs")
        if any(name.startswith("abparts_ops.definitions") for name in _imports(path))
    ]
    assert not offenders


def test_importing_all_of_core_loads_no_dagster() -> None:
    """Import every core module in a fresh interpreter: ``dagster`` is never loaded,
    not even through a dependency."""
    modules = [
        ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        for path in _modules("core")
    ]
    modules = [m.removesuffix(".__init__") for m in modules]
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'dagster'))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert done.stdout.strip() == "[]", done.stdout + done.stderr


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_cycles() -> list[list[str]]:
    """Every cycle of the package's import graph (imports inside functions count too)."""
    graph: dict[str, set[str]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        graph[_module_name(path)] = set()
    for path in sorted(PACKAGE.rglob("*.py")):
        module = _module_name(path)
        for name in _imports(path):
            while name and name not in graph:  # ``from pkg.mod import obj``: ``pkg.mod``
                name = name.rpartition(".")[0]
            if name and name != module and not module.startswith(name + "."):
                graph[module].add(name)
    cycles: list[list[str]] = []
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append([*stack[stack.index(nxt) :], nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)
    return cycles


def test_no_import_cycle() -> None:
    """No module imports, even lazily inside a function, one that imports it back."""
    assert import_cycles() == []


#: The lifecycle folders of ``core/``, each allowed to import only those before it (the
#: top-level modules of ``core/``: settings, db, quoting, errors, scratch, doctor, are
#: outside this order).
LIFECYCLE = ("schema", "history", "reset", "watch", "rollout")
#: Folders of one rank do not import each other.
RANK = {"schema": 0, "history": 1, "reset": 2, "watch": 2, "rollout": 3}


def test_core_folders_import_only_the_stages_before_them() -> None:
    """schema ← history ← reset, watch ← rollout: no folder imports a later stage."""
    wrong = []
    for folder in LIFECYCLE:
        for path in _modules(f"core/{folder}"):
            for name in _imports(path):
                parts = name.split(".")
                if parts[:2] != ["abparts_ops", "core"] or len(parts) < 3:
                    continue
                other = parts[2]
                if other in RANK and other != folder and RANK[other] >= RANK[folder]:
                    wrong.append(f"{path.relative_to(PACKAGE)} imports {name}")
    assert wrong == []
