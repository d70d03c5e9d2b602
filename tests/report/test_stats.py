"""The report's statistics against closed forms and hand-computed examples."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from clay_exp.report import holm, mean_ci, paired_t_test


def test_mean_ci_is_the_student_t_interval():
    s = mean_ci([1.0, 2.0, 3.0, 4.0])
    t_975_df3 = 3.182446305284263  # table value of the t distribution
    half = t_975_df3 * math.sqrt(5 / 3) / 2
    assert (s.n, s.mean, s.std) == (4, 2.5, pytest.approx(math.sqrt(5 / 3)))
    assert (s.ci_low, s.ci_high) == (pytest.approx(2.5 - half), pytest.approx(2.5 + half))
    one = mean_ci([0.3])
    assert one.mean == 0.3 and math.isnan(one.ci_low) and math.isnan(one.half_width)


@pytest.mark.parametrize("confidence", [0.9, 0.95, 0.99])
def test_ci_half_width_closed_forms_for_two_and_three_seeds(confidence):
    p = 0.5 + confidence / 2
    # df = 1: the t distribution is Cauchy, quantile tan(pi (p - 1/2)); for [1, 3]: std = sqrt(2),
    # so the half-width is t * sqrt(2) / sqrt(2) = t.
    two = mean_ci([1.0, 3.0], confidence)
    assert two.half_width == pytest.approx(math.tan(math.pi * (p - 0.5)))
    # df = 2: quantile (2p - 1) / sqrt(2 p (1 - p)); for [0, 1, 5]: mean 2, std sqrt(7).
    three = mean_ci([0.0, 1.0, 5.0], confidence)
    t = (2 * p - 1) / math.sqrt(2 * p * (1 - p))
    assert three.mean == pytest.approx(2.0)
    assert three.half_width == pytest.approx(t * math.sqrt(7) / math.sqrt(3))


def test_paired_t_test_closed_form_and_scipy():
    # df = 2: the t CDF is 1/2 + t / (2 sqrt(2 + t^2)), so p = 1 - t / sqrt(2 + t^2).
    t = 2 / (1 / math.sqrt(3))
    assert paired_t_test([1.0, 2.0, 3.0]) == pytest.approx(1 - t / math.sqrt(2 + t * t))
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=6), rng.normal(size=6) + 0.5
    assert paired_t_test(b - a) == pytest.approx(stats.ttest_rel(b, a).pvalue)
    assert paired_t_test([0.1, 0.1, 0.1]) == 0.0 and paired_t_test([0.0, 0.0]) == 1.0
    assert math.isnan(paired_t_test([0.2]))


def test_holm_adjustment_by_hand():
    adjusted = holm([0.01, 0.04, 0.03, 0.005, math.nan])
    # sorted: 0.005*4=0.02, 0.01*3=0.03, 0.03*2=0.06, 0.04*1 -> kept monotone at 0.06
    assert adjusted[:4] == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert math.isnan(adjusted[4])  # not a test: not counted in the family size
    assert holm([0.6, 0.9]) == pytest.approx([1.0, 1.0])  # capped at 1
    # six tests: 0.001*6, 0.008*5, 0.009*4 (raised to 0.04 by the running max), 0.02*3, 0.2*2, 0.5
    assert holm([0.2, 0.001, 0.5, 0.009, 0.02, 0.008]) == pytest.approx([0.4, 0.006, 0.5, 0.04, 0.06, 0.04])
    assert holm([]) == []
