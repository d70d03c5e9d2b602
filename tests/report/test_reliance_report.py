"""The report's location-reliance columns on a fabricated sweep: reliance, robustness against `none`
(paired by seed), the location prior, the embedding probe; in comparison.md and comparison.csv, and
declared comparisons on the new metrics."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from clay_exp.report import compare, load_runs, to_markdown, write_report
from clay_exp.report.reliance import attach_probe_metrics
from tests.report.factory import run, study_node, write_run

# Per arm and seed: (val/loss, val/loss_shuffled, val/loss_missing, val/loss_prior, probe accuracy)
ARMS = {
    "none": [(0.50, 0.50, 0.50, 0.98, 0.60), (0.52, 0.52, 0.52, 0.99, 0.62), (0.51, 0.51, 0.51, 0.97, 0.61)],
    "sincos": [
        (0.45, 0.47, 0.55, 0.95, 0.63),
        (0.47, 0.48, 0.58, 0.96, 0.61),
        (0.44, 0.47, 0.54, 0.94, 0.62),
    ],
    "hier": [(0.40, 0.60, 0.70, 0.80, 0.50), (0.41, 0.63, 0.74, 0.82, 0.52), (0.39, 0.58, 0.69, 0.79, 0.49)],
}


def metrics(values, set_name: str = "val") -> dict[str, float]:
    loss, shuffled, missing, prior, acc = values
    return {
        f"{set_name}/loss": loss,
        f"{set_name}/loss_shuffled": shuffled,
        f"{set_name}/reliance": shuffled - loss,
        f"{set_name}/loss_missing": missing,
        f"{set_name}/loss_prior": prior,
        f"{set_name}/probe_zone_acc_withheld": acc,
    }


def runs(config=None):
    return [
        run(arm, s, v[0], metrics=metrics(v), config=dict(config or {}, seed=s), steps=10)
        for arm, seeds in ARMS.items()
        for s, v in enumerate(seeds)
    ]


def column(arm: str, i: int) -> np.ndarray:
    return np.array([v[i] for v in ARMS[arm]])


def test_reliance_robustness_prior_and_probe_per_arm_with_paired_intervals():
    (table,) = compare(runs()).reliance
    cells = table.cells["hier"]
    reliance = column("hier", 1) - column("hier", 0)
    assert cells["val/reliance"].mean == pytest.approx(reliance.mean())
    lo, hi = stats.t.interval(0.95, 2, loc=reliance.mean(), scale=stats.sem(reliance))
    assert (cells["val/reliance"].ci_low, cells["val/reliance"].ci_high) == (
        pytest.approx(lo),
        pytest.approx(hi),
    )
    # robustness: the arm's missing-location loss minus `none`'s loss of the same seed
    robust = column("hier", 2) - column("none", 0)
    lo, hi = stats.t.interval(0.95, 2, loc=robust.mean(), scale=stats.sem(robust))
    got = cells["val/robustness"]
    assert (got.mean, got.ci_low, got.ci_high) == (
        pytest.approx(robust.mean()),
        pytest.approx(lo),
        pytest.approx(hi),
    )
    assert cells["val/prior"].mean == pytest.approx(column("hier", 3).mean())
    prior_gain = column("hier", 3) - column("none", 3)
    assert cells["val/prior_vs_baseline"].mean == pytest.approx(prior_gain.mean())
    probe = column("hier", 4) - column("none", 4)
    assert cells["val/probe_zone_acc_withheld_vs_baseline"].mean == pytest.approx(probe.mean())
    # the baseline against itself: exactly zero, and it does not rely on a location it never had
    base = table.cells["none"]
    assert base["val/robustness"].mean == 0 and base["val/reliance"].mean == 0


def test_comparison_md_and_csv_show_the_columns(tmp_path):
    rs = runs()
    comparison = compare(rs)
    text = to_markdown(comparison)
    assert "## Beyond the loss" in text and "### Reliance on location and robustness" in text
    assert "val/robustness (missing − none)" in text and "val/prior − none" in text
    assert "### Embedding probe" in text and "val/probe_zone_acc_withheld − none" in text
    rel = column("hier", 1) - column("hier", 0)
    half = stats.t.ppf(0.975, 2) * stats.sem(rel)
    assert f"| `hier` | {rel.mean():.4f} ± {half:.4f} (n=3) |" in text
    assert "under injection=add the location acts on patch tokens only" in text
    write_report(comparison, rs, tmp_path, curves=False)
    frame = pd.read_csv(tmp_path / "comparison.csv").set_index("encoding")
    assert frame.loc["hier", "val/reliance mean"] == pytest.approx(rel.mean())
    robust = column("sincos", 2) - column("none", 0)
    assert frame.loc["sincos", "val/robustness mean"] == pytest.approx(robust.mean())
    assert frame.loc["sincos", "val/robustness n"] == 3


def test_a_sweep_without_the_measures_has_no_such_section():
    plain = [run(arm, s, v[0]) for arm, seeds in ARMS.items() for s, v in enumerate(seeds)]
    comparison = compare(plain)
    assert comparison.reliance == [] and "Beyond the loss" not in to_markdown(comparison)


def test_declared_comparisons_on_the_new_metrics_are_tested():
    node = study_node([])
    node["comparisons"] = [
        {"a": "hier", "b": "sincos", "metric": "val/reliance", "expect": "a>b"},
        {"a": "hier", "b": "none", "metric": "val/loss_missing", "expect": "a>b"},
        {"a": "hier", "b": "none", "metric": "val/probe_zone_acc_withheld", "expect": "a<b"},
    ]
    (study,) = compare(runs({"study": node})).studies
    first, second, third = study.declared
    d = (column("hier", 1) - column("hier", 0)) - (column("sincos", 1) - column("sincos", 0))
    assert first.n == 3 and first.diff.mean == pytest.approx(d.mean()) and first.holds
    assert first.p == pytest.approx(stats.ttest_rel(d, np.zeros(3)).pvalue)
    assert second.holds and third.holds and not any(t.missing for t in study.declared)


def test_probe_files_in_run_folders_join_the_runs(tmp_path):
    for arm, seeds in ARMS.items():
        for s, v in enumerate(seeds):
            job = write_run(tmp_path, f"{arm}-s{s}", arm, s, v[0])
            (job / "embedding_probe.json").write_text(
                json.dumps({"metrics": {"val/probe_land_r2_given": v[4]}})
            )
    (tmp_path / "none-s0" / "embedding_probe.json").write_text("{not json")
    loaded = load_runs(tmp_path)
    problems = attach_probe_metrics(loaded)
    assert len(problems) == 1 and "none-s0" in problems[0]
    by_name = {r.path.name: r for r in loaded}
    assert by_name["hier-s1"].metrics["val/probe_land_r2_given"] == ARMS["hier"][1][4]
    assert "val/probe_land_r2_given" not in by_name["none-s0"].metrics
    (table,) = compare(loaded).reliance
    assert table.cells["hier"]["val/probe_land_r2_given"].mean == pytest.approx(column("hier", 4).mean())
    assert table.cells["hier"]["val/probe_land_r2_given_vs_baseline"].n == 2  # seed 0 of none unreadable
