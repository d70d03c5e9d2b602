"""The comparison report's statistics and tables, on run records with known numbers."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from clay_exp.report import (
    Metric,
    Run,
    compare,
    comparison_frame,
    holm,
    load_runs,
    mean_ci,
    paired_t_test,
    plot_final,
    section_markdown,
    to_markdown,
)
from clay_exp.results import write_results

LOSS = Metric("val/loss")


def run(encoding: str, seed: int, loss: float | None, status: str = "completed", **extra) -> Run:
    metrics = {} if loss is None else {"val/loss": loss}
    metrics |= extra.pop("metrics", {})
    return Run(
        path=Path(f"/sweep/{encoding}-s{seed}"),
        encoding=encoding,
        seed=seed,
        status=status,
        metrics=metrics,
        setting={"experiment": "cmp", "data": "synthetic"},
        variant={"injection": extra.pop("injection", "add")},
        **extra,
    )


LOSSES = {
    "none": [0.50, 0.52, 0.51],
    "sincos": [0.45, 0.47, 0.44],
    "oracle": [0.40, 0.41, 0.39],
}


@pytest.fixture
def runs() -> list[Run]:
    out = [
        run(e, s, v, params_encoding=10 * i)
        for i, (e, vs) in enumerate(LOSSES.items())
        for s, v in enumerate(vs)
    ]
    out.append(run("sincos", 3, None, status="failed", error="ValueError: Invalid learning rate: -1"))
    out.append(run("xyz", 0, None, status="running"))
    return out


def test_mean_ci_is_the_student_t_interval():
    s = mean_ci([1.0, 2.0, 3.0, 4.0])
    t_975_df3 = 3.182446305284263  # table value of the t distribution
    half = t_975_df3 * math.sqrt(5 / 3) / 2
    assert (s.n, s.mean, s.std) == (4, 2.5, pytest.approx(math.sqrt(5 / 3)))
    assert (s.ci_low, s.ci_high) == (pytest.approx(2.5 - half), pytest.approx(2.5 + half))
    one = mean_ci([0.3])
    assert one.mean == 0.3 and math.isnan(one.ci_low) and math.isnan(one.half_width)


def test_paired_t_test_closed_form_and_scipy():
    # df = 2: the t CDF is 1/2 + t / (2 sqrt(2 + t^2)), so p = 1 - t / sqrt(2 + t^2).
    t = 2 / (1 / math.sqrt(3))
    assert paired_t_test([1.0, 2.0, 3.0]) == pytest.approx(1 - t / math.sqrt(2 + t * t))
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=6), rng.normal(size=6) + 0.5
    assert paired_t_test(b - a) == pytest.approx(stats.ttest_rel(b, a).pvalue)
    assert paired_t_test([0.1, 0.1, 0.1]) == 0.0 and paired_t_test([0.0, 0.0]) == 1.0
    assert math.isnan(paired_t_test([0.2]))


def test_holm_adjustment():
    adjusted = holm([0.01, 0.04, 0.03, 0.005, math.nan])
    # sorted: 0.005*4=0.02, 0.01*3=0.03, 0.03*2=0.06, 0.04*1 -> kept monotone at 0.06
    assert adjusted[:4] == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert math.isnan(adjusted[4])
    assert holm([0.6, 0.9]) == pytest.approx([1.0, 1.0])


def test_rows_ranked_with_gap_closed_and_failures_listed(runs):
    (section,) = compare(runs).sections
    assert [r.label for r in section.rows] == ["oracle", "sincos", "none", "xyz"]
    sincos = section.rows[1]
    assert sincos.stats["val/loss"].mean == pytest.approx(np.mean(LOSSES["sincos"]))
    assert sincos.stats["val/loss"].n == 3  # the failed seed 3 is not averaged in
    base, oracle = np.mean(LOSSES["none"]), np.mean(LOSSES["oracle"])
    assert sincos.gap_closed["val/loss"] == pytest.approx(
        (base - np.mean(LOSSES["sincos"])) / (base - oracle)
    )
    assert section.rows[0].gap_closed["val/loss"] == pytest.approx(1.0)
    assert section.rows[2].gap_closed["val/loss"] == pytest.approx(0.0)
    assert {(r.encoding, r.status) for r in section.not_averaged} == {
        ("sincos", "failed"),
        ("xyz", "running"),
    }
    assert section.metrics == [LOSS]  # val_heldout/loss logged by no run: no column


def test_pairwise_tests_paired_by_seed_with_holm(runs):
    (section,) = compare(runs).sections
    tests = {(t.better, t.worse): t for t in section.tests}
    assert set(tests) == {("oracle", "sincos"), ("oracle", "none"), ("sincos", "none")}
    diffs = np.subtract(LOSSES["none"], LOSSES["oracle"])
    t = tests[("oracle", "none")]
    assert (t.n, t.diff.mean) == (3, pytest.approx(diffs.mean()))
    assert t.p == pytest.approx(paired_t_test(diffs))
    expected = holm([tests[k].p for k in tests])
    assert [tests[k].p_holm for k in tests] == pytest.approx(expected)
    assert all(t.significant == (t.p_holm < 0.05) for t in section.tests)


def test_markdown_table(runs):
    comparison = compare(runs, sources=["/sweep"])
    text = to_markdown(comparison)
    s = comparison.sections[0].rows[1].stats["val/loss"]
    assert f"| 2 | `sincos` | 3 of 4 (1 failed) | {s.mean:.4f} ± {s.half_width:.4f} |" in text
    assert "| — | `xyz` | 0 of 1 (1 running) | — |" in text
    assert "Holm–Bonferroni" in text and "paired t-test" in text
    assert "| `sincos-s3` | `sincos` | 3 | failed | ValueError: Invalid learning rate: -1 |" in text
    gap = (0.51 - np.mean(LOSSES["sincos"])) / (0.51 - 0.40)
    assert "gap closed (val/loss)" in text and f" | {gap:.0%} | " in text


def test_higher_is_better_metric_as_a_probe_would_report():
    acc = Metric("probe/land_acc", higher_is_better=True)
    runs = [
        run(e, s, None, metrics={acc.key: v})
        for e, vs in {"a": [0.7, 0.72], "b": [0.9, 0.93]}.items()
        for s, v in enumerate(vs)
    ]
    (section,) = compare(runs, metrics=[acc], description="Probe accuracy.").sections
    assert [r.label for r in section.rows] == ["b", "a"]
    (t,) = section.tests
    assert (t.better, t.worse) == ("b", "a") and t.diff.mean == pytest.approx(0.205)
    assert "higher is better" in section_markdown(section)


def test_secondary_metric_shown_where_present():
    runs = [
        run(e, s, 0.5 + s / 100, metrics={"val_heldout/loss": 0.6 + s / 100})
        for e in ("none", "xyz")
        for s in range(2)
    ]
    (section,) = compare(runs).sections
    assert [m.key for m in section.metrics] == ["val/loss", "val_heldout/loss"]
    assert "val_heldout/loss (mean ± 95 % CI)" in section_markdown(section)
    assert comparison_frame(compare(runs))["val_heldout/loss mean"].tolist() == pytest.approx([0.605, 0.605])


def test_variants_and_settings_are_never_averaged_together():
    runs = [run("sincos", s, 0.4, injection=inj) for inj in ("add", "token") for s in range(2)]
    runs += [
        Run(Path("/other"), "sincos", 0, "completed", {"val/loss": 0.3}, {"experiment": "b", "data": "earth"})
    ]
    sections = compare(runs).sections
    assert [s.title for s in sections] == ["experiment=b · data=earth", "experiment=cmp · data=synthetic"]
    assert sorted(r.label for r in sections[1].rows) == ["sincos (injection=add)", "sincos (injection=token)"]


def test_config_differences_among_averaged_runs_are_noted():
    runs = [
        run(
            "none",
            s,
            0.5,
            config={"model": {"optimizer": {"lr": lr}}, "seed": s, "data": {"shuffle_seed": s}},
        )
        for s, lr in ((0, 1e-3), (1, 2e-3))
    ]
    runs.append(
        run("none", 2, None, status="failed", config={"model": {"optimizer": {"lr": -1}}, "data": {"x": 1}})
    )
    (section,) = compare(runs).sections
    (note,) = section.notes
    assert note.endswith("(beyond encoding and seed): `model.optimizer.lr`.")


def test_load_runs_reads_every_status(tmp_path):
    base = {"experiment": "cmp", "data": "synthetic", "injection": "add", "encoding": "sincos"}
    write_results(
        tmp_path / "0-sincos-s0",
        {**base, "seed": 0, "status": "completed", "final": {"val/loss": 0.4, "val/loss_best": None}},
    )
    write_results(tmp_path / "1-sincos-s1", {**base, "seed": 1, "status": "running"})
    write_results(
        tmp_path / "2-sincos-s2",
        {**base, "seed": 2, "status": "failed", "error": {"type": "RuntimeError", "message": "boom"}},
    )
    hydra_only = tmp_path / "3-xyz-s0" / ".hydra"  # what Hydra writes before the job runs
    hydra_only.mkdir(parents=True)
    (hydra_only / "config.yaml").write_text("experiment_name: cmp\nseed: 0\ninjection: add\n")
    (hydra_only / "hydra.yaml").write_text(
        "hydra:\n  runtime:\n    choices:\n      encoding: xyz\n      data: synthetic\n"
    )
    runs = {r.path.name: r for r in load_runs(tmp_path)}
    assert runs["0-sincos-s0"].metrics == {"val/loss": 0.4}  # the non-finite value is dropped
    assert [runs[k].status for k in sorted(runs)] == ["completed", "running", "failed", "missing"]
    assert runs["2-sincos-s2"].error == "RuntimeError: boom"
    missing = runs["3-xyz-s0"]
    assert (missing.encoding, missing.seed, missing.setting) == ("xyz", 0, runs["0-sincos-s0"].setting)


def test_bad_input_is_refused_early(tmp_path):
    with pytest.raises(ValueError, match="is not a folder"):
        load_runs(tmp_path / "nope")
    with pytest.raises(ValueError, match="no runs"):
        load_runs(tmp_path)
    with pytest.raises(ValueError, match=r"confidence=1\.5"):
        compare([run("none", 0, 0.5)], confidence=1.5)


def test_final_plot_shows_the_chosen_metrics_only():
    runs = [
        run(e, s, 0.5 + s / 100, metrics={"val_heldout/loss": 0.6 + s / 100})
        for e in ("none", "xyz")
        for s in range(2)
    ]
    comparison = compare(runs)

    def panels(*keys: str) -> list[str]:
        return [ax.get_xlabel() for ax in plot_final(comparison, keys or None).axes]

    assert panels() == ["val/loss", "val_heldout/loss"]
    assert panels("val_heldout/loss") == ["val_heldout/loss"]
