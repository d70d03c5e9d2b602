"""Power of a paired comparison over seeds, with Holm's adjustment over k declared comparisons.

The report (clay_exp/report/) tests each pair of encodings with a two-sided paired t-test on the
per-seed differences and adjusts the p-values with Holm–Bonferroni. Holm's first (smallest) p-value
is compared with α/k, so in the worst case, one true effect among k comparisons, a difference must
pass a t-test at level α/k: `critical_t` and `min_detectable_difference` use that level (a
conservative bound when several effects are real, since later steps of Holm are easier).

With ``n`` seeds the mean difference over ``n`` paired seeds, divided by its standard error, follows
a noncentral t with ``n − 1`` degrees of freedom and noncentrality ``δ √n / σ`` (σ: the standard
deviation of one seed's difference).
"""

from __future__ import annotations

import math

from scipy import integrate, optimize, stats


def _check(n: int, alpha: float, k: int) -> None:
    if n < 2:
        raise ValueError(f"n={n!r} seeds: a paired t-test needs at least 2")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha={alpha!r} must be in (0, 1)")
    if k < 1:
        raise ValueError(f"k={k!r} comparisons must be >= 1")


def holm_worst_alpha(alpha: float, k: int) -> float:
    """The level Holm asks of the smallest p-value among k comparisons: α / k."""
    _check(2, alpha, k)
    return alpha / k


def critical_t(n: int, alpha: float = 0.05, k: int = 1) -> float:
    """|t| a paired two-sided t-test over `n` seeds must exceed under Holm over `k` comparisons."""
    _check(n, alpha, k)
    return float(stats.t.ppf(1 - holm_worst_alpha(alpha, k) / 2, n - 1))


def power(delta: float, sd: float, n: int, alpha: float = 0.05, k: int = 1) -> float:
    """Probability that a true mean paired difference `delta` is declared significant (two-sided)."""
    _check(n, alpha, k)
    if sd <= 0:
        raise ValueError(f"sd={sd!r} must be > 0")
    c, df = critical_t(n, alpha, k), n - 1
    nc = abs(delta) * math.sqrt(n) / sd

    # P(|Z + nc| > c·√(V/df)), V ~ χ²(df), integrated over V: scipy's nct returns NaN in the far
    # tails this needs (large c at few seeds), the integral stays finite.
    def given_v(v: float) -> float:
        s = c * math.sqrt(v / df)
        return (stats.norm.sf(s - nc) + stats.norm.cdf(-s - nc)) * stats.chi2.pdf(v, df)

    value, _ = integrate.quad(given_v, 0.0, math.inf, limit=200)
    return float(min(max(value, 0.0), 1.0))


def min_detectable_difference(
    sd: float, n: int, alpha: float = 0.05, k: int = 1, target_power: float = 0.8
) -> float:
    """The smallest true mean paired difference detected with probability `target_power`."""
    _check(n, alpha, k)
    if not 0 < target_power < 1:
        raise ValueError(f"target_power={target_power!r} must be in (0, 1)")
    if sd <= 0:
        raise ValueError(f"sd={sd!r} must be > 0")
    hi = sd
    while power(hi, sd, n, alpha, k) < target_power:
        hi *= 2
    return float(optimize.brentq(lambda d: power(d, sd, n, alpha, k) - target_power, 0.0, hi, xtol=1e-12))


def seeds_needed(
    delta: float, sd: float, alpha: float = 0.05, k: int = 1, target_power: float = 0.8, max_n: int = 1000
) -> int:
    """The fewest seeds at which `delta` reaches `target_power`."""
    for n in range(2, max_n + 1):
        if power(delta, sd, n, alpha, k) >= target_power:
            return n
    raise ValueError(f"delta={delta} at sd={sd} needs more than {max_n} seeds")


def sd_from_ci(halfwidth: float, n: int, confidence: float = 0.95) -> float:
    """The per-seed standard deviation behind a Student-t confidence half-width over `n` seeds."""
    _check(n, 1 - confidence, 1)
    return halfwidth * math.sqrt(n) / float(stats.t.ppf((1 + confidence) / 2, n - 1))
