"""A pre-registered study: the declared family, its Holm adjustment and MDD, the gap closed with a
bootstrap interval, the ranking check, and where the study sits in the report."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from clay_exp.design.power import min_detectable_difference
from clay_exp.report import compare, gap_closed, to_markdown, write_report
from tests.report.factory import LOSSES, study_node, study_runs

#: Four seeds of five arms; the declared comparisons below are a, b, expected direction.
ARMS = {
    "none": [0.50, 0.52, 0.51, 0.53],
    "sincos": [0.49, 0.512, 0.50, 0.52],
    "flat": [0.46, 0.49, 0.47, 0.50],
    "hier": [0.44, 0.455, 0.45, 0.47],
    "oracle": [0.40, 0.41, 0.39, 0.42],
}
DECLARED = [("hier", "flat", "a<b"), ("sincos", "none", "a<b"), ("hier", "none", "a<b")]


def declared_study(declared=DECLARED, arms=ARMS, **fields):
    (result,) = compare(study_runs(arms, study_node(declared, **fields))).studies
    return result


def test_declared_difference_ci_and_p_match_scipy():
    """Δ = L_a − L_b per seed: its mean, Student-t interval and paired two-sided p as scipy gives them."""
    result = declared_study()
    test = result.declared[0]
    a, b = np.array(ARMS["hier"]), np.array(ARMS["flat"])
    d = a - b
    lo, hi = stats.t.interval(0.95, len(d) - 1, loc=d.mean(), scale=stats.sem(d))
    assert (test.n, test.diff.mean) == (4, pytest.approx(d.mean()))
    assert (test.diff.ci_low, test.diff.ci_high) == (pytest.approx(lo), pytest.approx(hi))
    assert test.p == pytest.approx(stats.ttest_rel(a, b).pvalue)
    # MDD: the observed sd of the differences, 4 seeds, α/k with k = 3 declared, power 0.8.
    assert test.mdd == pytest.approx(min_detectable_difference(d.std(ddof=1), 4, 0.05, 3, 0.8), rel=1e-6)
    assert test.holds and test.comparison.expect == "a<b"


def test_holm_runs_over_the_declared_family_only():
    """3 declared comparisons among 5 arms (10 pairs): Holm's factors are 3, 2, 1, not 10, 9, ..."""
    result = declared_study()
    raw = [stats.ttest_rel(ARMS[a], ARMS[b]).pvalue for a, b, _ in DECLARED]
    order = np.argsort(raw)
    by_hand = np.empty(3)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (3 - rank) * raw[i]))
        by_hand[i] = running
    assert [t.p for t in result.declared] == pytest.approx(raw)
    assert [t.p_holm for t in result.declared] == pytest.approx(list(by_hand))
    assert by_hand[order[0]] == pytest.approx(3 * raw[order[0]])  # the hand example is not trivial
    exploratory = {(t.better, t.worse): t.p_holm for t in result.section.tests if t.metric.key == "val/loss"}
    assert len(exploratory) == 10
    # hier < none has the smallest p of both families: Holm multiplies it by 3 here, by 10 there.
    p_hier_none = result.declared[2].p
    assert result.declared[2].p_holm == pytest.approx(3 * p_hier_none)
    assert exploratory[("hier", "none")] == pytest.approx(10 * p_hier_none)


def test_an_untested_comparison_keeps_its_place_in_the_family():
    """A declared arm that never ran counts with p = 1: the others are still adjusted over k = 3."""
    declared = [("hier", "flat", "a<b"), ("hier", "none", "a<b"), ("tile", "none", "a<b")]
    result = declared_study(declared)
    p = [t.p for t in result.declared[:2]]
    small, large = sorted(p)
    assert sorted(t.p_holm for t in result.declared[:2]) == pytest.approx(
        [3 * small, max(3 * small, 2 * large)]
    )
    missing = result.declared[2]
    assert missing.n == 0 and math.isnan(missing.p_holm) and "`tile`" in missing.verdict
    assert "Declared arms with no run: `tile`." in result.notes


def test_verdicts_confirmed_reversed_and_below_mdd():
    arms = {
        **ARMS,
        "xyz": [0.55, 0.57, 0.56, 0.58],  # clearly worse than none: 'a<b' is reversed
        "wrap": [0.51, 0.508, 0.518, 0.526],  # none ± noise: no detectable difference
    }
    declared = [("hier", "none", "a<b"), ("xyz", "none", "a<b"), ("wrap", "none", "a<b")]
    confirmed, reversed_, small = declared_study(declared, arms).declared
    assert confirmed.verdict == "**confirmed**"
    assert reversed_.verdict == "**reversed** (significant)" and not reversed_.holds
    assert not small.significant and small.verdict == "not significant (|Δ| < MDD)"
    assert abs(small.diff.mean) < small.mdd


def true_gap_values(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-seed losses with known means (baseline 1.0, arm 0.75, yardstick 0.5: true share 0.5); a
    seed effect shared by the three arms (what pairing removes) plus independent noise."""
    seed_effect = rng.normal(0, 0.05, n)
    noise = rng.normal(0, 0.02, (3, n))
    return 1.0 + seed_effect + noise[0], 0.75 + seed_effect + noise[1], 0.5 + seed_effect + noise[2]


def test_bootstrap_gap_ci_contains_the_true_share_and_shrinks_with_seeds():
    rng = np.random.default_rng(7)
    few, many = gap_closed(*true_gap_values(10, rng)), gap_closed(*true_gap_values(80, rng))
    for est in (few, many):
        assert est.established
        assert est.ci_low < 0.5 < est.ci_high
        assert est.delta_low < 0.5 < est.delta_high
    assert many.ci_high - many.ci_low < 0.5 * (few.ci_high - few.ci_low)
    # The statistic is the ratio of means, (mean b − mean a) / (mean b − mean y), not a mean of ratios.
    b, a, y = true_gap_values(5, np.random.default_rng(3))
    assert gap_closed(b, a, y).gap == pytest.approx((b.mean() - a.mean()) / (b.mean() - y.mean()))
    # Same RNG seed, same interval: the report is reproducible.
    again = gap_closed(*true_gap_values(10, np.random.default_rng(7)))
    assert (again.ci_low, again.ci_high) == (few.ci_low, few.ci_high)


def test_gap_intervals_cover_the_true_share_at_ten_seeds():
    """Over 200 synthetic studies of 10 seeds both 95 % intervals cover the true 0.5 nearly as often
    as they claim (the percentile bootstrap a little less: ~0.92 here, ~0.76 at 3 seeds)."""
    rng = np.random.default_rng(0)
    estimates = [gap_closed(*true_gap_values(10, rng), resamples=1000) for _ in range(200)]
    boot = np.mean([e.ci_low < 0.5 < e.ci_high for e in estimates])
    delta = np.mean([e.delta_low < 0.5 < e.delta_high for e in estimates])
    assert boot > 0.87 and delta > 0.92


def test_gap_not_established_when_the_baseline_is_as_good_as_the_yardstick():
    arms = {
        "none": [0.50, 0.52, 0.51, 0.53],
        "oracle": [0.505, 0.515, 0.512, 0.528],  # ≈ none: no gap to close
        "hier": [0.47, 0.49, 0.48, 0.50],
    }
    result = declared_study([("hier", "none", "a<b")], arms)
    (gap,) = result.gaps
    assert (gap.arm, gap.yardstick) == ("hier", "oracle") and not gap.estimate.established
    assert gap.estimate.denominator.ci_low < 0 < gap.estimate.denominator.ci_high
    text = to_markdown(compare(study_runs(arms, study_node([("hier", "none", "a<b")]))))
    (row,) = [line for line in text.splitlines() if line.startswith("| `hier` | val/loss | `oracle`")]
    assert "gap not established" in row and "%" not in row  # never a bare ratio


def test_ranking_check_spearman_and_failed_predictions():
    predicted = ["oracle", "hier", "flat", "sincos", "none"]
    result = declared_study(predicted_ranking={"val/loss": [*predicted, "never_ran"]})
    (check,) = result.rankings
    assert check.predicted == predicted and check.observed == predicted
    assert check.rho == pytest.approx(1.0) and check.failed == [] and check.n == 4
    # Swap two adjacent predictions: ρ = 1 − 6·Σd²/(k(k²−1)) = 1 − 12/120, and exactly that pair fails.
    swapped = ["oracle", "flat", "hier", "sincos", "none"]
    (check,) = declared_study(predicted_ranking={"val/loss": swapped}).rankings
    assert check.rho == pytest.approx(0.9)
    assert check.ci_low <= 0.9 <= check.ci_high
    (failed,) = check.failed
    d = np.array(ARMS["flat"]) - np.array(ARMS["hier"])
    assert (failed.better, failed.worse) == ("flat", "hier")
    assert failed.diff.mean == pytest.approx(d.mean()) and failed.diff.ci_low > 0
    text = to_markdown(
        compare(study_runs(ARMS, study_node(DECLARED, predicted_ranking={"val/loss": swapped})))
    )
    assert "Spearman ρ = 0.90" in text and "| `flat` | `hier` |" in text


def test_declared_section_comes_before_the_exploratory_table(tmp_path):
    comparison = compare(study_runs(ARMS, study_node(DECLARED)))
    text = to_markdown(comparison)
    study_at = text.index("## Study: toy (experiment=cmp · data=synthetic)")
    assert study_at < text.index("### Declared comparisons (pre-registered: Holm over these 3)")
    assert text.index("### Declared comparisons") < text.index("## Exploratory (not pre-registered): ")
    assert "gap closed (val/loss)" not in text  # the bare ratio column leaves the exploratory table
    assert "100 optimizer steps" in text
    written = write_report(comparison, [], tmp_path, curves=False)
    assert {"declared.png", "declared.csv", "gaps.csv"} <= set(written)
    assert (tmp_path / "declared.png").stat().st_size > 0


def test_runs_without_a_study_give_todays_report():
    runs = study_runs(LOSSES, None)
    comparison = compare(runs)
    text = to_markdown(comparison)
    assert comparison.studies == []
    assert "Study" not in text and "Exploratory" not in text and "gap closed (val/loss)" in text
    assert text.index("## experiment=cmp · data=synthetic") > 0


def test_an_invalid_declaration_is_reported_and_the_table_still_written():
    node = study_node(DECLARED, measures="speed")
    text = to_markdown(compare(study_runs(ARMS, node)))
    assert "Not analysed: the study declaration is invalid: study.measures='speed'" in text
    assert "## Exploratory (not pre-registered): " in text
