"""scripts/benchmark.py runs as the README says, measures each requested case where it belongs and
writes what it prints (what is measured, not how fast; the timing logic is tested in
test_benchmarking.py with fake clocks)."""

from __future__ import annotations

import json

import pytest

from tests.helpers import run_script

MEASURED_KEYS = {"world", "encoding_params", "round_ms", "step_ms", "round_spread", "samples_per_s"}


@pytest.mark.slow
def test_benchmark_reports_every_requested_encoding_and_world(tmp_path):
    out = tmp_path / "logs" / "benchmark.json"
    argv = ["--encodings", "sincos", "none", "oracle", "--worlds", "synthetic", "geotiff"]
    argv += ["--steps", "3", "--warmup", "1", "--rounds", "2", "--batch-size", "16", "--threads", "1"]
    printed = run_script("benchmark.py", *argv, "--out", str(out))
    saved = json.loads(out.read_text())

    rows = {r["encoding"]: r for r in saved["encodings"]}
    assert list(rows) == ["sincos", "none", "oracle"]  # in the order asked for, none skipped
    for name, row in rows.items():
        assert MEASURED_KEYS | {"overhead_vs_none", "meets_target"} <= set(row), name
        assert len(row["round_ms"]) == 2 and row["step_ms"] in row["round_ms"]
    # each encoding on the world it needs (the oracle reads the hierarchical world's latents)
    assert {n: r["world"] for n, r in rows.items()} == {
        "sincos": "synthetic",
        "none": "synthetic",
        "oracle": "hierarchical_world",
    }
    assert rows["none"]["encoding_params"] == 0 < rows["sincos"]["encoding_params"]

    worlds = {r["world"]: r for r in saved["worlds"]}
    assert list(worlds) == ["synthetic", "geotiff"]
    assert worlds["synthetic"]["samples_per_s"] > 0 and "ratio_to_model" in worlds["synthetic"]
    assert "skipped" in worlds["geotiff"] or worlds["geotiff"]["samples_per_s"] > 0
    assert saved["lightning"]["plain_step_ms"] > 0 and saved["lightning"]["lightning_step_ms"] > 0

    # the printed tables carry the numbers written to disk
    for name, row in rows.items():
        assert f"| {name} | {row['world']} | {row['step_ms']:.1f} |" in printed
    assert f"| synthetic | {worlds['synthetic']['samples_per_s']:.0f} |" in printed
    assert f"| plain PyTorch | {saved['lightning']['plain_step_ms']:.1f} |" in printed
    assert f"written: {out}" in printed
