"""The report's tuning section: per arm the trials, chosen values and ranges, the edge flag, the
untuned arms and unequal budgets called out, and best-so-far against trial."""

from __future__ import annotations

import csv

from clay_exp.encodings.base import Knob
from clay_exp.report.tuning import TUNING_CSV, TUNING_PLOT, ArmTuning
from clay_exp.report.tuning_markdown import tuning_markdown, write_tuning
from clay_exp.tuning.record import UNTUNED


def summaries() -> list[ArmTuning]:
    space = {"model.optimizer.lr": Knob(3e-4, 1e-2), "encoding.lr_scale": Knob(1.0, 1024.0)}
    tables = ArmTuning(
        arm="hierarchical",
        source="configs/tuned/s/hierarchical.yaml",
        objective="tune/loss",
        trials=4,
        chosen_trial=2,
        chosen={"model.optimizer.lr": 3e-3, "encoding.lr_scale": 1000.0},
        space=space,
        best=0.41,
        history=[0.52, None, 0.41, 0.45],
        edges=["encoding.lr_scale"],
    )
    sh = ArmTuning(
        arm="spherical_harmonics",
        source="configs/tuned/s/spherical_harmonics.yaml",
        objective="tune/loss",
        trials=3,
        chosen_trial=0,
        chosen={"model.optimizer.lr": 1.5e-3},
        space={"model.optimizer.lr": space["model.optimizer.lr"]},
        best=0.5,
        history=[0.5, 0.6, 0.55],
    )
    return [tables, sh, ArmTuning(arm="none", source=UNTUNED, chosen={"model.optimizer.lr": 1.5e-3})]


def test_the_section_flags_edges_untuned_arms_and_unequal_budgets():
    text = tuning_markdown(summaries())
    assert "| hierarchical | 4/4 | 0.52 | 0.4100 (2) |" in text
    assert "encoding.lr_scale = 1e+03 ⚠ edge (log [1, 1024])" in text
    assert "| none | — | — | — | model.optimizer.lr = 0.0015 | default (untuned) |" in text
    assert "Not tuned (they ran at their own settings): none" in text
    assert "different numbers of trials ([3, 4])" in text
    assert "Chosen at a range's edge: hierarchical (encoding.lr_scale)." in text
    assert summaries()[0].best_so_far() == [0.52, 0.52, 0.41, 0.41]
    assert tuning_markdown([]) == ""


def test_the_files_are_written_and_the_report_gets_the_section(tmp_path):
    (tmp_path / "comparison.md").write_text("# Encoding comparison\n")
    written = write_tuning(summaries(), tmp_path, append_to=tmp_path / "comparison.md")
    assert (tmp_path / "comparison.md").read_text().startswith("# Encoding comparison\n\n## Tuning")
    assert written[TUNING_PLOT].stat().st_size > 0
    with written[TUNING_CSV].open() as f:
        rows = list(csv.DictReader(f))
    edge = {(r["arm"], r["knob"]): r["edge"] for r in rows}
    assert edge[("hierarchical", "encoding.lr_scale")] == "True"
    assert edge[("hierarchical", "model.optimizer.lr")] == "False"
    assert write_tuning([], tmp_path / "none") == {} and not (tmp_path / "none").exists()
