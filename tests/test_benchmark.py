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
    assert list(worlds) == ["synthetic", "geotiff", "geotiff (cached)"]  # geotiff: live, then cached
    assert worlds["synthetic"]["samples_per_s"] > 0 and "ratio_to_model" in worlds["synthetic"]
    for name in ("geotiff", "geotiff (cached)"):
        assert "skipped" in worlds[name] or worlds[name]["samples_per_s"] > 0
    # the step against the machine's limit: counted FLOPs per second and a share of a matmul's rate
    assert saved["matmul"]["size"] == 1024 and len(saved["matmul"]["round_ms"]) == 2
    assert saved["matmul"]["gflops"] > 0
    for row in rows.values():
        assert row["step_gflop"] > 0 and row["gflops"] == pytest.approx(
            row["step_gflop"] / (row["step_ms"] / 1e3)
        )
        assert row["of_matmul"] == pytest.approx(row["gflops"] / saved["matmul"]["gflops"])
        assert f"{row['gflops']:.1f} | {100 * row['of_matmul']:.0f} % |" in printed
    # the oracle's world differs, its model does not: about the same FLOPs per step
    assert rows["oracle"]["step_gflop"] == pytest.approx(rows["none"]["step_gflop"], rel=0.2)
    assert saved["lightning"]["plain_step_ms"] > 0 and saved["lightning"]["lightning_step_ms"] > 0

    # the printed tables carry the numbers written to disk
    for name, row in rows.items():
        assert f"| {name} | {row['world']} | {row['step_ms']:.1f} |" in printed
    assert f"| synthetic | {worlds['synthetic']['samples_per_s']:.0f} |" in printed
    assert f"| plain PyTorch | {saved['lightning']['plain_step_ms']:.1f} |" in printed
    assert f"written: {out}" in printed
