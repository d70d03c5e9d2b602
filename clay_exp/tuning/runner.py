"""Tuning a study: one plan, every arm the same budget, trials as ordinary run folders, chosen values
written where the final sweep composes them.

``python scripts/tune.py experiment=<study> [arms=a,b] [trials=N] [--dry-run]`` (its command line):

1. `clay_exp.tuning.plan.make_plan` reads the study's declaration (``study.tuning``,
   `clay_exp.tuning.declaration`) and composes every arm (untuned: ``~tuned``) for its space and
   current values;
2. `run_tuning` runs each trial (`clay_exp.tuning.trials`) as ``python train.py experiment=<study>
   arm=<arm> ~tuned stage=tune seed=<tuning seed> <shortened budget> ++<knob>=<value> ...`` into
   ``<logs>/<experiment>/tuning/<name>/<arm>/trial-NNN-s<seed>/`` (results.json, CSV log), ``jobs`` at
   a time, each on one thread; trial values come from `clay_exp.tuning.sampler` (TPE, a function of
   the earlier trials only);
3. when an arm's trials are all done, the best (lowest objective, the earlier trial on a tie) is
   written to ``configs/tuned/<experiment>/<arm>.yaml``, which ``configs/train.yaml``'s defaults
   list composes into every run of that arm (``optional tuned: ${experiment}/${arm}``).

Restarting: the same command continues where a killed tuning stopped. A trial folder with a
completed record is read back, never rerun; one left unfinished is moved aside
(``trial-NNN-sS.attempt-K``) and run again with the values it had; ``plan.json`` in the tuning
folder refuses a rerun whose declaration or overrides differ (use another ``--name``).
"""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from clay_exp.results import write_json_atomic
from clay_exp.tuning.declaration import edge_knobs, knob_spec
from clay_exp.tuning.plan import TRAIN_SCRIPT, ArmPlan, TuningPlan, check_and_store_plan, display_path
from clay_exp.tuning.record import SOURCE_KEY
from clay_exp.tuning.sampler import Observation, batch_start, propose
from clay_exp.tuning.trials import (
    PROCESS_LOG,
    TRIAL_FILE,
    TuningError,
    Unit,
    arm_trials,
    check_not_running,
    move_aside,
    read_json,
    read_unit,
    trial_overrides,
)

CHOSEN_FILE = "chosen.json"


@dataclass
class _Running:
    unit: Unit
    process: subprocess.Popen
    started: float
    log: Any


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


class _StopError(Exception):
    """A signal asked the tuner to stop."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def run_tuning(
    plan: TuningPlan,
    jobs: int = 2,
    python: str = sys.executable,
    given: Mapping[tuple[str, int], dict[str, Any]] | None = None,
) -> dict[str, Path]:
    """Run every missing trial of the plan, `jobs` at a time; write each finished arm's chosen
    values. Returns the tuned file of every arm whose trials are all done.

    `given` (arm, trial) -> values replaces the sampler: only those trials run, as they come, and
    nothing is chosen or written (`recheck_plan`)."""
    if jobs < 1:
        raise ValueError(f"--jobs={jobs} must be >= 1")
    plan.folder.mkdir(parents=True, exist_ok=True)
    check_and_store_plan(plan)
    declaration = plan.declaration
    params: dict[tuple[str, int], dict[str, Any]] = dict(given or {})
    todo: dict[str, list[Unit]] = {}
    for arm in plan.arms:
        for result in arm_trials(plan.folder, arm.arm, declaration):
            if result.params and given is None:
                params[(arm.arm, result.trial)] = result.params
        todo[arm.arm] = []
        for trial, seed in plan.units(arm.arm):
            if given is not None and (arm.arm, trial) not in given:
                continue
            unit = Unit(arm.arm, trial, seed, plan.unit_dir(arm.arm, trial, seed))
            state = read_unit(unit.path)
            if state.status == "failed":
                _log(f"[tune] rerunning {unit.path} (it failed: {state.error})")
            if state.status in ("done", "diverged"):
                continue
            if unit.path.exists():
                check_not_running(unit.path)
                move_aside(unit.path)
            todo[arm.arm].append(unit)
    running: list[_Running] = []
    failures: list[str] = []

    def finished(arm: str, before: int) -> bool:
        """Whether every unit of `arm`'s trials before `before` is done (none waiting or running)."""
        waiting = [u for u in todo[arm] if u.trial < before]
        busy = [r for r in running if r.unit.arm == arm and r.unit.trial < before]
        return not waiting and not busy

    def next_unit() -> Unit | None:
        for arm in plan.arms:
            units = todo[arm.arm]
            if units and (
                given is not None or finished(arm.arm, batch_start(units[0].trial, declaration.batch))
            ):
                return units.pop(0)
        return None

    def launch(unit: Unit) -> None:
        arm = plan.arm(unit.arm)
        key = (unit.arm, unit.trial)
        if key not in params:
            history = [
                Observation(r.trial, r.params, r.objective)
                for r in arm_trials(plan.folder, unit.arm, declaration)
                if r.status in ("done", "diverged")
            ]
            params[key] = propose(
                arm.space,
                history,
                unit.trial,
                batch=declaration.batch,
                sampler_seed=declaration.sampler_seed,
                startup_trials=declaration.startup_trials,
                defaults=arm.defaults,
            )
        overrides = trial_overrides(plan, unit, params[key])
        unit.path.mkdir(parents=True, exist_ok=True)
        info = {
            "arm": unit.arm,
            "trial": unit.trial,
            "seed": unit.seed,
            "params": params[key],
            "overrides": overrides,
        }
        write_json_atomic(
            unit.path / TRIAL_FILE, info | {"launched_at": datetime.now(UTC).isoformat(timespec="seconds")}
        )
        log = (unit.path / PROCESS_LOG).open("w")
        env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "HYDRA_FULL_ERROR": "1"}
        process = subprocess.Popen(
            [python, str(TRAIN_SCRIPT), *overrides], stdout=log, stderr=subprocess.STDOUT, env=env
        )
        running.append(_Running(unit, process, time.perf_counter(), log))
        _log(f"[tune] {unit.arm} trial {unit.trial} seed {unit.seed}: {params[key]}")

    def reap(item: _Running) -> None:
        item.log.close()
        wall = time.perf_counter() - item.started
        info = read_json(item.unit.path / TRIAL_FILE)
        write_json_atomic(
            item.unit.path / TRIAL_FILE, info | {"wall_s": wall, "returncode": item.process.returncode}
        )
        state = read_unit(item.unit.path)
        if state.status == "done":
            _log(f"[tune] {_unit_text(item.unit)}: {_metrics_text(state.metrics)} ({wall:.0f} s)")
        elif state.status == "diverged":
            _log(f"[tune] {_unit_text(item.unit)}: diverged ({state.error})")
        else:
            why = state.error or f"exit code {item.process.returncode}, no results.json"
            failures.append(f"{item.unit.path}: {why} (see {item.unit.path / PROCESS_LOG})")

    def on_signal(signum: int, frame: Any) -> None:
        raise _StopError(signum)

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        while True:
            for item in [r for r in running if r.process.poll() is not None]:
                running.remove(item)
                reap(item)
            while not failures and len(running) < jobs and (unit := next_unit()) is not None:
                launch(unit)
            if not running:
                break
            time.sleep(0.5)
    except _StopError as stop:
        _stop_all(running)
        raise SystemExit(128 + stop.signum) from None
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    if failures:
        raise TuningError(
            "trials failed (not a divergence: a bug or a bad setting):\n  " + "\n  ".join(failures)
        )
    if given is not None:
        return {}
    written = {}
    for arm in plan.arms:
        path = choose_and_write(plan, arm)
        if path is not None:
            written[arm.arm] = path
    return written


def _stop_all(running: list[_Running]) -> None:
    """Stop the running trials cleanly (SIGTERM: each records `interrupted`), then hard if need be."""
    for item in running:
        if item.process.poll() is None:
            item.process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 60
    for item in running:
        try:
            item.process.wait(timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            item.process.kill()
            item.process.wait()
        item.log.close()
    _log(f"[tune] stopped; {len(running)} unfinished trial(s) run again when the same command is rerun")


def _unit_text(unit: Unit) -> str:
    return f"{unit.arm} trial {unit.trial} seed {unit.seed}"


def _metrics_text(metrics: Mapping[str, float]) -> str:
    return ", ".join(f"{k} {v:.4f}" for k, v in sorted(metrics.items()) if k.endswith("/loss"))


# -- choosing -----------------------------------------------------------------------------------------
@dataclass
class Choice:
    """An arm's chosen trial and what the tuned file says about it."""

    arm: str
    trial: int
    values: dict[str, Any]
    objective: float
    history: list[float | None]
    edges: list[str]


def choose(plan: TuningPlan, arm: ArmPlan) -> Choice | None:
    """The arm's best trial once all its trials are done (None before); TuningError when all diverged."""
    results = arm_trials(plan.folder, arm.arm, plan.declaration)[: plan.declaration.trials]
    if len(results) < plan.declaration.trials or any(r.status == "pending" for r in results):
        return None
    finite = [r for r in results if r.objective is not None]
    if not finite:
        raise TuningError(f"every trial of arm {arm.arm} diverged: its ranges reach rates that never train")
    best = min(finite, key=lambda r: (r.objective, r.trial))
    edges = edge_knobs(arm.space, best.params, plan.declaration.edge_fraction)
    return Choice(
        arm.arm, best.trial, best.params, float(best.objective), [r.objective for r in results], edges
    )


def _nested(values: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for dotted, value in values.items():
        *parents, leaf = dotted.split(".")
        node = out
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value
    return out


def tuned_file_text(plan: TuningPlan, arm: ArmPlan, choice: Choice) -> str:
    """The YAML of configs/tuned/<experiment>/<arm>.yaml for `choice`."""
    d = plan.declaration
    path = plan.tuned_dir / f"{arm.arm}.yaml"
    source = {
        "file": display_path(path),
        "run": display_path(plan.folder),
        "arm": arm.arm,
        "trial": choice.trial,
        "trials": d.trials,
        "objective": d.objective_text(),
        "best": choice.objective,
        "chosen": dict(choice.values),
        "space": {k: knob_spec(v) for k, v in arm.space.items()},
        "history": choice.history,
        "edge": choice.edges,
        "seeds": list(d.seeds),
        "steps": plan.steps,
    }
    body = OmegaConf.to_yaml(OmegaConf.create({**_nested(choice.values), SOURCE_KEY: source}))
    first = choice.history[0]
    header = [
        "# @package _global_",
        "# Written by scripts/tune.py (docs/tuning.md), not by hand: rerun the tuning to change it.",
        f"# experiment={plan.experiment} arm={arm.arm}: trial {choice.trial} of {d.trials} "
        f"({plan.steps} steps, seed(s) {list(d.seeds)})",
        f"# minimised {d.objective_text()} = {choice.objective:.4f} (the arm's own setting, trial 0: "
        f"{'diverged' if first is None else f'{first:.4f}'}).",
        "# "
        + (
            f"At the edge of its range: {', '.join(choice.edges)}."
            if choice.edges
            else "No value at a range's edge."
        ),
    ]
    return "\n".join(header) + "\n" + body


def choose_and_write(plan: TuningPlan, arm: ArmPlan) -> Path | None:
    """Write the arm's tuned file and ``chosen.json`` once its trials are all done."""
    choice = choose(plan, arm)
    if choice is None:
        return None
    path = plan.tuned_dir / f"{arm.arm}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    text = tuned_file_text(plan, arm, choice)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)
    write_json_atomic(plan.folder / arm.arm / CHOSEN_FILE, dataclasses.asdict(choice) | {"file": str(path)})
    if choice.edges:
        _log(f"[tune] {arm.arm}: chosen at the edge of its range: {', '.join(choice.edges)} (widen it?)")
    return path
