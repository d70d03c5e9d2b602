"""What a study declares about its tuning before any trial runs, and each arm's search space.

A study experiment carries ``study.tuning`` (docs/tuning.md)::

    tuning:
      objective: {tune/loss: 0.5, tune_heldout/loss: 0.5}   # minimised: Σ weight x final metric
      trials: 12              # per arm, the same for every arm
      batch: 2                # trials proposed together, from the same history (run side by side)
      steps_fraction: 0.5     # a trial's training budget / a reported run's
      seeds: [100]            # tuning seeds: never among the reported ones
      sampler_seed: 0
      startup_trials: 4       # random trials before TPE models the history (trial 0: the defaults)
      edge_fraction: 0.1      # a chosen value this close to its range's edge is flagged
      backbone:               # knobs every arm tunes
        model.optimizer.lr: {low: 3.0e-4, high: 1.0e-2, scale: log}
      fixed: []               # knobs no arm tunes here (part of the study's question)
      arms:                   # per arm: other ranges, extra knobs, knobs left out
        sgd_none:
          space: {model.optimizer.lr: {low: 0.03, high: 1.0, scale: log}}
          fixed: []

An arm's space (`arm_space`) is the backbone's knobs, then its encoding class's
`SpatialEncoding.search_space` (prefixed ``encoding.``), then the arm's own ``space`` (which adds a
knob or replaces a range), less the study's and the arm's ``fixed`` knobs. Knob specs in YAML:
``{low, high, scale: log|linear, integer: false}`` or ``{choices: [...]}``.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from clay_exp.encodings.base import Knob, SpatialEncoding

#: The prefix of an encoding's knobs in the composed config.
ENCODING_PREFIX = "encoding."
#: Metrics a tuning objective may weigh: the tuning sets' losses (never a reported set's).
TUNING_METRICS = ("tune/loss", "tune_heldout/loss")
_KNOB_KEYS = {"low", "high", "scale", "integer", "choices"}


def _plain(node: Any) -> Any:
    return OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig | ListConfig) else node


def knob_from_spec(name: str, spec: Any) -> Knob:
    """A `Knob` from its YAML form; ValueError naming the knob and what is wrong."""
    spec = _plain(spec)
    if isinstance(spec, Knob):
        return spec
    if not isinstance(spec, Mapping) or set(spec) - _KNOB_KEYS:
        raise ValueError(
            f"tuning knob {name!r}: {spec!r} is not a knob; write {{low, high, scale: log|linear, "
            "integer: false}} or {choices: [...]}"
        )
    try:
        if "choices" in spec:
            return Knob.choice(*spec["choices"])
        return Knob(
            low=spec.get("low"),
            high=spec.get("high"),
            scale=spec.get("scale", "log"),
            integer=bool(spec.get("integer", False)),
        )
    except (TypeError, ValueError) as error:
        raise ValueError(f"tuning knob {name!r}: {error}") from error


def knob_spec(knob: Knob) -> dict[str, Any]:
    """The YAML form of a knob (what `knob_from_spec` reads back)."""
    if knob.scale == "choice":
        return {"choices": list(knob.choices)}
    return {"low": knob.low, "high": knob.high, "scale": knob.scale, "integer": knob.integer}


@dataclass(frozen=True)
class ArmTuning:
    """A study's changes to one arm's space: knobs added or re-ranged, knobs left out."""

    space: dict[str, Knob] = field(default_factory=dict)
    fixed: tuple[str, ...] = ()


@dataclass(frozen=True)
class TuningDeclaration:
    """``study.tuning``, checked (module docstring)."""

    objective: dict[str, float]
    trials: int
    batch: int
    steps_fraction: float
    seeds: tuple[int, ...]
    sampler_seed: int
    startup_trials: int
    backbone: dict[str, Knob]
    fixed: tuple[str, ...] = ()
    arms: dict[str, ArmTuning] = field(default_factory=dict)
    edge_fraction: float = 0.1

    @classmethod
    def from_config(cls, node: Any) -> TuningDeclaration:
        """Read and check a ``study.tuning`` node; ValueError names the bad entry."""
        raw = _plain(node)
        if not isinstance(raw, Mapping):
            raise ValueError(f"study.tuning must be a mapping (docs/tuning.md), got {raw!r}")
        known = {f for f in cls.__dataclass_fields__}
        unknown = set(raw) - known
        if unknown:
            raise ValueError(f"study.tuning has unknown keys {sorted(unknown)}; valid: {sorted(known)}")
        missing = {"objective", "trials", "seeds", "backbone"} - set(raw)
        if missing:
            raise ValueError(f"study.tuning must declare {sorted(missing)} (docs/tuning.md)")
        objective = raw["objective"]
        if isinstance(objective, str):
            objective = {objective: 1.0}
        if not isinstance(objective, Mapping) or not objective:
            raise ValueError(f"study.tuning.objective={objective!r} must map metrics to weights")
        for metric, weight in objective.items():
            if metric not in TUNING_METRICS:
                raise ValueError(
                    f"study.tuning.objective names {metric!r}; a tuning objective weighs only the tuning "
                    f"sets' losses {list(TUNING_METRICS)} (never a reported set's)"
                )
            if not (isinstance(weight, int | float) and math.isfinite(weight) and weight > 0):
                raise ValueError(f"study.tuning.objective[{metric!r}]={weight!r} must be a weight > 0")
        trials, batch = int(raw["trials"]), int(raw.get("batch", 2))
        if trials < 1 or batch < 1:
            raise ValueError(f"study.tuning.trials={trials} and batch={batch} must be >= 1")
        fraction = float(raw.get("steps_fraction", 1.0))
        if not 0.0 < fraction <= 1.0:
            raise ValueError(f"study.tuning.steps_fraction={fraction!r} must be in (0, 1]")
        seeds = raw["seeds"]
        seeds = tuple(int(s) for s in (seeds if isinstance(seeds, Sequence) else [seeds]))
        if not seeds or len(set(seeds)) != len(seeds):
            raise ValueError(f"study.tuning.seeds={list(seeds)} must be distinct seeds, at least one")
        edge = float(raw.get("edge_fraction", 0.1))
        if not 0.0 <= edge < 0.5:
            raise ValueError(f"study.tuning.edge_fraction={edge!r} must be in [0, 0.5)")
        arms = {}
        for arm, spec in (raw.get("arms") or {}).items():
            spec = spec or {}
            if set(spec) - {"space", "fixed"}:
                raise ValueError(f"study.tuning.arms.{arm} may hold `space` and `fixed`, got {sorted(spec)}")
            arms[str(arm)] = ArmTuning(
                space={k: knob_from_spec(k, v) for k, v in (spec.get("space") or {}).items()},
                fixed=tuple(spec.get("fixed") or ()),
            )
        return cls(
            objective={str(k): float(v) for k, v in objective.items()},
            trials=trials,
            batch=batch,
            steps_fraction=fraction,
            seeds=seeds,
            sampler_seed=int(raw.get("sampler_seed", 0)),
            startup_trials=int(raw.get("startup_trials", 4)),
            backbone={k: knob_from_spec(k, v) for k, v in (raw["backbone"] or {}).items()},
            fixed=tuple(raw.get("fixed") or ()),
            arms=arms,
            edge_fraction=edge,
        )

    def objective_text(self) -> str:
        """``0.5·tune/loss + 0.5·tune_heldout/loss`` (``tune/loss`` for a single weight of 1)."""
        if len(self.objective) == 1 and next(iter(self.objective.values())) == 1.0:
            return next(iter(self.objective))
        return " + ".join(f"{w:g}·{m}" for m, w in self.objective.items())

    def objective_value(self, metrics: Mapping[str, float | None]) -> float | None:
        """Σ weight x metric of a run's final metrics; None when one is missing or not finite."""
        total = 0.0
        for metric, weight in self.objective.items():
            value = metrics.get(metric)
            if value is None or not math.isfinite(value):
                return None
            total += weight * float(value)
        return total


def _constructor_args(cls: type) -> set[str]:
    return {
        name
        for name, p in inspect.signature(cls.__init__).parameters.items()
        if name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    }


def arm_space(
    declaration: TuningDeclaration,
    arm: str,
    encoding_class: type[SpatialEncoding],
    cfg: DictConfig,
    notes: list[str] | None = None,
) -> dict[str, Knob]:
    """The knobs arm `arm` tunes, in order (backbone first), each checked to be settable in `cfg`.

    ValueError names a knob that is neither a constructor argument of the encoding (``encoding.*``)
    nor a key of the composed config. One exception, said in `notes`: an encoding that declares no
    space and takes no ``lr_scale`` (written before encodings had a rate of their own, or without
    parameters) inherits the default ``lr_scale`` knob but cannot use it: it is left out.
    """
    own = declaration.arms.get(arm, ArmTuning())
    args = _constructor_args(encoding_class)
    declared = getattr(encoding_class, "search_space", {})
    if declared is SpatialEncoding.search_space and "lr_scale" not in args:
        declared = {}
        if notes is not None:
            notes.append(f"{encoding_class.__name__} takes no lr_scale: its own rate is not tuned")
    space: dict[str, Knob] = dict(declaration.backbone)
    space |= {ENCODING_PREFIX + k: v for k, v in declared.items()}
    space |= own.space
    for name in (*declaration.fixed, *own.fixed):
        space.pop(name, None)
    for name in space:
        if name.startswith(ENCODING_PREFIX):
            if name.removeprefix(ENCODING_PREFIX) not in args:
                raise ValueError(
                    f"arm {arm!r} tunes {name!r}, which {encoding_class.__name__} does not take (its "
                    f"arguments: {sorted(args)}); fix its search_space or study.tuning.arms.{arm}"
                )
        elif OmegaConf.select(cfg, name, default=None) is None:
            raise ValueError(f"arm {arm!r} tunes {name!r}, which is not a key of the composed config")
    return space


def current_values(
    cfg: DictConfig, space: Mapping[str, Knob], encoding_class: type | None = None
) -> dict[str, Any]:
    """Each knob's value in `cfg` (resolved), or its constructor default when the YAML leaves it out."""
    defaults = {}
    if encoding_class is not None:
        defaults = {
            name: p.default
            for name, p in inspect.signature(encoding_class.__init__).parameters.items()
            if p.default is not inspect.Parameter.empty
        }
    values = {}
    for name in space:
        value = OmegaConf.select(cfg, name, default=None)
        if value is None and name.startswith(ENCODING_PREFIX):
            value = defaults.get(name.removeprefix(ENCODING_PREFIX))
        values[name] = _plain(value)
    return values


def edge_knobs(space: Mapping[str, Knob], chosen: Mapping[str, Any], fraction: float) -> list[str]:
    """The knobs whose chosen value lies within `fraction` of its range's edge (on the knob's scale):
    the range may have been too narrow."""
    edges = []
    for name, knob in space.items():
        if knob.scale == "choice" or name not in chosen or chosen[name] is None:
            continue
        position = knob.position(float(chosen[name]))
        if position <= fraction or position >= 1.0 - fraction:
            edges.append(name)
    return edges
