"""The package's import circles: ``python scripts/import_graph.py [--under clay_exp.design] [--dot f.dot]``.

Prints every circle of imports in clay_exp (imports inside functions count) and every underscore
name one module imports from another; exits 1 if there is a circle. ``--dot`` also writes the whole
graph for Graphviz (``dot -Tsvg f.dot -o imports.svg``), modules on a circle in red. Logic:
clay_exp/import_graph.py (tests/test_package_shape.py holds the package to it).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from clay_exp.import_graph import cycles, import_graph, private_imports, to_dot

PACKAGE = Path(__file__).resolve().parents[1] / "clay_exp"


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--package", type=Path, default=PACKAGE, help="the package folder (default clay_exp/)")
    p.add_argument(
        "--under", default=None, help="only modules whose name starts with this (e.g. clay_exp.report)"
    )
    p.add_argument("--dot", type=Path, default=None, help="also write the graph in Graphviz's DOT language")
    args = p.parse_args(argv)
    graph = import_graph(args.package)
    if args.under:
        prefix = args.under
        graph = {
            m: {t for t in ts if t.startswith(prefix)} for m, ts in graph.items() if m.startswith(prefix)
        }
    circles = cycles(graph)
    edges = sum(len(targets) for targets in graph.values())
    print(f"{len(graph)} modules, {edges} imports between them, {len(circles)} circle(s)")
    for circle in circles:
        print("circle: " + " <-> ".join(circle))
    for found in private_imports(args.package):
        if not args.under or found.module.startswith(args.under):
            print(f"private name: {found.module}:{found.line} imports {found.name} from {found.source}")
    if args.dot:
        args.dot.write_text(to_dot(graph, circles) + "\n")
        print(f"wrote {args.dot}")
    return 1 if circles else 0


if __name__ == "__main__":
    sys.exit(main())
