"""A tuning's trials as run folders: the overrides a trial runs with, what its folder holds
(finished, diverged, failed, not yet), and an arm's trials with their objectives."""

from __future__ import annotations

import json
import re
import statistics
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from clay_exp.results import RunRecord, UnreadableRecordError
from clay_exp.run_lock import RunFolderLockedError, RunLock
from clay_exp.tuning.declaration import TuningDeclaration
from clay_exp.tuning.plan import TuningPlan, override_key
from clay_exp.tuning.record import SOURCE_KEY

TRIAL_FILE, PROCESS_LOG = "trial.json", "process.log"
TRIAL_DIR = re.compile(r"^trial-(?P<trial>\d{3,})-s(?P<seed>-?\d+)$")
#: A trial whose loss became NaN/inf diverged: a result (bad values), not an error.
DIVERGED_ERROR = "NonFiniteLossError"


class TuningError(RuntimeError):
    """A trial failed for a reason that is not its values (a bug, a bad config): tuning stops."""


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
    info = read_json(path / TRIAL_FILE)
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


def read_json(path: Path) -> dict[str, Any]:
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
                if (p := read_json(path / TRIAL_FILE).get("params")) is not None
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
    mine = {override_key(o) for o in fixed}
    return [
        f"experiment={plan.experiment}",
        *(o for o in plan.overrides if override_key(o) not in mine),
        *fixed,
    ]


def move_aside(path: Path) -> None:
    k = 1
    while (aside := path.with_name(f"{path.name}.attempt-{k}")).exists():
        k += 1
    path.rename(aside)


def check_not_running(path: Path) -> None:
    lock = RunLock(path)
    try:
        lock.acquire()
    except RunFolderLockedError as error:
        raise TuningError(f"trial {path} is still being trained by another process: {error}") from None
    lock.release()
