"""scripts/benchmark.py measures what it says and writes it as JSON (what is measured, not how fast)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "benchmark.py"


@pytest.mark.slow
def test_benchmark_reports_encodings_worlds_and_the_lightning_ratio(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("benchmark", SCRIPT)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    out = tmp_path / "benchmark.json"
    argv = ["--encodings", "none", "sincos", "oracle", "--worlds", "synthetic", "geotiff"]
    argv += ["--steps", "3", "--warmup", "1", "--rounds", "1", "--out", str(out)]
    report = bench.main(argv)
    saved = json.loads(out.read_text())
    assert saved == json.loads(json.dumps(report))
    rows = {r["encoding"]: r for r in saved["encodings"]}
    assert rows["none"]["overhead_vs_none"] == 1.0 and rows["sincos"]["step_ms"] > 0
    assert rows["oracle"]["world"] == "hierarchical_world"  # run on the world it needs
    worlds = {r["world"]: r for r in saved["worlds"]}
    assert worlds["synthetic"]["ratio_to_model"] == pytest.approx(
        worlds["synthetic"]["samples_per_s"] / rows["none"]["samples_per_s"]
    )
    assert "skipped" in worlds["geotiff"] or worlds["geotiff"]["samples_per_s"] > 0
    assert saved["lightning"]["ratio"] == pytest.approx(
        saved["lightning"]["lightning_step_ms"] / saved["lightning"]["plain_step_ms"]
    )
    printed = capsys.readouterr().out
    assert "| sincos | synthetic |" in printed and "ratio (<= 1.10)" in printed
