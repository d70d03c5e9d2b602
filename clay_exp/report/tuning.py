"""The report's tuning section, gathered: per arm the knobs and their ranges, the trials, the chosen
values, the tuning objective, a flag where a chosen value sits at its range's edge, and best-so-far
against trial, so a reader sees whether each arm's budget had saturated (the table, the plot
``tuning_best_so_far.png`` and the files: `clay_exp.report.tuning_markdown`).

Two sources, one summary (`ArmTuning`):

* a final sweep (`tuning_from_runs`): each run's config carries the tuned file's ``tuning_source``
  node (space, chosen values, the objective of every trial), or, untuned, its results.json says
  ``default (untuned)`` — the section then says so, arm by arm;
* a tuning folder (`tuning_from_folder`): the trial folders themselves (``scripts/tune.py --report``,
  also before every arm is done).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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
