"""scripts/profile_step.py clocks the steps it says (a window of whole steps, split into phases that
add up) and profiles them; what is measured, not how fast."""

from __future__ import annotations

import json

import pytest

from clay_exp.profiling import PHASES
from tests.helpers import TINY, run_script_in_process


@pytest.mark.slow
def test_profile_step_reports_whole_steps_phases_and_top_ops(tmp_path, capsys):
    out = tmp_path / "profile.json"
    run = ["experiment=study_known_answer", "arm=hierarchical", "logger=csv", *TINY]  # 4 steps an epoch
    argv = ["--start", "2", "--steps", "4", "--model-steps", "2", "--rounds", "2", "--top", "5"]
    argv += ["--variants", "", "--out", str(out)]
    printed = run_script_in_process("profile_step.py", *run, *argv, capsys=capsys)
    report = json.loads(out.read_text())

    (row,) = report["variants"]
    assert row["variant"] == "(config)" and report["window"] == {"start": 2, "steps": 4}
    assert len(row["step_round_ms"]) == 2 and row["step_ms"] == min(row["step_round_ms"])
    # the phases split the whole step: they add up to it, and the window spans an epoch's validation
    assert set(row["phases_ms"]) == set(PHASES)
    assert sum(row["phases_ms"].values()) == pytest.approx(row["step_ms"], rel=1e-9)
    assert row["phases_ms"]["validation"] > 0 and row["phases_ms"]["backward"] > 0
    assert row["outside_share"] == pytest.approx(1 - row["model_step_ms"] / row["step_ms"])
    assert len(row["top_ops"]) == 5 and 0 < row["op_share"] <= 1.5
    times = [op["self_ms_per_step"] for op in row["top_ops"]]
    assert times == sorted(times, reverse=True)
    assert all(v is not None for v in row["val_loss"])  # each round a completed run
    assert f"| (config) | {row['step_ms']:.1f} |" in printed and f"written: {out}" in printed
