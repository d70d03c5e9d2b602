"""What a trial folder holds, read back (the tuner's memory across restarts), and a trial's overrides."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from clay_exp.results import RunRecord
from clay_exp.tuning.declaration import TuningDeclaration
from clay_exp.tuning.plan import TuningPlan
from clay_exp.tuning.trials import TRIAL_FILE, Unit, arm_trials, read_unit, trial_overrides

DECLARATION = TuningDeclaration(
    objective={"tune/loss": 0.5, "tune_heldout/loss": 0.5},
    trials=3,
    batch=2,
    steps_fraction=0.5,
    seeds=(100, 101),
    sampler_seed=0,
    startup_trials=2,
    backbone={},
)


def trial(folder: Path, n: int, seed: int, status: str, final=None, error=None, params=None) -> Path:
    path = folder / "xyz" / f"trial-{n:03d}-s{seed}"
    RunRecord(status=status, final=final or {}, error=error).save(path)
    (path / TRIAL_FILE).write_text(json.dumps({"params": params or {"model.optimizer.lr": 1e-3 * (n + 1)}}))
    return path


def test_a_folder_says_done_diverged_failed_or_not_yet(tmp_path):
    done = trial(tmp_path, 0, 100, "completed", {"tune/loss": 0.4, "tune_heldout/loss": 0.6})
    nan = {
        "type": "NonFiniteLossError",
        "message": "x",
        "cause": "NonFiniteLossError: non-finite training loss",
    }
    diverged = trial(tmp_path, 0, 101, "failed", error=nan)
    bug = {"type": "InstantiationException", "message": "x", "cause": "ValueError: bad knob"}
    assert read_unit(done).status == "done" and read_unit(done).metrics["tune/loss"] == 0.4
    assert read_unit(diverged).status == "diverged"
    assert read_unit(trial(tmp_path, 1, 100, "failed", error=bug)).status == "failed"
    assert read_unit(trial(tmp_path, 1, 101, "interrupted")).status == "todo"
    assert read_unit(tmp_path / "nothing").status == "todo"


def test_a_trials_objective_is_the_mean_over_its_seeds_and_any_divergence_makes_it_diverged(tmp_path):
    for seed, (a, b) in zip((100, 101), ((0.4, 0.6), (0.6, 0.8)), strict=True):
        trial(tmp_path, 0, seed, "completed", {"tune/loss": a, "tune_heldout/loss": b})
    trial(tmp_path, 1, 100, "completed", {"tune/loss": 0.3, "tune_heldout/loss": 0.3})
    trial(tmp_path, 1, 101, "failed", error={"type": "NonFiniteLossError", "cause": "NonFiniteLossError"})
    trial(tmp_path, 2, 100, "completed", {"tune/loss": 0.3, "tune_heldout/loss": 0.3})  # seed 101 not run
    results = arm_trials(tmp_path, "xyz", DECLARATION)
    assert [r.status for r in results] == ["done", "diverged", "pending"]
    assert results[0].objective == pytest.approx(0.6) and results[0].params == {"model.optimizer.lr": 1e-3}
    (tmp_path / "xyz" / "trial-002-s100.attempt-1").mkdir()  # an attempt moved aside is no trial
    assert len(arm_trials(tmp_path, "xyz", DECLARATION)) == 3


def test_a_trials_own_settings_win_over_the_users_overrides(tmp_path):
    plan = TuningPlan(
        experiment="study_x",
        experiment_name="study_x",
        declaration=DECLARATION,
        arms=[],
        overrides=["data.train_size=64", "seed=3", "logger=many", "model.optimizer.lr=0.1"],
        folder=tmp_path,
        tuned_dir=tmp_path,
        budget_key="trainer.max_epochs",
        budget=8,
        full_budget=16,
        steps=512,
        reported_seeds=[10],
    )
    unit = Unit("xyz", 4, 100, tmp_path / "xyz" / "trial-004-s100")
    overrides = trial_overrides(plan, unit, {"model.optimizer.lr": 0.003, "encoding.levels": [0, 3]})
    assert overrides[:2] == ["experiment=study_x", "data.train_size=64"]
    # the trial's own settings and its knobs replace the user's values of the same keys
    assert not {"seed=3", "logger=many", "model.optimizer.lr=0.1"} & set(overrides)
    assert overrides[-2:] == ["++model.optimizer.lr=0.003", "++encoding.levels=[0,3]"]
    assert {
        "arm=xyz",
        "~tuned",
        "stage=tune",
        "seed=100",
        "trainer.max_epochs=8",
        "+tuning_source.trial=4",
    } <= set(overrides)
