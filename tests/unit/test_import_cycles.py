"""No import circles among the project's modules.

Two modules that import each other are one module in two files: neither can be read, tested or moved
without the other, and which one loads first decides what works. The graph is read from the source
(``ast``), so an import inside a function counts as much as one at the top: it is the same dependency,
only hidden.
"""

from __future__ import annotations

import ast
import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SKIPPED = {".git", ".venv", "data", "__pycache__", ".bench"}


def project_modules() -> dict[str, Path]:
    """Every module of the repository by dotted name (a package by its own name, for its __init__)."""
    modules: dict[str, Path] = {}
    for folder, dirs, files in os.walk(ROOT):
        # alembic loads migrations by path: they are not modules of the package
        # and no virtualenv is part of the project, whatever its name (CI makes .venv-py3.13 beside .venv)
        dirs[:] = [
            d
            for d in dirs
            if d not in SKIPPED and d != "migrations" and not (Path(folder) / d / "pyvenv.cfg").exists()
        ]
        for file in files:
            if file.endswith(".py"):
                parts = (Path(folder) / file).relative_to(ROOT).with_suffix("").parts
                name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
                modules[name] = Path(folder) / file
    return modules


def imported(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The project modules ``name`` imports, anywhere in it."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            # ``from a import b``: b is a module of its own, or a name defined in a
            targets = [
                f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names
            ]
        else:
            continue
        found.update(target for target in targets if target in modules and target != name)
    return found


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in sorted(graph[node]):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_import_cycles():
    modules = project_modules()
    graph = {name: imported(name, path, modules) for name, path in modules.items()}
    assert len(graph) > 100 and graph["services.dossier.service"], "the graph reads the project"
    found = cycles(graph)
    assert not found, "modules that import each other, directly or round about:\n" + "\n".join(
        " <-> ".join(component) for component in found
    )


def test_a_cycle_is_found():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert cycles(graph) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []
