"""What a tuning costs and whether its shortened budget ranks trials as the full one does: the dry
run's step time and plan (`plan_text`), and the recheck of one arm at the full budget."""

from __future__ import annotations

import dataclasses
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clay_exp.results import RunRecord, UnreadableRecordError, find_result_files
from clay_exp.tuning.plan import TRAIN_SCRIPT, TuningPlan, display_path
from clay_exp.tuning.trials import TRIAL_DIR, TuningError, Unit, arm_trials, read_unit, trial_overrides

#: Seconds a trial process spends outside training (Python, torch and Lightning imports, building
#: the world) when no finished trial says better: a rough figure; measured ones replace it.
PROCESS_START_S = 10.0


RECHECK_DIR = "recheck"


def recheck_plan(plan: TuningPlan, arm: str) -> tuple[TuningPlan, dict[tuple[str, int], dict[str, Any]]]:
    """A plan that reruns `arm`'s finished trials, with their values, at the full budget, into
    ``<tuning folder>/recheck/``; and those values (for `run_tuning`'s `given`)."""
    if arm not in {a.arm for a in plan.arms}:
        raise ValueError(f"--recheck {arm}: not an arm of this plan ({[a.arm for a in plan.arms]})")
    finished = [r for r in arm_trials(plan.folder, arm, plan.declaration) if r.status != "pending"]
    if not finished:
        raise ValueError(f"--recheck {arm}: no finished trial of {arm} in {plan.folder}: tune it first")
    per_unit = plan.steps // plan.budget  # steps per epoch (1 under max_steps)
    full = dataclasses.replace(
        plan,
        arms=[plan.arm(arm)],
        folder=plan.folder / RECHECK_DIR,
        budget=plan.full_budget,
        steps=per_unit * plan.full_budget,
        declaration=dataclasses.replace(
            plan.declaration, trials=max(r.trial for r in finished) + 1, steps_fraction=1.0
        ),
    )
    return full, {(arm, r.trial): r.params for r in finished}


def recheck_text(plan: TuningPlan, full: TuningPlan, arm: str) -> str:
    """Each trial's objective at the tuning budget and at the full one; Spearman's ρ of the orders."""
    from scipy.stats import spearmanr

    short = {r.trial: r.objective for r in arm_trials(plan.folder, arm, plan.declaration)}
    long = {r.trial: r.objective for r in arm_trials(full.folder, arm, full.declaration)}
    lines = [
        f"{arm}: objective ({plan.declaration.objective_text()}) per trial",
        "  trial  tuning budget  full budget",
    ]
    for trial in sorted(short):
        lines.append(
            f"  {trial:>5}  {_objective_text(short[trial]):>13}  {_objective_text(long.get(trial)):>11}"
        )
    both = [t for t in short if short[t] is not None and long.get(t) is not None]
    if len(both) >= 3:
        rho = spearmanr([short[t] for t in both], [long[t] for t in both]).statistic
        best_short = min(both, key=lambda t: (short[t], t))
        best_long = min(both, key=lambda t: (long[t], t))
        lines.append(
            f"  Spearman's rho over {len(both)} trials: {rho:.2f}; best at the tuning budget: trial "
            f"{best_short}, at the full budget: trial {best_long}"
        )
    return "\n".join(lines)


def _objective_text(value: float | None) -> str:
    return "—" if value is None else f"{value:.4f}"


@dataclass
class StepTime:
    """Seconds per optimizer step (validation included) and per run outside training; where from."""

    step_s: float
    overhead_s: float
    source: str


def _median(values: Iterator[float | None]) -> float | None:
    finite = [v for v in values if v is not None and math.isfinite(v) and v > 0]
    return statistics.median(finite) if finite else None


def step_time_from_trials(plan: TuningPlan) -> StepTime | None:
    states = [read_unit(p.parent) for p in find_result_files(plan.folder) if TRIAL_DIR.match(p.parent.name)]
    done = [s for s in states if s.status == "done" and s.step_time_s]
    if not done:
        return None
    step = _median(s.step_time_s for s in done)
    overhead = _median((s.wall_s - s.train_time_s) if s.wall_s and s.train_time_s else None for s in done)
    return StepTime(step, overhead or PROCESS_START_S, f"{len(done)} finished trial(s) of this tuning")  # type: ignore[arg-type]


def step_time_from_runs(plan: TuningPlan) -> StepTime | None:
    """From earlier runs of the experiment (its runs/ and multiruns/ folders), if any."""
    root = plan.folder.parent.parent
    records = []
    for sub in ("runs", "multiruns"):
        for path in find_result_files(root / sub) if (root / sub).is_dir() else []:
            try:
                records.append(RunRecord.load(path))
            except UnreadableRecordError:
                continue
    done = [r for r in records if r.status == "completed" and r.step_time_s]
    if not done:
        return None
    step = _median(r.step_time_s for r in done)
    overhead = _median(
        (r.wall_time_s - r.train_time_s) if r.wall_time_s and r.train_time_s else None for r in done
    )
    return StepTime(step, (overhead or 0.0) + PROCESS_START_S / 2, f"{len(done)} earlier run(s) under {root}")  # type: ignore[arg-type]


def measure_step_time(plan: TuningPlan, python: str = sys.executable) -> StepTime:
    """Train the first arm for one epoch (its defaults, one thread) and time it: ~a minute at most."""
    arm = plan.arms[0]
    with tempfile.TemporaryDirectory(prefix="clay-exp-measure-") as tmp:
        unit = Unit(arm.arm, 0, plan.declaration.seeds[0], Path(tmp) / "measure")
        overrides = trial_overrides(plan, unit, arm.defaults)
        overrides = [o for o in overrides if not o.startswith(plan.budget_key)]
        overrides.append(
            "trainer.max_epochs=1" if plan.budget_key == "trainer.max_epochs" else "trainer.max_steps=50"
        )
        env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
        started = time.perf_counter()
        done = subprocess.run(
            [python, str(TRAIN_SCRIPT), *overrides], capture_output=True, text=True, env=env
        )
        wall = time.perf_counter() - started
        try:
            record = RunRecord.load(unit.path)
        except UnreadableRecordError:
            record = None
        if record is None or record.status != "completed" or not record.step_time_s:
            tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-15:])
            raise TuningError(f"measuring a step of arm {arm.arm} failed:\n{tail}")
        return StepTime(
            record.step_time_s,
            max(0.0, wall - (record.train_time_s or 0.0)),
            f"measured now: one epoch of arm {arm.arm}, 1 thread, whatever else this machine was doing",
        )


def estimate(plan: TuningPlan, step: StepTime, jobs: int) -> tuple[float, float]:
    """Minutes for the whole plan and for what is left, `jobs` runs side by side."""
    per_run = plan.steps * step.step_s + step.overhead_s
    total = left = 0
    for arm in plan.arms:
        for trial, seed in plan.units(arm.arm):
            total += 1
            left += read_unit(plan.unit_dir(arm.arm, trial, seed)).status not in ("done", "diverged")
    return total * per_run / jobs / 60, left * per_run / jobs / 60


def plan_text(plan: TuningPlan, step: StepTime | None, jobs: int) -> str:
    """The plan as a dry run prints it: arms x trials x steps, knobs, estimated minutes."""
    d = plan.declaration
    lines = [
        f"Tuning experiment={plan.experiment} into {plan.folder}",
        f"  objective (minimised, final weights): {d.objective_text()}",
        f"  every arm: {d.trials} trials x {len(d.seeds)} seed(s) {list(d.seeds)} x {plan.steps} steps "
        f"({plan.budget_key}={plan.budget} of {plan.full_budget}: steps_fraction {d.steps_fraction:g})",
        f"  sampler: TPE (multivariate), seed {d.sampler_seed}, {d.startup_trials} random trials first, "
        f"batches of {d.batch}; trial 0 = the arm's own setting",
        f"  reported seeds {plan.reported_seeds}: none used for tuning",
        f"  chosen values -> {display_path(plan.tuned_dir)}/<arm>.yaml",
        "",
    ]
    width = max(len(a.arm) for a in plan.arms) + 2
    for arm in plan.arms:
        knobs = "; ".join(f"{k} {v.describe()} (now {arm.defaults.get(k)!r})" for k, v in arm.space.items())
        done = sum(r.status in ("done", "diverged") for r in arm_trials(plan.folder, arm.arm, d))
        lines.append(f"  {arm.arm:<{width}}{knobs or '(nothing to tune)'}  [{done}/{d.trials} done]")
        lines += [f"  {'':<{width}}note: {note}" for note in arm.notes]
    runs = len(plan.arms) * d.trials * len(d.seeds)
    lines += [
        "",
        f"  {len(plan.arms)} arms x {d.trials} trials x {len(d.seeds)} seed(s) = {runs} runs of "
        f"{plan.steps} steps",
    ]
    if step is not None:
        total, left = estimate(plan, step, jobs)
        lines.append(
            f"  at {step.step_s:.4f} s/step + {step.overhead_s:.0f} s/run ({step.source}), {jobs} at a time: "
            f"~{total:.0f} min in all, ~{left:.0f} min left"
        )
    return "\n".join(lines)
