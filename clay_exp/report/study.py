"""A pre-registered study's analysis (its declaration, the ``study`` node of the runs' config, is
`clay_exp.report.study_declaration`).

A study experiment declares, before anything is trained, the question, what it measures (efficiency
at the training budget, or information at convergence), a baseline and yardstick arms, and a *small*
family of directed comparisons. Only that family is tested with Holm: with k(k−1)/2 pairs of 15
arms and 3 seeds no difference can reach significance, with 3 declared comparisons it can.

For one section of runs (one experiment on one world) that carries a study, `analyse_study` gives:

* per declared comparison (a, b, metric, expected direction): the paired per-seed differences
  L_a − L_b, their mean with a Student-t interval, the two-sided paired t-test, Holm over the
  declared family only (k = the number declared: one that could not be tested counts with p = 1),
  and the minimum detectable difference at the seeds used (`clay_exp.design.power`: the observed sd
  of the differences, level α/k, the worst case of Holm, power 0.8);
* per arm, metric and yardstick: the share of the baseline -> yardstick gap closed with a paired
  bootstrap interval (`clay_exp.report.bootstrap.gap_closed`);
* per metric with a predicted ranking: Spearman's ρ between the predicted and observed order with a
  bootstrap interval, and the predicted pairs whose observed order is reversed.

The arms are ``Run.encoding``; seeds pair runs (a seed run twice counts with its mean).
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from clay_exp.design.power import min_detectable_difference
from clay_exp.report.bootstrap import RESAMPLES, RNG_SEED, GapEstimate, gap_closed, spearman_ci
from clay_exp.report.metric import Metric
from clay_exp.report.runs import Run, per_seed
from clay_exp.report.stats import Summary, holm, mean_ci, paired_t_test
from clay_exp.report.study_declaration import Declared, Study
from clay_exp.report.table import Section

if TYPE_CHECKING:
    from clay_exp.design.floors import FloorReport

#: Power at which the minimum detectable difference is computed.
TARGET_POWER = 0.8


@dataclass
class DeclaredTest:
    """A declared comparison's result; `diff` is over the per-seed L_a − L_b."""

    comparison: Declared
    n: int
    diff: Summary
    p: float
    p_holm: float = math.nan
    mdd: float = math.nan
    alpha: float = 0.05
    missing: str | None = None

    @property
    def holds(self) -> bool:
        """The observed mean difference has the expected sign."""
        return math.isfinite(self.diff.mean) and self.diff.mean * self.comparison.sign > 0

    @property
    def significant(self) -> bool:
        return math.isfinite(self.p_holm) and self.p_holm < self.alpha

    @property
    def verdict(self) -> str:
        if self.missing:
            return f"not tested ({self.missing})"
        if self.n < 2:
            return "n/a (< 2 paired seeds)"
        if self.significant:
            return "**confirmed**" if self.holds else "**reversed** (significant)"
        small = math.isfinite(self.mdd) and abs(self.diff.mean) < self.mdd
        return "not significant" + (" (|Δ| < MDD)" if small else "")


@dataclass
class Gap:
    """Share of the gap closed by `arm` on `metric`, from `baseline` towards `yardstick`."""

    arm: str
    metric: str
    baseline: str
    yardstick: str
    estimate: GapEstimate


@dataclass
class FailedPrediction:
    """A pair predicted `better` < `worse` whose observed means are reversed; `diff` is L_better −
    L_worse per seed (> 0: reversed) with its Student-t interval."""

    better: str
    worse: str
    diff: Summary


@dataclass
class RankingCheck:
    metric: str
    predicted: list[str]  # arms present, in predicted order (best first)
    observed: list[str]  # the same arms by observed mean over the common seeds, best first
    means: dict[str, float]
    n: int  # seeds common to every arm of the ranking
    rho: float
    ci_low: float
    ci_high: float
    failed: list[FailedPrediction]
    unpredicted: list[str]  # arms that ran but are not in the prediction


@dataclass
class Budget:
    """The training budget of the study's completed runs (ranges where runs differ)."""

    steps: tuple[int, int] | None
    batch_size: int | None
    chips: tuple[int, int] | None
    train_size: int | None


@dataclass
class StudyResult:
    study: Study | None
    section: Section
    budget: Budget | None = None
    declared: list[DeclaredTest] = field(default_factory=list)
    gaps: list[Gap] = field(default_factory=list)
    rankings: list[RankingCheck] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    #: Why the declaration could not be used (the other fields are then empty).
    error: str | None = None
    floors: FloorReport | None = None
    #: Where the floors came from, or why there are none.
    floors_note: str | None = None
    #: The config of one completed run: the world the floors are computed for.
    config: dict[str, Any] = field(default_factory=dict)
    #: Resamples of the bootstraps (gap closed, ranking).
    resamples: int = RESAMPLES

    @property
    def title(self) -> str:
        name = self.study.name if self.study else "study"
        return f"Study: {name} ({self.section.title})"


def _arms(section: Section) -> dict[str, list[Run]]:
    arms: dict[str, list[Run]] = {}
    for row in section.rows:
        arms.setdefault(row.encoding, []).extend(row.runs)
    return arms


def _paired(arms: dict[str, list[Run]], names: Sequence[str], metric: str) -> tuple[list[int], np.ndarray]:
    """Seeds at which every arm of `names` has `metric`, and the values (seeds, arms)."""
    per = [per_seed(arms.get(a, []), Metric(metric)) for a in names]
    seeds = sorted(set.intersection(*(set(p) for p in per))) if per else []
    return seeds, np.array([[p[s] for p in per] for s in seeds], dtype=float).reshape(len(seeds), len(names))


@functools.cache
def _unit_mdd(n: int, alpha: float, k: int) -> float:
    """The MDD at sd = 1: power depends on δ/σ only, so MDD(σ) = σ·MDD(1) (one root-find per n)."""
    return min_detectable_difference(1.0, n, alpha, k, TARGET_POWER)


def declared_tests(study: Study, arms: dict[str, list[Run]], confidence: float = 0.95) -> list[DeclaredTest]:
    """The declared family: paired t per comparison, Holm over the family (k = len(comparisons))."""
    k = len(study.comparisons)
    out = []
    for c in study.comparisons:
        absent = [a for a in (c.a, c.b) if not per_seed(arms.get(a, []), Metric(c.metric))]
        seeds, values = _paired(arms, [c.a, c.b], c.metric)
        diffs = values[:, 0] - values[:, 1]
        diff, p = mean_ci(diffs, confidence), paired_t_test(diffs)
        test = DeclaredTest(c, len(seeds), diff, p, alpha=study.alpha)
        if absent:
            test.missing = f"no completed run of {', '.join(f'`{a}`' for a in absent)} with {c.metric}"
        elif not seeds:
            test.missing = "no seed ran both arms"
        sd = test.diff.std
        if test.n >= 2 and math.isfinite(sd) and sd > 0:
            test.mdd = sd * _unit_mdd(test.n, study.alpha, k)
        out.append(test)
    # The declared family is the family: an untested comparison keeps its place with p = 1.
    family = [t.p if math.isfinite(t.p) else 1.0 for t in out]
    for test, adjusted in zip(out, holm(family), strict=True):
        test.p_holm = adjusted if math.isfinite(test.p) else math.nan
    return out


def gaps(
    study: Study,
    arms: dict[str, list[Run]],
    confidence: float = 0.95,
    resamples: int = RESAMPLES,
    seed: int = RNG_SEED,
) -> list[Gap]:
    """Gap closed by every arm, on every study metric, towards every yardstick that ran."""
    base = study.baseline
    if base is None or base not in arms:
        return []
    out = []
    for metric in study.metrics:
        for yard in (y for y in study.yardsticks if y in arms and y != base):
            for arm in (a for a in arms if a not in (base, yard)):
                seeds, v = _paired(arms, [base, arm, yard], metric)
                if not seeds and not per_seed(arms[arm], Metric(metric)):
                    continue  # the arm has no value of this metric at all
                est = gap_closed(v[:, 0], v[:, 1], v[:, 2], confidence, resamples, seed)
                out.append(Gap(arm, metric, base, yard, est))
    return out


def ranking_check(
    metric: str,
    predicted: Sequence[str],
    arms: dict[str, list[Run]],
    confidence: float = 0.95,
    resamples: int = RESAMPLES,
    seed: int = RNG_SEED,
) -> RankingCheck | None:
    """Predicted vs observed order of the arms that ran (None if fewer than two of them did)."""
    present = [a for a in dict.fromkeys(predicted) if per_seed(arms.get(a, []), Metric(metric))]
    ran = [a for a in arms if per_seed(arms[a], Metric(metric))]
    unpredicted = [a for a in ran if a not in present]
    if len(present) < 2:
        return None
    seeds, v = _paired(arms, present, metric)
    rho, lo, hi = spearman_ci(np.arange(len(present)), v, confidence, resamples, seed)
    means = {a: float(v[:, i].mean()) if len(seeds) else math.nan for i, a in enumerate(present)}
    observed = sorted(present, key=lambda a: (means[a], present.index(a)))
    failed = [
        FailedPrediction(a, b, mean_ci(v[:, i] - v[:, j], confidence))
        for (i, a), (j, b) in itertools.combinations(enumerate(present), 2)
        if means[a] > means[b]
    ]
    return RankingCheck(metric, present, observed, means, len(seeds), rho, lo, hi, failed, unpredicted)


def _budget(runs: Sequence[Run]) -> Budget:
    done = [r for r in runs if r.status == "completed"]

    def span(values: list[int]) -> tuple[int, int] | None:
        return (min(values), max(values)) if values else None

    def cfg(run: Run, *keys: str) -> Any:
        node: Any = run.config
        for key in keys:
            node = node.get(key) if isinstance(node, dict) else None
        return node

    batches = {b for r in done if isinstance(b := cfg(r, "data", "batch_size"), int)}
    sizes = {t for r in done if isinstance(t := cfg(r, "data", "train_size"), int)}
    chips = []
    for r in done:
        devices, nodes = cfg(r, "trainer", "devices"), cfg(r, "trainer", "num_nodes")
        world = (devices if isinstance(devices, int) else 1) * (nodes if isinstance(nodes, int) else 1)
        if r.steps is not None and isinstance(b := cfg(r, "data", "batch_size"), int):
            chips.append(r.steps * b * world)
    return Budget(
        span([r.steps for r in done if r.steps is not None]),
        next(iter(batches)) if len(batches) == 1 else None,
        span(chips),
        next(iter(sizes)) if len(sizes) == 1 else None,
    )


def _study_node(runs: Sequence[Run]) -> tuple[dict[str, Any] | None, list[str]]:
    """The study node of the section's runs (the most common one where they differ) and notes."""
    nodes = [r.config["study"] for r in runs if isinstance(r.config.get("study"), dict)]
    if not nodes:
        return None, []
    distinct = {repr(n): n for n in nodes}
    if len(distinct) == 1:
        return nodes[0], []
    chosen = max(distinct, key=lambda k: sum(repr(n) == k for n in nodes))
    return distinct[chosen], [
        f"The runs carry {len(distinct)} different study declarations; this section uses the most "
        "common one. A declaration changed after runs started is no longer pre-registered."
    ]


def analyse_study(
    section: Section, confidence: float = 0.95, resamples: int = RESAMPLES, seed: int = RNG_SEED
) -> StudyResult | None:
    """The study of a section's runs (None where they carry no ``study`` node)."""
    runs = [r for row in section.rows for r in row.runs]  # failed ones included
    node, notes = _study_node(runs)
    if node is None:
        return None
    done = next((r.config for r in runs if r.status == "completed" and r.config.get("study")), {})
    try:
        study = Study.from_config(node)
    except (ValueError, TypeError, AttributeError) as error:
        return StudyResult(None, section, notes=notes, error=f"the study declaration is invalid: {error}")
    arms = _arms(section)
    for row in section.rows:
        if row.label != row.encoding:
            notes.append(
                f"Arm `{row.encoding}` has runs of several variants ({row.label}): the study pairs "
                "their per-seed mean."
            )
            break
    declared_arms = {a for c in study.comparisons for a in (c.a, c.b)} | set(study.yardsticks)
    not_run = sorted(a for a in declared_arms | ({study.baseline} - {None}) if a not in arms)
    if not_run:
        notes.append(f"Declared arms with no run: {', '.join(f'`{a}`' for a in not_run)}.")
    rankings = [
        check
        for metric, order in study.predicted_ranking.items()
        if (check := ranking_check(metric, order, arms, confidence, resamples, seed)) is not None
    ]
    return StudyResult(
        study,
        section,
        _budget(runs),
        declared_tests(study, arms, confidence),
        gaps(study, arms, confidence, resamples, seed),
        rankings,
        notes,
        config=done,
        resamples=resamples,
    )


def analyse_studies(
    sections: Sequence[Section], confidence: float = 0.95, resamples: int = RESAMPLES, seed: int = RNG_SEED
) -> list[StudyResult]:
    """One `StudyResult` per section whose runs declare a study, in the sections' order."""
    return [r for s in sections if (r := analyse_study(s, confidence, resamples, seed)) is not None]
