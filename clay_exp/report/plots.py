"""The report's figures: loss curves during training, the final value per encoding and the declared
comparisons of a study (``declared.png``)."""

from __future__ import annotations

import math
from collections.abc import Collection
from typing import Any

import matplotlib
import pandas as pd
from matplotlib.figure import Figure

from clay_exp.report.compare import Comparison
from clay_exp.report.metric import Metric
from clay_exp.report.runs import metric_curve
from clay_exp.report.table import Section


def _colors(comparison: Comparison) -> dict[str, Any]:
    """One colour per encoding, the same in every panel and plot."""
    labels = sorted({row.label for s in comparison.sections for row in s.rows})
    cmap = matplotlib.colormaps["tab10" if len(labels) <= 10 else "tab20"]
    return {label: cmap(i % cmap.N) for i, label in enumerate(labels)}


def _panels(comparison: Comparison, metrics_of: Any) -> list[tuple[Section, Metric]]:
    return [(s, m) for s in comparison.sections for m in metrics_of(s)]


def plot_loss_curves(comparison: Comparison) -> Figure:
    """Each loss metric against the training step: the mean over seeds per encoding, band = min–max."""
    panels = _panels(comparison, lambda s: [m for m in s.metrics if not m.higher_is_better])
    colors = _colors(comparison)
    fig = Figure(figsize=(7, 4.2 * max(1, len(panels))), layout="constrained")
    axes = fig.subplots(max(1, len(panels)), 1, squeeze=False)[:, 0]
    for ax, (section, metric) in zip(axes, panels, strict=False):
        for row in section.rows:
            curves = [c for r in row.completed(metric) if not (c := metric_curve(r, metric.key)).empty]
            if not curves:
                continue
            table = pd.concat(curves, axis=1).sort_index()
            mean = table.mean(axis=1)
            ax.plot(
                mean.index, mean.to_numpy(), color=colors[row.label], label=f"{row.label} (n={len(curves)})"
            )
            if len(curves) > 1:
                ax.fill_between(
                    table.index, table.min(axis=1), table.max(axis=1), color=colors[row.label], alpha=0.2
                )
        ax.set_title(f"{metric.key} during training\n{section.title}")
        ax.set_xlabel("training step")
        ax.set_ylabel(metric.key)
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(title="encoding (mean over seeds; band: min–max)", fontsize="small")
    return fig


def _once(label: str, labelled: set[str]) -> str | None:
    """`label` the first time (one legend entry per kind of mark), None after."""
    if label in labelled:
        return None
    labelled.add(label)
    return label


def plot_final(comparison: Comparison, keys: Collection[str] | None = None) -> Figure:
    """Final value per encoding: mean with its confidence interval (bar) and every seed (dots).

    One panel per section and metric, or only the metrics named in `keys`.
    """
    panels = _panels(comparison, lambda s: [m for m in s.metrics if keys is None or m.key in keys])
    colors = _colors(comparison)
    pct = f"{comparison.confidence:.0%}".replace("%", " %")
    height = max(2.5, 0.5 * max((len(s.rows) for s in comparison.sections), default=1) + 1.5)
    fig = Figure(figsize=(7, height * max(1, len(panels))), layout="constrained")
    axes = fig.subplots(max(1, len(panels)), 1, squeeze=False)[:, 0]
    for ax, (section, metric) in zip(axes, panels, strict=False):
        rows = [r for r in section.rows if metric.key in r.stats]
        labelled: set[str] = set()
        for y, row in enumerate(rows):
            s = row.stats[metric.key]
            color = colors[row.label]
            if s.n > 1:
                ax.errorbar(
                    s.mean,
                    y,
                    xerr=[[s.mean - s.ci_low], [s.ci_high - s.mean]],
                    fmt="o",
                    color=color,
                    capsize=4,
                    markersize=7,
                    label=_once(f"mean ± {pct} CI", labelled),
                )
            else:
                ax.plot(s.mean, y, "o", color=color, markersize=7)
            ax.plot(
                s.values, [y] * len(s.values), "x", color="0.3", alpha=0.7, label=_once("seeds", labelled)
            )
        ax.set_yticks(range(len(rows)), [r.label for r in rows])
        ax.invert_yaxis()  # best on top
        better = "higher" if metric.higher_is_better else "lower"
        ax.set_title(f"Final {metric.key} per encoding ({better} is better)\n{section.title}")
        ax.set_xlabel(metric.key)
        ax.set_ylabel("encoding")
        ax.grid(axis="x", alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize="small", loc="best")
    return fig


def plot_declared(comparison: Comparison) -> Figure | None:
    """The declared comparisons of every study: mean paired difference L_a − L_b with its interval,
    the zero line, and the band ±MDD (differences inside it are below what the design detects).

    One panel per study; None when the runs declare no study. Green: confirmed (expected direction,
    Holm-significant), red: significantly reversed, grey: not significant.
    """
    results = [r for r in comparison.studies if r.declared]
    if not results:
        return None
    pct = f"{comparison.confidence:.0%}".replace("%", " %")
    heights = [0.55 * len(r.declared) + 1.6 for r in results]
    fig = Figure(figsize=(8, sum(heights)), layout="constrained")
    axes = fig.subplots(len(results), 1, squeeze=False, height_ratios=heights)[:, 0]
    for ax, result in zip(axes, results, strict=True):
        labelled: set[str] = set()
        for y, t in enumerate(result.declared):
            if math.isfinite(t.mdd):
                ax.barh(
                    y, 2 * t.mdd, left=-t.mdd, height=0.6, color="0.85", zorder=0,
                    label=_once("±MDD (power 0.8, α/k)", labelled),
                )  # fmt: skip
            if not math.isfinite(t.diff.mean):
                continue
            color = "tab:green" if t.significant and t.holds else "tab:red" if t.significant else "0.35"
            if t.n > 1 and math.isfinite(t.diff.ci_low):
                err = [[t.diff.mean - t.diff.ci_low], [t.diff.ci_high - t.diff.mean]]
                ax.errorbar(t.diff.mean, y, xerr=err, fmt="o", color=color, capsize=4, markersize=6)
            else:
                ax.plot(t.diff.mean, y, "o", color=color, markersize=6)
            ax.plot(t.diff.values, [y] * len(t.diff.values), "x", color="0.3", alpha=0.6,
                    label=_once("seeds", labelled))  # fmt: skip
        ax.axvline(0.0, color="black", linewidth=0.8)
        labels = [
            f"{t.comparison.a} − {t.comparison.b}\n{t.comparison.metric}, expect {t.comparison.expect}"
            for t in result.declared
        ]
        ax.set_yticks(range(len(labels)), labels, fontsize="small")
        ax.invert_yaxis()
        ax.set_xlabel(f"paired difference L_a − L_b (mean over seeds, {pct} t-interval)")
        name = result.study.name if result.study else "study"
        ax.set_title(f"Declared comparisons of {name}\n{result.section.title}", fontsize="medium")
        ax.grid(axis="x", alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize="small", loc="best")
    return fig
