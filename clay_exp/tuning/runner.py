"""Tuning a study: one plan, every arm the same budget, trials as ordinary run folders, chosen values
written where the final sweep composes them.

``python scripts/tune.py experiment=<study> [arms=a,b] [trials=N] [--dry-run]`` (its command line):

1. `make_plan` reads the study's declaration (``study.tuning``, `clay_exp.tuning.declaration`) and
   composes every arm (untuned: ``~tuned``) for its space and current values;
2. `run_tuning` runs each trial as ``python train.py experiment=<study> arm=<arm> ~tuned stage=tune
   seed=<tuning seed> <shortened budget> ++<knob>=<value> ...`` into
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
import json
import math
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from hydra.utils import get_class
from omegaconf import OmegaConf

from clay_exp.config import CONFIG_DIR, compose_config, swept_options
from clay_exp.encodings.base import Knob
from clay_exp.results import RunRecord, UnreadableRecordError, find_result_files, write_json_atomic
from clay_exp.session import RunFolderLockedError, RunLock
from clay_exp.tuning.declaration import (
    TuningDeclaration,
    arm_space,
    current_values,
    edge_knobs,
    knob_spec,
)
from clay_exp.tuning.record import SOURCE_KEY
from clay_exp.tuning.sampler import Observation, batch_start, propose

ROOT = CONFIG_DIR.parent
TRAIN_SCRIPT = ROOT / "train.py"
#: Where chosen values go: <configs>/tuned/<experiment option>/<arm>.yaml (configs/train.yaml).
TUNED_DIR = CONFIG_DIR / "tuned"
PLAN_FILE, TRIAL_FILE, CHOSEN_FILE, PROCESS_LOG = "plan.json", "trial.json", "chosen.json", "process.log"
TRIAL_DIR = re.compile(r"^trial-(?P<trial>\d{3,})-s(?P<seed>-?\d+)$")
#: A trial whose loss became NaN/inf diverged: a result (bad values), not an error.
DIVERGED_ERROR = "NonFiniteLossError"
#: Seconds a trial process spends outside training (Python, torch and Lightning imports, building
#: the world) when no finished trial says better; measured on the 2-core CPU, 1 thread.
PROCESS_START_S = 10.0
#: The parts of the plan a rerun must share with the tuning it continues.
_PLAN_KEYS = (
    "experiment",
    "overrides",
    "objective",
    "batch",
    "seeds",
    "sampler_seed",
    "startup_trials",
    "budget",
)


class TuningError(RuntimeError):
    """A trial failed for a reason that is not its values (a bug, a bad config): tuning stops."""


@dataclass
class ArmPlan:
    """One arm: its knobs (in order) and their current values (trial 0, when in range)."""

    arm: str
    encoding: str
    space: dict[str, Knob]
    defaults: dict[str, Any]
    notes: list[str] = field(default_factory=list)

    def spec(self) -> dict[str, Any]:
        return {"encoding": self.encoding, "space": {k: knob_spec(v) for k, v in self.space.items()}}


@dataclass
class TuningPlan:
    """What `run_tuning` runs: the arms, the budget of every trial, where everything goes."""

    experiment: str
    experiment_name: str
    declaration: TuningDeclaration
    arms: list[ArmPlan]
    overrides: list[str]
    folder: Path
    tuned_dir: Path
    budget_key: str
    budget: int
    full_budget: int
    steps: int
    reported_seeds: list[int]

    def arm(self, name: str) -> ArmPlan:
        return next(a for a in self.arms if a.arm == name)

    def units(self, arm: str) -> list[tuple[int, int]]:
        """(trial, seed) of every run of `arm`, in launch order."""
        return [(t, s) for t in range(self.declaration.trials) for s in self.declaration.seeds]

    def unit_dir(self, arm: str, trial: int, seed: int) -> Path:
        return self.folder / arm / f"trial-{trial:03d}-s{seed}"

    def stored(self) -> dict[str, Any]:
        d = self.declaration
        return {
            "experiment": self.experiment,
            "overrides": self.overrides,
            "objective": d.objective,
            "batch": d.batch,
            "seeds": list(d.seeds),
            "sampler_seed": d.sampler_seed,
            "startup_trials": d.startup_trials,
            "budget": {self.budget_key: self.budget, "steps": self.steps, "steps_fraction": d.steps_fraction},
            "trials": d.trials,
            "edge_fraction": d.edge_fraction,
            "objective_text": d.objective_text(),
            "arms": {a.arm: a.spec() for a in self.arms},
        }


# -- the plan -----------------------------------------------------------------------------------------
def _override_key(override: str) -> str:
    return override.split("=", 1)[0].lstrip("+~")


def _ints(values: Sequence[str]) -> list[int]:
    try:
        return [int(v) for v in values]
    except ValueError as error:
        raise ValueError(f"the study's swept seeds {list(values)} are not integers") from error


def make_plan(
    experiment: str,
    overrides: Sequence[str] = (),
    arms: Sequence[str] | None = None,
    trials: int | None = None,
    name: str = "tune",
    tuned_dir: str | Path | None = None,
) -> TuningPlan:
    """The plan of tuning `experiment` (a study with ``study.tuning``): ValueError names what is wrong."""
    overrides = list(overrides)
    if any(_override_key(o) in ("experiment", "arm", "seed") for o in overrides):
        raise ValueError("pass experiment=, arms= and the seeds through the tuner, not as overrides")
    base = [f"experiment={experiment}", *overrides]
    cfg = compose_config(base)
    node = OmegaConf.select(cfg, "study.tuning", default=None)
    if node is None:
        raise ValueError(f"experiment={experiment} declares no study.tuning (docs/tuning.md says how)")
    declaration = TuningDeclaration.from_config(node)
    if trials is not None:
        if int(trials) < 1:
            raise ValueError(f"trials={trials!r} must be >= 1")
        declaration = dataclasses.replace(declaration, trials=int(trials))
    swept = swept_options(base, "arm")
    chosen_arms = list(arms) if arms else swept
    unknown = [a for a in chosen_arms if a not in swept]
    if unknown:
        raise ValueError(f"arms {unknown} are not arms of experiment={experiment}; its arms: {swept}")
    try:
        reported = _ints(swept_options(base, "seed"))
    except ValueError as error:  # a study that sweeps no seed reports the config's own
        if "sweeps no" not in str(error):
            raise
        reported = [int(cfg.seed)]
    shared = sorted(set(reported) & set(declaration.seeds))
    if shared:
        raise ValueError(
            f"study.tuning.seeds {list(declaration.seeds)} share {shared} with the reported seeds "
            f"{reported}: "
            "a setting chosen at a seed would be judged at that seed"
        )
    if "tune_heldout/loss" in declaration.objective and not (
        cfg.data.get("split") == "region" and float(cfg.data.get("tune_heldout_fraction") or 0) > 0
    ):
        raise ValueError(
            "study.tuning.objective weighs tune_heldout/loss, but the data sets no held-out tiles apart "
            "for tuning: set data.split=region and data.tune_heldout_fraction > 0 in the study"
        )
    arm_plans = []
    for arm in chosen_arms:
        acfg = compose_config([*base, f"arm={arm}", "~tuned"])
        if acfg.encoding_name != arm:
            raise ValueError(
                f"arm={arm} runs as encoding_name={acfg.encoding_name!r}: an arm runs under its own name"
            )
        encoding_class = get_class(acfg.encoding._target_)
        notes: list[str] = []
        space = arm_space(declaration, arm, encoding_class, acfg, notes)
        defaults = current_values(acfg, space, encoding_class)
        notes += [
            f"{k}={defaults[k]!r} lies outside its range: trial 0 is drawn too"
            for k, v in space.items()
            if not v.contains(defaults[k])
        ]
        arm_plans.append(ArmPlan(arm, encoding_class.__name__, space, defaults, notes))
    max_steps = int(cfg.trainer.get("max_steps") or -1)
    if max_steps > 0:
        key, full = "trainer.max_steps", max_steps
    else:
        key, full = "trainer.max_epochs", int(cfg.trainer.max_epochs)
    budget = max(1, round(declaration.steps_fraction * full))
    batches = max(1, int(cfg.data.train_size) // int(cfg.data.batch_size))
    steps = budget if max_steps > 0 else budget * batches
    folder = Path(str(cfg.paths.log_dir)) / str(cfg.experiment_name) / "tuning" / name
    return TuningPlan(
        experiment=experiment,
        experiment_name=str(cfg.experiment_name),
        declaration=declaration,
        arms=arm_plans,
        overrides=overrides,
        folder=folder,
        tuned_dir=Path(tuned_dir) if tuned_dir is not None else TUNED_DIR / experiment,
        budget_key=key,
        budget=budget,
        full_budget=full,
        steps=steps,
        reported_seeds=reported,
    )


def check_and_store_plan(plan: TuningPlan) -> None:
    """Refuse to continue a tuning folder whose plan differs; then record this plan (arms merged)."""
    path = plan.folder / PLAN_FILE
    new = plan.stored()
    if path.is_file():
        old = json.loads(path.read_text())
        diffs = [f"{k}: {old.get(k)!r} -> {new[k]!r}" for k in _PLAN_KEYS if old.get(k) != new[k]]
        for arm, spec in new["arms"].items():
            if arm in old.get("arms", {}) and old["arms"][arm] != spec:
                diffs.append(f"arms.{arm}: {old['arms'][arm]!r} -> {spec!r}")
        if diffs:
            raise ValueError(
                f"{plan.folder} holds a tuning with another plan; continue it with the same declaration "
                "and overrides, or start another with --name:\n  " + "\n  ".join(diffs)
            )
        new["arms"] = {**old.get("arms", {}), **new["arms"]}
        new["created_at"] = old.get("created_at")
    new.setdefault("created_at", None)
    new["created_at"] = new["created_at"] or datetime.now(UTC).isoformat(timespec="seconds")
    write_json_atomic(path, new)


# -- trials -------------------------------------------------------------------------------------------
@dataclass
class Unit:
    """One run: trial `trial` of `arm` at `seed`."""

    arm: str
    trial: int
    seed: int
    path: Path


@dataclass
class UnitState:
    status: str  # todo | done | diverged | failed | busy
    metrics: dict[str, float] = field(default_factory=dict)
    error: str | None = None
    step_time_s: float | None = None
    train_time_s: float | None = None
    wall_s: float | None = None


def read_unit(path: Path) -> UnitState:
    """What a trial folder holds: a finished result, a divergence, a failure, or nothing usable."""
    if not (path / "results.json").is_file():
        return UnitState("todo")
    try:
        record = RunRecord.load(path)
    except UnreadableRecordError as error:
        return UnitState("todo", error=str(error))
    info = _read_json(path / TRIAL_FILE)
    times = {
        "step_time_s": record.step_time_s,
        "train_time_s": record.train_time_s,
        "wall_s": info.get("wall_s"),
    }
    if record.status == "completed":
        metrics = {k: v for k in record.final if (v := record.metric(k)) is not None}
        return UnitState("done", metrics, **times)
    if record.status == "failed":
        reason = record.failure_reason or "failed"
        status = (
            "diverged"
            if DIVERGED_ERROR in reason or (record.error or {}).get("type") == DIVERGED_ERROR
            else "failed"
        )
        return UnitState(status, error=reason, **times)
    return UnitState("todo", error=f"status {record.status}")


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


@dataclass
class TrialResult:
    """One trial of an arm over its seeds: the values, the objective (None: diverged or not done)."""

    trial: int
    params: dict[str, Any]
    status: str  # done | diverged | pending
    objective: float | None = None
    metrics: dict[int, dict[str, float]] = field(default_factory=dict)


def arm_trials(folder: Path, arm: str, declaration: TuningDeclaration) -> list[TrialResult]:
    """Every trial of `arm` found in a tuning folder, in trial order, with its objective."""
    per_trial: dict[int, dict[int, tuple[Path, UnitState]]] = {}
    arm_dir = folder / arm
    for path in sorted(arm_dir.iterdir()) if arm_dir.is_dir() else []:
        match = TRIAL_DIR.match(path.name)
        if match and path.is_dir():
            per_trial.setdefault(int(match["trial"]), {})[int(match["seed"])] = (path, read_unit(path))
    results = []
    for trial in sorted(per_trial):
        units = per_trial[trial]
        params = next(
            (
                p
                for path, _ in units.values()
                if (p := _read_json(path / TRIAL_FILE).get("params")) is not None
            ),
            {},
        )
        states = {seed: state for seed, (_, state) in units.items()}
        if any(s.status == "diverged" for s in states.values()):
            results.append(TrialResult(trial, params, "diverged"))
            continue
        done = {seed: s.metrics for seed, s in states.items() if s.status == "done"}
        if set(declaration.seeds) <= set(done):
            values = [declaration.objective_value(done[s]) for s in declaration.seeds]
            objective = None if any(v is None for v in values) else statistics.fmean(values)  # type: ignore[arg-type]
            results.append(
                TrialResult(trial, params, "done" if objective is not None else "diverged", objective, done)
            )
        else:
            results.append(TrialResult(trial, params, "pending", metrics=done))
    return results


def _format_value(value: Any) -> str:
    """A value as a Hydra override's right-hand side."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list | tuple):
        return "[" + ",".join(_format_value(v) for v in value) + "]"
    text = str(value)
    return text if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.\-/]*", text) else "'" + text.replace("'", "\\'") + "'"


def trial_overrides(plan: TuningPlan, unit: Unit, params: Mapping[str, Any]) -> list[str]:
    """The overrides of one trial run (later ones win over the user's)."""
    fixed = [
        f"arm={unit.arm}",
        "~tuned",  # trials start from the arm's own settings, never from an earlier tuning's file
        "stage=tune",
        f"seed={unit.seed}",
        f"{plan.budget_key}={plan.budget}",
        "logger=csv",
        "torch_threads=1",
        "trainer.enable_progress_bar=false",
        "trainer.enable_model_summary=false",
        f"hydra.run.dir={_format_value(str(unit.path.resolve()))}",
        f"+{SOURCE_KEY}.kind=trial",
        f"+{SOURCE_KEY}.run={_format_value(str(plan.folder))}",
        f"+{SOURCE_KEY}.trial={unit.trial}",
        *(f"++{k}={_format_value(v)}" for k, v in params.items()),
    ]
    mine = {_override_key(o) for o in fixed}
    return [
        f"experiment={plan.experiment}",
        *(o for o in plan.overrides if _override_key(o) not in mine),
        *fixed,
    ]


def _move_aside(path: Path) -> None:
    k = 1
    while (aside := path.with_name(f"{path.name}.attempt-{k}")).exists():
        k += 1
    path.rename(aside)


def _check_not_running(path: Path) -> None:
    lock = RunLock(path)
    try:
        lock.acquire()
    except RunFolderLockedError as error:
        raise TuningError(f"trial {path} is still being trained by another process: {error}") from None
    lock.release()


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
                _check_not_running(unit.path)
                _move_aside(unit.path)
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
        info = _read_json(item.unit.path / TRIAL_FILE)
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


def _display_path(path: Path) -> str:
    """`path` relative to the repository or the working folder where it lies below one, else absolute."""
    resolved = path.resolve()
    for base in (ROOT, Path.cwd()):
        if resolved.is_relative_to(base):
            return str(resolved.relative_to(base))
    return str(resolved)


def tuned_file_text(plan: TuningPlan, arm: ArmPlan, choice: Choice) -> str:
    """The YAML of configs/tuned/<experiment>/<arm>.yaml for `choice`."""
    d = plan.declaration
    path = plan.tuned_dir / f"{arm.arm}.yaml"
    source = {
        "file": _display_path(path),
        "run": _display_path(plan.folder),
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


# -- does the shortened budget rank trials as the full one does? -----------------------------------------
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


# -- the dry run ----------------------------------------------------------------------------------------
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
        f"  chosen values -> {_display_path(plan.tuned_dir)}/<arm>.yaml",
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
