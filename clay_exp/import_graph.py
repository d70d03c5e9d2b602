"""The package's import graph, read from the source: who imports whom, the circles, private names.

Every ``import`` counts, wherever it stands: at the top, inside a function (the usual way a circle
is held open), under ``if TYPE_CHECKING``. An edge goes to the module named, or, for
``from package import name`` where ``package.name`` is a module of the package, to that module.
Nothing is imported to build the graph (the files are parsed), so a broken module cannot hide one.

``python scripts/import_graph.py`` prints the circles (and ``--dot`` the whole graph for Graphviz).
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class PrivateImport:
    """``from <source> import <name>`` in `module`, where `name` starts with an underscore."""

    module: str
    source: str
    name: str
    line: int


def module_names(package_dir: Path) -> dict[str, Path]:
    """Every module of the package at `package_dir` by dotted name (``pkg``, ``pkg.sub.mod``)."""
    package_dir = Path(package_dir)
    root = package_dir.parent
    names = {}
    for path in sorted(package_dir.rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        names[".".join(parts)] = path
    return names


def _absolute(module: str, is_package: bool, level: int, target: str | None) -> str:
    """The absolute name of a (possibly relative) ``from`` import's module."""
    if level == 0:
        return target or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (level - 1)]
    return ".".join([*base, target] if target else base)


def _imports(module: str, path: Path, known: Iterable[str]) -> list[tuple[str, str | None, int]]:
    """(imported module, imported name or None, line) for every import statement in `path`."""
    known = set(known)
    tree = ast.parse(path.read_text(), filename=str(path))
    out: list[tuple[str, str | None, int]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(alias.name, None, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            source = _absolute(module, path.name == "__init__.py", node.level, node.module)
            for alias in node.names:
                submodule = f"{source}.{alias.name}"
                if submodule in known:
                    out.append((submodule, None, node.lineno))
                else:
                    out.append((source, alias.name, node.lineno))
    return out


def import_graph(package_dir: Path) -> dict[str, set[str]]:
    """Module -> the package's modules it imports (itself excluded), for the package at `package_dir`."""
    modules = module_names(package_dir)
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        targets = {target for target, _, _ in _imports(name, path, modules) if target in modules}
        graph[name] = targets - {name}
    return graph


def private_imports(package_dir: Path) -> list[PrivateImport]:
    """Underscore names one module of the package imports from another (they should be public)."""
    modules = module_names(package_dir)
    found = []
    for name, path in modules.items():
        for source, imported, line in _imports(name, path, modules):
            if imported and imported.startswith("_") and source in modules and source != name:
                found.append(PrivateImport(name, source, imported, line))
    return found


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The import circles: strongly connected components of more than one module, each sorted,
    largest first (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(components, key=lambda c: (-len(c), c))


def to_dot(graph: dict[str, set[str]], circles: Iterable[Iterable[str]] = ()) -> str:
    """The graph in Graphviz's DOT language; modules on a circle drawn red."""
    red = {m for circle in circles for m in circle}
    lines = ["digraph imports {", "  rankdir=LR;", "  node [shape=box, fontsize=10];"]
    for name in sorted(graph):
        lines.append(f'  "{name}"' + (" [color=red, fontcolor=red];" if name in red else ";"))
    for name in sorted(graph):
        lines += [f'  "{name}" -> "{target}";' for target in sorted(graph[name])]
    lines.append("}")
    return "\n".join(lines)
