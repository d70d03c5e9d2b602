"""The statistics of the report: a mean over seeds with its interval, paired tests, Holm's adjustment.

Per encoding the mean over seeds with a Student-t interval; between two encodings a two-sided paired
t-test on the per-seed differences; over a family of such tests the Holm–Bonferroni adjustment.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats


@dataclass
class Summary:
    """Mean over seeds with a Student-t interval (nan where fewer than 2 runs)."""

    n: int
    mean: float
    std: float
    ci_low: float
    ci_high: float
    values: list[float]

    @property
    def half_width(self) -> float:
        return (self.ci_high - self.ci_low) / 2


def mean_ci(values: Sequence[float], confidence: float = 0.95) -> Summary:
    """Mean with a Student-t `confidence` interval; the interval is nan for fewer than 2 values."""
    x = np.asarray(values, dtype=float)
    n = len(x)
    mean = float(x.mean()) if n else math.nan
    std = float(x.std(ddof=1)) if n > 1 else math.nan
    half = float(stats.t.ppf(0.5 + confidence / 2, n - 1) * std / math.sqrt(n)) if n > 1 else math.nan
    return Summary(n, mean, std, mean - half, mean + half, [float(v) for v in x])


def paired_t_test(differences: Sequence[float]) -> float:
    """Two-sided p-value of a paired t-test that the mean per-seed difference is 0 (nan if n < 2)."""
    d = np.asarray(differences, dtype=float)
    if len(d) < 2:
        return math.nan
    if np.ptp(d) == 0:  # identical differences: no spread, certain unless they are all zero
        return 1.0 if d[0] == 0 else 0.0
    t = d.mean() / (d.std(ddof=1) / math.sqrt(len(d)))
    return float(2 * stats.t.sf(abs(t), len(d) - 1))


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm–Bonferroni adjusted p-values (nan stays nan and does not count as a test)."""
    p = np.asarray(pvalues, dtype=float)
    tested = np.flatnonzero(~np.isnan(p))
    adjusted = np.full(len(p), math.nan)
    running = 0.0
    for rank, i in enumerate(tested[np.argsort(p[tested], kind="stable")]):
        running = max(running, min(1.0, (len(tested) - rank) * p[i]))
        adjusted[i] = running
    return adjusted.tolist()
