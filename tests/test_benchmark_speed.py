"""The speed benchmarks of issue 22 run as docs/benchmarks.md says and report what they measure
(not how fast: the lead times them alone): the study sweep on each speed path with its paired
numbers, and k seeds trained as one batched model computing each seed's own loss."""

from __future__ import annotations

import json

import pytest

from tests.helpers import run_script, run_script_in_process

SMALL = ["trainer.max_steps=2", "data.train_size=128", "data.val_size=64", "logger=csv"]


@pytest.mark.slow
def test_benchmark_study_times_each_path_and_pairs_the_runs(tmp_path):
    out = tmp_path / "study.json"
    # one run a path, one job (joblib runs it in the sweep's own process: no worker to start)
    argv = ["--arms", "hierarchical", "--seeds", "0", "--paths", "eager", "default", "--jobs", "1"]
    argv += ["--logs", str(tmp_path / "sweeps"), "--out", str(out), "--extra", *SMALL]
    printed = run_script("benchmark_study.py", *argv, timeout=900)
    report = json.loads(out.read_text())

    eager, default = report["paths"]
    assert (eager["path"], default["path"]) == ("eager", "default") and eager["ratio"] == 1.0
    assert default["ratio"] == pytest.approx(eager["wall_s"] / default["wall_s"])
    runs = report["runs"]["default"][0]
    assert sorted(runs) == ["hierarchical-s0"]
    # the default path computes bitwise what the plain path computes: every pair equal
    for metric in ("val/loss", "val_heldout/loss"):
        paired = default["paired"][metric]
        assert paired["n"] == 1 and paired["all_equal"] and paired["max_abs"] == 0.0
    assert f"| `default` | {default['wall_s']:.1f} |" in printed and "identical" in printed


@pytest.mark.slow
def test_benchmark_seeds_batched_step_computes_each_seeds_own_loss(tmp_path, capsys):
    out = tmp_path / "seeds.json"
    argv = ["--seeds", "1", "3", "--threads", "1", "--steps", "2", "--repeats", "1", "--rounds", "1"]
    printed = run_script_in_process("benchmark_seeds.py", *argv, "--out", str(out), capsys=capsys)
    rows = json.loads(out.read_text())["rows"]

    assert [r["k"] for r in rows] == [1, 3]
    for row in rows:
        assert set(row["seed_step_ms"]) == {"separate", "batched", "batch xk"}
        assert row["x_separate"]["batched"] == pytest.approx(
            row["seed_step_ms"]["separate"] / row["seed_step_ms"]["batched"]
        )
        # a seed group's step (stacked weights, batched products): each seed's loss as its own step's
        assert row["max_loss_diff"] < 1e-5
    assert "| 1 | 3 |" in printed
