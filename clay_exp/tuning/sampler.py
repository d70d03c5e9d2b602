"""The next trial's values: Optuna's TPE, made a pure function of the history so a tuning resumes exactly.

Why TPE (seeded) and not a grid: with 12–20 trials over 2–4 knobs a grid has 2–3 values per knob
(3^3 = 27 already exceeds the budget) and spends most trials where one bad knob spoils them; TPE
starts from random trials and then samples where good trials were, modelling the knobs jointly
(``multivariate``: the rate and the harmonics' L interact). Trial 0 is always the arm's own current
setting (when it lies in the space), so the tuned choice is never worse on the tuning objective
than what the arm ran with before, at the tuning budget.

Trials are proposed in batches of ``batch`` from the history of every earlier batch: trial ``n``
sees exactly the trials before ``batch · ⌊n / batch⌋``, whatever finished first, and its sampler is
seeded with ``(sampler_seed, n)``. The proposals are therefore a function of the declaration and the
earlier trials' results alone: a killed tuning that is run again proposes what it would have.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from clay_exp.encodings.base import Knob

#: Significant digits a proposed float keeps (trial folders and tuned files stay readable; the
#: value rounded is the value trained).
SIGNIFICANT_DIGITS = 3


@dataclass(frozen=True)
class Observation:
    """One finished trial: its values and its objective (None: the run diverged)."""

    trial: int
    params: dict[str, Any]
    value: float | None


def _distribution(knob: Knob) -> Any:
    from optuna import distributions as d

    if knob.scale == "choice":
        return d.CategoricalDistribution(tuple(range(len(knob.choices))))  # indices: any value works
    low, high = float(knob.low), float(knob.high)  # type: ignore[arg-type]
    if knob.integer:
        cls = d.IntLogUniformDistribution if knob.scale == "log" else d.IntUniformDistribution
        return cls(int(low), int(high))
    return (d.LogUniformDistribution if knob.scale == "log" else d.UniformDistribution)(low, high)


def _internal(knob: Knob, value: Any) -> Any:
    """A knob's value as Optuna sees it (a choice as its index)."""
    if knob.scale == "choice":
        return knob.choices.index(value)
    return int(value) if knob.integer else float(value)


def _external(knob: Knob, value: Any) -> Any:
    if knob.scale == "choice":
        return knob.choices[int(value)]
    if knob.integer:
        return int(value)
    return round_to_range(knob, float(value))


def round_to_range(knob: Knob, value: float) -> float:
    """`value` to `SIGNIFICANT_DIGITS` significant digits, kept inside the knob's range."""
    if value != 0 and math.isfinite(value):
        value = round(value, SIGNIFICANT_DIGITS - 1 - math.floor(math.log10(abs(value))))
    return min(max(value, float(knob.low)), float(knob.high))  # type: ignore[arg-type]


def batch_start(trial: int, batch: int) -> int:
    """The first trial of `trial`'s batch: the history it is proposed from ends just before it."""
    return batch * (trial // batch)


def propose(
    space: Mapping[str, Knob],
    history: Sequence[Observation],
    trial: int,
    *,
    batch: int,
    sampler_seed: int,
    startup_trials: int,
    defaults: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The values of trial `trial` (module docstring). `history` may hold later trials: only those
    before the trial's batch are used. Trial 0 takes `defaults` when every one lies in the space.
    A diverged trial (value None) counts as the worst value seen so far (so TPE learns to avoid it),
    or is left out while nothing has converged."""
    if not space:
        return {}
    if (
        trial == 0
        and defaults is not None
        and all(k in defaults and space[k].contains(defaults[k]) for k in space)
    ):
        return {k: _plain_value(space[k], defaults[k]) for k in space}
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    seen = [o for o in history if o.trial < batch_start(trial, batch)]
    finite = [o.value for o in seen if o.value is not None]
    worst = max(finite) if finite else None
    distributions = {name: _distribution(knob) for name, knob in space.items()}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # multivariate TPE is "experimental" in Optuna 2.x
        sampler = optuna.samplers.TPESampler(
            seed=(sampler_seed * 1_000_003 + trial) % 2**32,
            n_startup_trials=startup_trials,
            multivariate=True,
        )
        study = optuna.create_study(direction="minimize", sampler=sampler)
        for o in seen:
            value = o.value if o.value is not None else worst
            if value is None or set(o.params) != set(space):
                continue
            params = {k: _internal(space[k], o.params[k]) for k in space}
            study.add_trial(
                optuna.trial.create_trial(params=params, distributions=distributions, value=value)
            )
        asked = study.ask(fixed_distributions=distributions)
    return {k: _external(space[k], asked.params[k]) for k in space}


def _plain_value(knob: Knob, value: Any) -> Any:
    if knob.scale == "choice":
        return value
    return int(value) if knob.integer else float(value)
