"""The per-encoding table: `compare_section` turns the runs of one setting into a `Section`.

A `Section` is one table: the runs of one setting (experiment and world: never pooled). A `Row` is one
encoding (and, where it varies in the section, one variant such as the injection: never pooled either)
with the mean and interval of each `Metric` over its completed seeds, the share of the
baseline -> yardstick gap it closes, and every pair of rows is tested on every metric
(`clay_exp.report.stats`). Runs that failed, did not finish or could not be read are listed, never
averaged in. `clay_exp.report.compare` builds every section of a sweep, then the studies and the
reliance tables on them.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from clay_exp.report.metric import Metric
from clay_exp.report.runs import Run, per_seed
from clay_exp.report.stats import Summary, holm, mean_ci, paired_t_test

#: Encodings that anchor the "share of the gap closed" column by default: no location at all, and
#: (on hierarchical_world) the true latent factors.
BASELINE, YARDSTICK = "none", "oracle"
#: Config entries that legitimately differ between the runs of one table (never reported as a confound).
IGNORED_CONFIG = (
    "seed",
    "paths",
    "logger",
    "callbacks",
    "ckpt_path",
    "resume",
    "torch_threads",
    "trainer.default_root_dir",
    "tuning_source",  # where a tuned arm's values came from (the values themselves do count)
    "speed",  # how a run spent its CPU, not what it computed (clay_exp/speed.py)
)


@dataclass
class PairTest:
    """Paired comparison of two rows on one metric; `diff` = worse − better per seed."""

    metric: Metric
    better: str
    worse: str
    n: int
    diff: Summary
    p: float
    p_holm: float = math.nan
    significant: bool = False


@dataclass
class Row:
    label: str
    encoding: str
    variant: dict[str, str]
    runs: list[Run]
    stats: dict[str, Summary] = field(default_factory=dict)
    gap_closed: dict[str, float] = field(default_factory=dict)

    def completed(self, metric: Metric) -> list[Run]:
        return [r for r in self.runs if r.usable(metric)]

    @property
    def params_encoding(self) -> int | None:
        return _first([r.params_encoding for r in self.runs])

    @property
    def params_encoding_trainable(self) -> int | None:
        return _first([r.params_encoding_trainable for r in self.runs])

    @property
    def step_time_s(self) -> float | None:
        times = [r.step_time_s for r in self.runs if r.status == "completed" and r.step_time_s]
        return float(np.mean(times)) if times else None


@dataclass
class Section:
    """One table: the runs of one setting (e.g. one experiment on one world)."""

    setting: dict[str, str]
    metrics: list[Metric]
    rows: list[Row]
    tests: list[PairTest]
    not_averaged: list[Run]
    notes: list[str]
    #: The anchors of the gap-closed column: (L_baseline − L_row) / (L_baseline − L_yardstick).
    baseline: str = BASELINE
    yardstick: str = YARDSTICK

    @property
    def title(self) -> str:
        return " · ".join(f"{k}={v}" for k, v in self.setting.items()) or "all runs"


def _first(values: Iterable[Any]) -> Any:
    return next((v for v in values if v is not None), None)


def _config_differences(runs: Sequence[Run], ignore: Sequence[str]) -> list[str]:
    """Config entries (outside `ignore`, and not simply equal to each run's seed) that differ."""
    configs = [r.config for r in runs if r.config]
    if len(configs) < 2:
        return []
    table = pd.json_normalize(configs, sep=".")  # one column per leaf
    seeds = table.get("seed", pd.Series([None] * len(table)))
    follows_seed = {c for c in table.columns if all(v == s for v, s in zip(table[c], seeds, strict=True))}
    return [
        key
        for key in table.columns
        if key not in follows_seed
        and not any(key == i or key.startswith(f"{i}.") for i in ignore)
        and table[key].map(repr).nunique() > 1
    ]


def _label(run: Run, varying: Sequence[str]) -> str:
    extra = ", ".join(f"{k}={run.variant.get(k)}" for k in varying)
    return f"{run.encoding} ({extra})" if extra else run.encoding


def _fill_gap_closed(rows: Sequence[Row], metrics: Sequence[Metric], baseline: str, yardstick: str) -> None:
    """Share of the baseline -> yardstick gap each row closes, against anchors of the same variant."""
    for row in rows:
        anchors = {
            r.encoding: r for r in rows if r.variant == row.variant and r.encoding in (baseline, yardstick)
        }
        if baseline not in anchors or yardstick not in anchors:
            continue
        for m in metrics:
            base, best = anchors[baseline].stats.get(m.key), anchors[yardstick].stats.get(m.key)
            own = row.stats.get(m.key)
            if base and best and own and base.mean != best.mean:
                row.gap_closed[m.key] = (base.mean - own.mean) / (base.mean - best.mean)


def _pair_tests(rows: Sequence[Row], metric: Metric, confidence: float, alpha: float) -> list[PairTest]:
    """Every pair of rows on `metric`, paired by seed; Holm over this family of tests."""
    family = []
    for a, b in itertools.combinations([r for r in rows if metric.key in r.stats], 2):
        if metric.better(b.stats[metric.key].mean, a.stats[metric.key].mean):
            a, b = b, a
        sa, sb = per_seed(a.runs, metric), per_seed(b.runs, metric)
        seeds = sorted(sa.keys() & sb.keys())
        diffs = [(sb[s] - sa[s]) * (-1 if metric.higher_is_better else 1) for s in seeds]
        family.append(
            PairTest(metric, a.label, b.label, len(seeds), mean_ci(diffs, confidence), paired_t_test(diffs))
        )
    for test, p_adjusted in zip(family, holm([t.p for t in family]), strict=True):
        test.p_holm, test.significant = p_adjusted, bool(p_adjusted < alpha)
    return family


def _notes(rows: Sequence[Row], primary: Metric, varying: Sequence[str]) -> list[str]:
    """Possible confounds among the averaged runs (a failed run's odd setting is in no mean)."""
    ignore = [*IGNORED_CONFIG, *varying]
    averaged = [r for row in rows for r in row.completed(primary)]
    differing = {k for row in rows for k in _config_differences(row.completed(primary), ignore)}
    differing |= set(_config_differences(averaged, [*ignore, "encoding", "encoding_name"]))
    notes = []
    if differing:
        names = ", ".join(f"`{k}`" for k in sorted(differing))
        notes.append(
            f"These settings differ between the runs of this table (beyond encoding and seed): {names}."
        )
    for row in rows:
        seeds = [r.seed for r in row.completed(primary) if r.seed is not None]
        doubled = sorted({s for s in seeds if seeds.count(s) > 1})
        if doubled:
            notes.append(f"`{row.label}` ran seed(s) {doubled} more than once: tests pair their mean.")
    return notes


def compare_section(
    setting: dict[str, str],
    runs: list[Run],
    metrics: Sequence[Metric],
    confidence: float,
    alpha: float,
    anchors: tuple[str, str],
) -> Section:
    primary = metrics[0]
    present = [m for m in metrics if m is primary or any(r.usable(m) for r in runs)]
    variant_keys = sorted({k for r in runs for k in r.variant})
    varying = [k for k in variant_keys if len({r.variant.get(k) for r in runs}) > 1]
    groups: dict[str, list[Run]] = {}
    for r in runs:
        groups.setdefault(_label(r, varying), []).append(r)
    rows = [Row(label, rs[0].encoding, rs[0].variant, rs) for label, rs in groups.items()]
    for row in rows:
        for m in present:
            if values := [r.metrics[m.key] for r in row.completed(m)]:
                row.stats[m.key] = mean_ci(values, confidence)

    def rank_key(row: Row) -> tuple[bool, float, str]:
        s = row.stats.get(primary.key)
        if s is None:
            return (True, math.inf, row.label)
        return (False, -s.mean if primary.higher_is_better else s.mean, row.label)

    rows.sort(key=rank_key)
    _fill_gap_closed(rows, present, *anchors)
    tests = [t for m in present for t in _pair_tests(rows, m, confidence, alpha)]
    not_averaged = [r for r in runs if not r.usable(primary)]
    notes = _notes(rows, primary, varying)
    return Section(dict(setting), present, rows, tests, not_averaged, notes, *anchors)
