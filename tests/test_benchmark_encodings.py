"""scripts/benchmark_encodings.py writes the table's numbers to JSON (what is measured, not how fast)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "benchmark_encodings.py"


def load_script():
    spec = importlib.util.spec_from_file_location("benchmark_encodings", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_benchmark_writes_every_case(tmp_path, capsys):
    bench = load_script()
    out = tmp_path / "bench.json"
    argv = [
        "--encodings",
        "sincos",
        "wrap",
        "spherical_harmonics",
        "--sh-degrees",
        "3",
        "5",
        "--threads",
        "1",
    ]
    argv += ["--points", "128", "--repeats", "1", "--step-repeats", "1", "--devices", "cpu"]
    argv += ["--out", str(out)]
    threads = torch.get_num_threads()
    bench.main(argv)
    assert torch.get_num_threads() == threads  # restored for the tests after this one
    report = json.loads(out.read_text())
    assert (
        report["threads"] == 1
        and report["points"] == 128
        and report["batch_size"] == 64
        and report["target_share_of_step"] == 0.05
    )
    (result,) = report["results"]
    assert result["device"] == "cpu" and result["mae_tiny_step_ms"] > 0
    rows = {r["encoding"]: r for r in result["encodings"]}
    assert list(rows) == [
        "sincos",
        "wrap",
        "spherical_harmonics L=3 siren",
        "spherical_harmonics L=3 linear",
        "spherical_harmonics L=5 siren",
        "spherical_harmonics L=5 linear",
    ]
    sh5 = rows["spherical_harmonics L=5 linear"]
    assert sh5["overrides"] == ["encoding.degrees=5", "encoding.head=linear"] and sh5["out_dim"] == 25
    assert rows["sincos"]["backward"] is False and rows["wrap"]["backward"] is True
    for r in rows.values():
        assert r["share_of_step"] == pytest.approx(r["ms_per_batch"] / result["mae_tiny_step_ms"])
        assert r["meets_target"] == (r["share_of_step"] <= 0.05)
    table = capsys.readouterr().out
    assert "| spherical_harmonics L=5 siren | 128 |" in table and f"written: {out}" in table
