"""The package's shape holds: no import circles, no private names imported across modules, no module
over 400 lines, and the data below the model: it imports neither the model nor Hydra."""

from __future__ import annotations

import ast
from pathlib import Path

from clay_exp.import_graph import cycles, import_graph, private_imports, to_dot

PACKAGE = Path(__file__).resolve().parents[1] / "clay_exp"
MAX_LINES = 400


def write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root / "pkg"


def imported_packages(path: Path) -> set[str]:
    """The top-level names of every package `path` imports (anywhere in the file)."""
    imported = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            imported.add(node.module.split(".")[0])
    return imported


def test_a_circle_held_open_by_an_import_inside_a_function_is_found(tmp_path):
    pkg = write(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/a.py": "from pkg.b import thing\n",
            "pkg/b.py": "def thing():\n    from . import a  # the usual way a circle is held open\n",
            "pkg/sub/__init__.py": "from pkg.sub import c\n",  # a package importing its own module
            "pkg/sub/c.py": "import os\nfrom ..a import thing as _t\nfrom pkg.sub.d import _helper\n",
            "pkg/sub/d.py": "import pkg.a\n",
        },
    )
    graph = import_graph(pkg)
    assert graph["pkg.a"] == {"pkg.b"}
    assert graph["pkg.b"] == {"pkg.a"}  # `from . import a` names the module pkg.a
    assert graph["pkg.sub.c"] == {"pkg.a", "pkg.sub.d"}  # relative, and os is not the package's
    assert cycles(graph) == [["pkg.a", "pkg.b"]]
    found = private_imports(pkg)
    assert [(f.module, f.source, f.name) for f in found] == [("pkg.sub.c", "pkg.sub.d", "_helper")]
    assert '"pkg.a" [color=red' in to_dot(graph, cycles(graph))


def test_a_longer_circle_is_one_component_and_a_one_way_package_has_none():
    graph = {"x": {"y"}, "y": {"z"}, "z": {"x", "w"}, "w": set(), "v": {"w"}}
    assert cycles(graph) == [["x", "y", "z"]]
    assert cycles({"x": {"y"}, "y": {"z"}, "z": set()}) == []


def test_design_has_no_import_circle_and_no_private_name_from_another_module():
    graph = import_graph(PACKAGE)
    assert "clay_exp.design.render_floors" in graph  # the graph really read design/
    design = {m: {t for t in ts if t.startswith("clay_exp.design")} for m, ts in graph.items()}
    assert [c for c in cycles(design) if any(m.startswith("clay_exp.design") for m in c)] == []
    assert [f for f in private_imports(PACKAGE) if f.module.startswith("clay_exp.design")] == []


def test_design_maths_reads_no_config():
    # Hydra and OmegaConf belong to from_config.py (and cli.py above it), not to the maths.
    for path in sorted((PACKAGE / "design").glob("*.py")):
        if path.name in ("from_config.py", "cli.py"):
            continue
        assert not imported_packages(path) & {"hydra", "omegaconf"}, path.name


def test_no_design_module_is_over_400_lines():
    long = {
        p.name: n
        for p in (PACKAGE / "design").glob("*.py")
        if (n := len(p.read_text().splitlines())) > MAX_LINES
    }
    assert long == {}


def test_no_import_circle_anywhere_in_the_package():
    assert cycles(import_graph(PACKAGE)) == []


def test_no_private_name_is_imported_across_modules_anywhere():
    assert private_imports(PACKAGE) == []


def test_no_module_of_the_package_is_over_400_lines():
    long = {
        str(p.relative_to(PACKAGE)): n
        for p in PACKAGE.rglob("*.py")
        if (n := len(p.read_text().splitlines())) > MAX_LINES
    }
    assert long == {}


def test_the_data_imports_neither_the_model_nor_hydra():
    # Data flows one way (world -> batch -> encoding -> MAE): the data makes batches, including the
    # time features the model reads (clay_exp.data.time), and never reaches up; configs are read
    # above it (a dataset's _target_ is imported with importlib, clay_exp.data.geotiff.dataset).
    graph = import_graph(PACKAGE)
    data = {m: ts for m, ts in graph.items() if m.startswith("clay_exp.data")}
    assert "clay_exp.data.geotiff.datamodule" in data and "clay_exp.data.worlds.earth" in data
    above = ("clay_exp.models", "clay_exp.encodings", "clay_exp.module", "clay_exp.train", "clay_exp.config")
    reaching_up = {m: sorted(t for t in ts if t.startswith(above)) for m, ts in data.items()}
    assert {m: ts for m, ts in reaching_up.items() if ts} == {}
    for path in sorted((PACKAGE / "data").rglob("*.py")):
        assert "hydra" not in imported_packages(path), path.relative_to(PACKAGE)
