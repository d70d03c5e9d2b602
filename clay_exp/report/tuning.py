"""The report's tuning section: per arm the knobs and their ranges, the trials, the chosen values,
the tuning objective, a flag where a chosen value sits at its range's edge, and best-so-far against
trial (``tuning_best_so_far.png``), so a reader sees whether each arm's budget had saturated.

Two sources, one summary (`ArmTuning`):

* a final sweep (`tuning_from_runs`): each run's config carries the tuned file's ``tuning_source``
  node (space, chosen values, the objective of every trial), or, untuned, its results.json says
  ``default (untuned)`` — the section then says so, arm by arm;
* a tuning folder (`tuning_from_folder`): the trial folders themselves (``scripts/tune.py --report``,
  also before every arm is done).
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from clay_exp.encodings.base import Knob
from clay_exp.report.runs import Run
from clay_exp.results import RunRecord, UnreadableRecordError
from clay_exp.tuning.declaration import TuningDeclaration, edge_knobs, knob_from_spec
from clay_exp.tuning.plan import PLAN_FILE
from clay_exp.tuning.record import SOURCE_KEY, UNTUNED
from clay_exp.tuning.runner import CHOSEN_FILE
from clay_exp.tuning.trials import arm_trials

#: The files of the section (in the report folder, or the tuning folder).
TUNING_MD, TUNING_CSV, TUNING_PLOT = "tuning.md", "tuning.csv", "tuning_best_so_far.png"
DEFAULT_EDGE_FRACTION = 0.1


@dataclass
class ArmTuning:
    """How one arm was tuned (or that it was not)."""

    arm: str
    source: str
    run: str | None = None
    objective: str | None = None
    trials: int = 0
    chosen_trial: int | None = None
    chosen: dict[str, Any] = field(default_factory=dict)
    space: dict[str, Knob] = field(default_factory=dict)
    best: float | None = None
    history: list[float | None] = field(default_factory=list)
    edges: list[str] = field(default_factory=list)
    #: Final runs that ran with these values (0 for a tuning folder's own report).
    runs: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def tuned(self) -> bool:
        return self.source != UNTUNED

    @property
    def done(self) -> int:
        return len(self.history)

    def best_so_far(self) -> list[float | None]:
        out, best = [], math.inf
        for value in self.history:
            if value is not None:
                best = min(best, value)
            out.append(None if math.isinf(best) else best)
        return out


def _summary_from_source(arm: str, source: Mapping[str, Any]) -> ArmTuning:
    space = {k: knob_from_spec(k, v) for k, v in (source.get("space") or {}).items()}
    chosen = dict(source.get("chosen") or {})
    return ArmTuning(
        arm=arm,
        source=str(source.get("file")),
        run=source.get("run"),
        objective=source.get("objective"),
        trials=int(source.get("trials") or 0),
        chosen_trial=source.get("trial"),
        chosen=chosen,
        space=space,
        best=source.get("best"),
        history=list(source.get("history") or []),
        edges=list(source.get("edge") or edge_knobs(space, chosen, DEFAULT_EDGE_FRACTION)),
    )


def tuning_from_runs(runs: Sequence[Run]) -> list[ArmTuning]:
    """One summary per arm of the runs that belong to a study declaring tuning (none: [])."""
    by_arm: dict[str, ArmTuning] = {}
    for run in runs:
        config = run.config or {}
        if not (config.get("study") or {}).get("tuning"):
            continue
        source = config.get(SOURCE_KEY)
        if source and source.get("kind") == "trial":
            continue  # a tuning trial, not a reported run
        if source:
            summary = _summary_from_source(run.encoding, source)
        else:
            summary = ArmTuning(run.encoding, UNTUNED, chosen=_recorded_values(run.path))
        known = by_arm.setdefault(run.encoding, summary)
        if known.source != summary.source or known.chosen_trial != summary.chosen_trial:
            note = (
                f"runs of `{run.encoding}` used different tuning sources ({known.source}, {summary.source})"
            )
            if note not in known.notes:
                known.notes.append(note)
        known.runs += 1
    return [by_arm[a] for a in sorted(by_arm)]


def _recorded_values(path: Path) -> dict[str, Any]:
    try:
        return dict((RunRecord.load(path).tuning or {}).get("values") or {})
    except UnreadableRecordError:
        return {}


def tuning_from_folder(folder: str | Path) -> list[ArmTuning]:
    """One summary per arm of a tuning folder (``logs/<experiment>/tuning/<name>``), done or not."""
    folder = Path(folder)
    plan_path = folder / PLAN_FILE
    if not plan_path.is_file():
        raise ValueError(f"{folder} is not a tuning folder (no {PLAN_FILE}); run scripts/tune.py first")
    plan = json.loads(plan_path.read_text())
    declaration = TuningDeclaration(
        objective=plan["objective"],
        trials=int(plan["trials"]),
        batch=int(plan["batch"]),
        steps_fraction=float(plan["budget"]["steps_fraction"]),
        seeds=tuple(plan["seeds"]),
        sampler_seed=int(plan["sampler_seed"]),
        startup_trials=int(plan["startup_trials"]),
        backbone={},
    )
    edge_fraction = float(plan.get("edge_fraction", DEFAULT_EDGE_FRACTION))
    summaries = []
    for arm, spec in sorted(plan["arms"].items()):
        space = {k: knob_from_spec(k, v) for k, v in spec["space"].items()}
        results = arm_trials(folder, arm, declaration)
        finished = [r for r in results if r.status != "pending"]
        summary = ArmTuning(
            arm=arm,
            source=str(folder / arm),
            run=str(folder),
            objective=plan.get("objective_text"),
            trials=declaration.trials,
            space=space,
            history=[r.objective for r in finished],
        )
        chosen = (
            json.loads((folder / arm / CHOSEN_FILE).read_text())
            if (folder / arm / CHOSEN_FILE).is_file()
            else None
        )
        candidates = [r for r in finished if r.objective is not None]
        if chosen is not None:
            summary.source = chosen.get("file") or summary.source
            summary.chosen_trial, summary.chosen, summary.best = (
                chosen["trial"],
                chosen["values"],
                chosen["objective"],
            )
        elif candidates:  # not every trial done yet: the best so far, said so
            best = min(candidates, key=lambda r: (r.objective, r.trial))
            summary.chosen_trial, summary.chosen, summary.best = best.trial, best.params, best.objective
            summary.notes.append(
                f"`{arm}`: {len(finished)} of {declaration.trials} trials done; best so far shown"
            )
        summary.edges = edge_knobs(space, summary.chosen, edge_fraction)
        summaries.append(summary)
    return summaries


# -- presentation -------------------------------------------------------------------------------------
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
