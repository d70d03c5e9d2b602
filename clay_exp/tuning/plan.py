"""The plan of tuning a study: which arms, which knobs (and their current values), the budget of
every trial, where the trials and the chosen values go (`make_plan`); ``plan.json`` keeps it so a
rerun continues only the same tuning (`check_and_store_plan`)."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from hydra.utils import get_class
from omegaconf import OmegaConf

from clay_exp.config import CONFIG_DIR, compose_config, swept_options
from clay_exp.encodings.base import Knob
from clay_exp.results import write_json_atomic
from clay_exp.tuning.declaration import TuningDeclaration, arm_space, current_values, knob_spec

ROOT = CONFIG_DIR.parent
TRAIN_SCRIPT = ROOT / "train.py"
#: Where chosen values go: <configs>/tuned/<experiment option>/<arm>.yaml (configs/train.yaml).
TUNED_DIR = CONFIG_DIR / "tuned"
PLAN_FILE = "plan.json"
#: The parts of the plan a rerun must share with the tuning it continues.
PLAN_KEYS = (
    "experiment",
    "overrides",
    "objective",
    "batch",
    "seeds",
    "sampler_seed",
    "startup_trials",
    "budget",
)


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


def override_key(override: str) -> str:
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
    if any(override_key(o) in ("experiment", "arm", "seed") for o in overrides):
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
        diffs = [f"{k}: {old.get(k)!r} -> {new[k]!r}" for k in PLAN_KEYS if old.get(k) != new[k]]
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


def display_path(path: Path) -> str:
    """`path` relative to the repository or the working folder where it lies below one, else absolute."""
    resolved = path.resolve()
    for base in (ROOT, Path.cwd()):
        if resolved.is_relative_to(base):
            return str(resolved.relative_to(base))
    return str(resolved)
