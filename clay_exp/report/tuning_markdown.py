"""The report's tuning section as the reader sees it (`clay_exp.report.tuning` gathers it): a markdown
table per arm with its knobs, ranges, trials and chosen values, ``tuning_best_so_far.png`` (best
objective so far against trial: has each arm's budget saturated?), ``tuning.csv``, and the files
(`write_tuning`).
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from clay_exp.report.tuning import TUNING_CSV, TUNING_MD, TUNING_PLOT, ArmTuning
from clay_exp.tuning.record import UNTUNED


def _value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


def _chosen_text(summary: ArmTuning) -> str:
    if not summary.space:
        return ", ".join(f"{k} = {_value(v)}" for k, v in summary.chosen.items()) or "—"
    parts = []
    for name, knob in summary.space.items():
        flag = " ⚠ edge" if name in summary.edges else ""
        parts.append(f"{name} = {_value(summary.chosen.get(name))}{flag} ({knob.describe()})")
    return "; ".join(parts)


def tuning_markdown(summaries: Sequence[ArmTuning]) -> str:
    """The section as markdown (a ``## Tuning`` heading, one row per arm)."""
    if not summaries:
        return ""
    objectives = sorted({s.objective for s in summaries if s.objective})
    budgets = sorted({s.trials for s in summaries if s.tuned})
    lines = [
        "## Tuning",
        "",
        "Each arm's knobs were tuned before the reported runs, with the same budget for every arm, on "
        "the tuning chips (`tune`, `tune_heldout`) at tuning seeds, never on a reported chip or seed "
        f"(docs/tuning.md). Objective (minimised): {', '.join(objectives) or '—'}. "
        f"Best-so-far against trial: {TUNING_PLOT}. ⚠ edge: the chosen value lies within 10 % of its "
        "range's edge (on the knob's scale): the range may have been too narrow.",
        "",
        "| arm | trials | trial 0 (own setting) | best (trial) | chosen (range) | source |",
        "|---|---|---|---|---|---|",
    ]
    for s in summaries:
        if not s.tuned:
            chosen = ", ".join(f"{k} = {_value(v)}" for k, v in s.chosen.items())
            lines.append(f"| {s.arm} | — | — | — | {chosen or '—'} | {UNTUNED} |")
            continue
        first = s.history[0] if s.history else None
        best = f"{s.best:.4f} ({s.chosen_trial})" if s.best is not None else "—"
        lines.append(
            f"| {s.arm} | {s.done}/{s.trials} | {_value(first) if first is not None else '—'} | {best} | "
            f"{_chosen_text(s)} | {s.source} |"
        )
    notes = [n for s in summaries for n in s.notes]
    untuned = [s.arm for s in summaries if not s.tuned]
    if untuned and len(untuned) < len(summaries):
        notes.append(
            f"Not tuned (they ran at their own settings): {', '.join(untuned)}: an unequal comparison."
        )
    if len(budgets) > 1:
        notes.append(f"Arms were tuned with different numbers of trials ({budgets}): an unequal budget.")
    edges = [f"{s.arm} ({', '.join(s.edges)})" for s in summaries if s.edges]
    if edges:
        notes.append(f"Chosen at a range's edge: {'; '.join(edges)}.")
    lines += ["", *(f"- {n}" for n in notes)] if notes else []
    return "\n".join(lines) + "\n"


def plot_best_so_far(summaries: Sequence[ArmTuning]) -> Figure:
    """One panel per tuned arm: each trial's objective (x: diverged) and the best so far."""
    tuned = [s for s in summaries if s.tuned and s.history]
    cols = min(4, max(1, len(tuned)))
    rows = max(1, math.ceil(len(tuned) / cols))
    fig = Figure(figsize=(3.4 * cols, 2.8 * rows), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False).flatten()
    for ax, s in zip(axes, tuned, strict=False):
        trials = list(range(len(s.history)))
        finite = [(t, v) for t, v in zip(trials, s.history, strict=True) if v is not None]
        if finite:
            ax.plot(*zip(*finite, strict=True), "o", color="0.6", markersize=3.5, label="trial")
            best = s.best_so_far()
            ax.step(
                trials,
                [math.nan if b is None else b for b in best],
                where="post",
                color="C0",
                label="best so far",
            )
            low, high = min(v for _, v in finite), max(v for _, v in finite)
            diverged = [t for t, v in zip(trials, s.history, strict=True) if v is None]
            if diverged:
                ax.plot(diverged, [high] * len(diverged), "x", color="C3", label="diverged")
            ax.set_ylim(low - 0.05 * (high - low + 1e-9), high + 0.1 * (high - low + 1e-9))
        ax.set_title(s.arm + (" ⚠ edge" if s.edges else ""), fontsize="medium")
        ax.set_xlabel("trial")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(s.objective or "objective", fontsize="small")
        ax.grid(alpha=0.3)
    for ax in axes[len(tuned) :]:
        ax.set_visible(False)
    if tuned:
        axes[0].legend(fontsize="x-small")
    return fig


def _csv_rows(summaries: Sequence[ArmTuning]) -> list[dict[str, Any]]:
    rows = []
    for s in summaries:
        knobs = s.space or dict.fromkeys(s.chosen)
        for name in knobs or [None]:
            knob = s.space.get(name) if name else None
            rows.append(
                {
                    "arm": s.arm,
                    "source": s.source,
                    "run": s.run,
                    "objective": s.objective,
                    "trials": s.trials,
                    "trials_done": s.done,
                    "chosen_trial": s.chosen_trial,
                    "best": s.best,
                    "knob": name,
                    "range": knob.describe() if knob else None,
                    "chosen": json.dumps(s.chosen.get(name)) if name else None,
                    "edge": name in s.edges if name else None,
                    "runs": s.runs,
                }
            )
    return rows


def write_tuning(
    summaries: Sequence[ArmTuning], out_dir: str | Path, append_to: str | Path | None = None
) -> dict[str, Path]:
    """Write tuning.md, tuning.csv and tuning_best_so_far.png into `out_dir` (nothing when there is
    no summary); `append_to` (e.g. comparison.md) gets the section too."""
    if not summaries:
        return {}
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    text = tuning_markdown(summaries)
    paths = {name: out / name for name in (TUNING_MD, TUNING_CSV, TUNING_PLOT)}
    paths[TUNING_MD].write_text(text)
    rows = _csv_rows(summaries)
    with paths[TUNING_CSV].open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    plot_best_so_far(summaries).savefig(paths[TUNING_PLOT], dpi=120)
    if append_to is not None:
        target = Path(append_to)
        previous = target.read_text() if target.is_file() else ""
        target.write_text(previous.rstrip("\n") + "\n\n" + text)
    return paths
