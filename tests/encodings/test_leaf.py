"""`clay_exp.encodings` is a leaf: no module in it imports the Hydra layer or the data package.

An encoding knows coordinates in and vectors out; configs (`clay_exp.catalog`, `clay_exp.config`)
and worlds (`clay_exp.data`) sit above it and may import it, never the reverse.
"""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys

import clay_exp.encodings
from tests.helpers import ROOT

FORBIDDEN = ("hydra", "clay_exp.data", "clay_exp.config", "clay_exp.catalog")

CHECK = """
import importlib, json, sys
forbidden = {forbidden!r}
found = {{}}
for name in {modules!r}:
    importlib.import_module(name)
    bad = sorted(m for m in sys.modules if any(m == f or m.startswith(f + ".") for f in forbidden))
    if bad:
        found[name] = bad
        break
print(json.dumps(found))
"""


def test_no_encoding_module_imports_hydra_or_the_data_package():
    modules = ["clay_exp.encodings"] + [
        f"clay_exp.encodings.{m.name}" for m in pkgutil.iter_modules(clay_exp.encodings.__path__)
    ]
    assert len(modules) > 15 and "clay_exp.encodings.oracle" in modules
    code = CHECK.format(forbidden=FORBIDDEN, modules=modules)
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300
    )  # a fresh interpreter: nothing this test process imported counts
    assert proc.returncode == 0, proc.stderr[-3000:]
    found = json.loads(proc.stdout.strip().splitlines()[-1])
    assert found == {}, f"the first module that pulls in the layers above it, and what: {found}"
