"""scripts/benchmark_encodings.py times every case it is asked for and writes what it prints
(what is measured, not how fast)."""

from __future__ import annotations

import json

import pytest

from tests.helpers import run_script_in_process


@pytest.mark.slow
def test_benchmark_writes_every_case(tmp_path, capsys):
    out = tmp_path / "bench.json"
    argv = ["--encodings", "sincos", "wrap", "spherical_harmonics", "--sh-degrees", "3", "5"]
    argv += ["--threads", "1", "--points", "128", "--repeats", "1", "--step-repeats", "1", "--devices", "cpu"]
    printed = run_script_in_process("benchmark_encodings.py", *argv, "--out", str(out), capsys=capsys)
    report = json.loads(out.read_text())
    (result,) = report["results"]
    assert result["device"] == "cpu" and result["mae_tiny_step_ms"] > 0
    rows = {r["encoding"]: r for r in result["encodings"]}
    # spherical harmonics expand to every degree x head; the rest as configured
    assert list(rows) == [
        "sincos",
        "wrap",
        "spherical_harmonics L=3 siren",
        "spherical_harmonics L=3 linear",
        "spherical_harmonics L=5 siren",
        "spherical_harmonics L=5 linear",
    ]
    sh5 = rows["spherical_harmonics L=5 linear"]
    # the override reached the encoding: (L)^2 harmonics for degrees 0..L-1 with the linear head
    assert sh5["overrides"] == ["encoding.degrees=5", "encoding.head=linear"] and sh5["out_dim"] == 25
    assert rows["spherical_harmonics L=3 linear"]["out_dim"] == 9
    # forward only where there is nothing to train
    assert rows["sincos"]["backward"] is False and rows["sincos"]["trainable_params"] == 0
    assert rows["wrap"]["backward"] is True and rows["wrap"]["trainable_params"] > 0
    for label, r in rows.items():
        assert r["ms_per_points"] > 0 and r["ms_per_batch"] > 0, label
        # the printed table carries the numbers written to disk
        assert f"| {label} | {r['out_dim']} | {r['ms_per_points']:.2f}" in printed
    assert f"written: {out}" in printed
