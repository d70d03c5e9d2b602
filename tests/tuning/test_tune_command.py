"""The done-criterion of issue 18: ``scripts/tune.py`` tunes one arm of a study at a smoke budget,
a killed tuning continues where it stopped, and the final run picks the chosen values up and
records them and their source; the report shows the tuning.

The study lives outside the repository (an extra config folder), as a user's own would; its runs
write below a temp folder (PROJECT_ROOT), its tuned values into that config folder."""

from __future__ import annotations

import json

import pytest

from clay_exp.config import CONFIG_DIRS_ENV, compose_config
from clay_exp.report import load_runs
from clay_exp.report.tuning import TUNING_PLOT, tuning_from_folder, tuning_from_runs
from clay_exp.report.tuning_markdown import write_tuning
from clay_exp.results import read_results
from clay_exp.train import train
from clay_exp.tuning.plan import make_plan
from tests.helpers import load_script

STUDY = """# @package _global_
defaults:
  - override /data: hierarchical_world
experiment_name: tune_smoke
study:
  name: tune_smoke
  question: does the tuner tune?
  measures: budget
  fine_zoom: 6
  baseline: none
  yardsticks: []
  metrics: [val/loss, val_heldout/loss]
  alpha: 0.05
  comparisons:
    - {a: xyz, b: none, metric: val/loss, expect: a<b}
  tuning:
    objective: {tune/loss: 0.5, tune_heldout/loss: 0.5}
    trials: 2
    batch: 2
    steps_fraction: 0.5
    seeds: [100]
    backbone:
      # the arm's own rate (1.5e-3) lies outside: trial 0 is drawn too, so the choice differs from it
      model.optimizer.lr: {low: 2.0e-3, high: 1.0e-2, scale: log}
hydra:
  sweeper:
    params:
      arm: none,xyz
      seed: 0,1
data:
  split: region
  heldout_zoom: 3
  tune_heldout_fraction: 0.5
  batch_size: 16
  train_size: 64
  val_size: 32
model:
  backbone:
    embed_dim: 32
    depth: 1
    decoder_embed_dim: 32
    decoder_depth: 1
trainer:
  max_epochs: 2
  enable_progress_bar: false
  enable_model_summary: false
"""


@pytest.fixture
def study(tmp_path, monkeypatch):
    configs = tmp_path / "configs"
    (configs / "experiment").mkdir(parents=True)
    (configs / "experiment" / "tune_smoke.yaml").write_text(STUDY)
    monkeypatch.setenv(CONFIG_DIRS_ENV, str(configs))  # the trials (subprocesses) inherit both
    monkeypatch.setenv("PROJECT_ROOT", str(tmp_path))
    return tmp_path


def test_the_plan_refuses_tuning_on_reported_seeds_or_missing_held_out_tiles(study):
    with pytest.raises(ValueError, match=r"share \[0\] with the reported seeds \[0, 1\]"):
        make_plan("tune_smoke", ["study.tuning.seeds=[0]"])
    with pytest.raises(
        ValueError, match="weighs tune_heldout/loss, but the data sets no held-out tiles apart"
    ):
        make_plan("tune_smoke", ["data.tune_heldout_fraction=0"])
    with pytest.raises(ValueError, match=r"arms \['sincos'\] are not arms of experiment=tune_smoke"):
        make_plan("tune_smoke", arms=["sincos"])


@pytest.mark.slow
def test_tune_one_arm_resume_and_the_final_run_uses_the_chosen_values(study, capsys):
    tune = load_script("tune").main
    tuned_dir = study / "configs" / "tuned" / "tune_smoke"
    args = ["experiment=tune_smoke", "arms=xyz", "--tuned-dir", str(tuned_dir)]

    assert tune([*args, "--dry-run", "--step-time", "0.05"]) == 0
    plan = capsys.readouterr().out
    assert "1 arms x 2 trials x 1 seed(s) = 2 runs of 4 steps" in plan
    assert "model.optimizer.lr log [0.002, 0.01] (now 0.0015); encoding.lr_scale log [0.1, 10]" in plan

    assert tune(args) == 0
    folder = study / "logs" / "tune_smoke" / "tuning" / "tune"
    trials = [folder / "xyz" / f"trial-00{t}-s100" for t in (0, 1)]
    for trial in trials:
        record = read_results(trial)
        assert record["status"] == "completed" and record["seed"] == 100
        assert {"tune/loss", "tune_heldout/loss"} <= set(record["final"])
        assert not any(k.startswith("val") for k in record["final"])  # never a reported set
        assert record["tuning"]["source"].startswith("tuning trial")
    chosen = json.loads((folder / "xyz" / "chosen.json").read_text())
    assert (tuned_dir / "xyz.yaml").is_file() and chosen["trial"] in (0, 1)

    # A tuning killed during trial 1: rerunning the same command redoes that trial only.
    first = (trials[0] / "results.json").stat().st_mtime_ns
    interrupted = read_results(trials[1]) | {"status": "interrupted"}
    (trials[1] / "results.json").write_text(json.dumps(interrupted))
    assert tune(args) == 0
    assert (trials[0] / "results.json").stat().st_mtime_ns == first
    assert read_results(trials[1])["status"] == "completed"
    assert read_results(trials[1].with_name("trial-001-s100.attempt-1"))["status"] == "interrupted"
    chosen = json.loads((folder / "xyz" / "chosen.json").read_text())

    # The final run composes the tuned file and says so in results.json.
    cfg = compose_config(["experiment=tune_smoke", "arm=xyz", "seed=0", "logger=csv"], study / "final")
    assert cfg.model.optimizer.lr == chosen["values"]["model.optimizer.lr"] != 1.5e-3
    train(cfg)
    tuning = read_results(study / "final")["tuning"]
    assert tuning["source"].endswith("tuned/tune_smoke/xyz.yaml") and tuning["trial"] == chosen["trial"]
    assert tuning["values"] == chosen["values"]

    # The report: one tuned arm, its two trials, the chosen values.
    (summary,) = tuning_from_runs(load_runs(study / "final"))
    assert summary.arm == "xyz" and summary.tuned and summary.chosen == chosen["values"]
    assert summary.history == chosen["history"] and len(summary.history) == 2
    assert [s.chosen for s in tuning_from_folder(folder)] == [chosen["values"]]
    written = write_tuning([summary], study / "report", append_to=study / "report" / "comparison.md")
    text = (study / "report" / "comparison.md").read_text()
    assert "## Tuning" in text and "| xyz | 2/2 |" in text and written[TUNING_PLOT].stat().st_size > 0

    # Item 6's check: the same trials at the full budget, beside the tuning budget's objectives.
    capsys.readouterr()
    assert tune(["experiment=tune_smoke", "--recheck", "xyz"]) == 0
    table = capsys.readouterr().out
    assert "trial  tuning budget  full budget" in table and len(table.strip().splitlines()) == 4
    for trial in (0, 1):
        record = read_results(folder / "recheck" / "xyz" / f"trial-00{trial}-s100")
        assert (
            record["steps"] == 8
            and record["tuning"]["values"] == json.loads((trials[trial] / "trial.json").read_text())["params"]
        )
    assert json.loads((folder / "xyz" / "chosen.json").read_text()) == chosen  # nothing re-chosen

    # compare.py on the tuning folder itself: its trials are no reported runs, its tuning is shown.
    assert load_script("compare").main([str(folder), "--no-floors", "--out", str(study / "cmp")]) == 0
    assert "| xyz | 2/2 |" in (study / "cmp" / "comparison.md").read_text()
