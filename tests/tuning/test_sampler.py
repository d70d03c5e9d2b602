"""Trial values: the arm's own setting first, then TPE, a pure function of the earlier batches."""

from __future__ import annotations

import math

from clay_exp.encodings.base import Knob
from clay_exp.tuning.sampler import Observation, propose, round_to_range

SPACE = {
    "model.optimizer.lr": Knob(1e-4, 1e-2),
    "encoding.degrees": Knob(5, 30, "linear", integer=True),
    "encoding.head": Knob.choice("mlp", "siren"),
}
DEFAULTS = {"model.optimizer.lr": 1.5e-3, "encoding.degrees": 10, "encoding.head": "siren"}


def ask(trial: int, history=(), **kw):
    return propose(
        SPACE, list(history), trial, batch=2, sampler_seed=0, startup_trials=2, defaults=DEFAULTS, **kw
    )


def fake_objective(p) -> float:
    return (math.log10(p["model.optimizer.lr"]) + 2.5) ** 2 + (p["encoding.degrees"] - 12) ** 2 / 100


def test_trial_zero_is_the_arms_own_setting_unless_it_lies_outside_the_space():
    assert ask(0) == DEFAULTS
    outside = propose(
        SPACE, [], 0, batch=2, sampler_seed=0, startup_trials=2, defaults={**DEFAULTS, "encoding.degrees": 40}
    )
    assert outside != {**DEFAULTS, "encoding.degrees": 40} and SPACE["encoding.degrees"].contains(
        outside["encoding.degrees"]
    )


def test_proposals_lie_in_the_space_and_repeat_exactly():
    history = []
    for trial in range(8):
        params = ask(trial, history)
        assert params == ask(trial, history)  # a rerun proposes the same values
        assert all(SPACE[k].contains(v) for k, v in params.items()), params
        assert isinstance(params["encoding.degrees"], int)
        history.append(Observation(trial, params, fake_objective(params)))
    assert len({tuple(sorted(o.params.items())) for o in history}) == 8  # no trial repeats another


def test_a_trial_sees_only_the_batches_before_its_own():
    history = [Observation(t, ask(t), 1.0 + t) for t in range(2)]
    late = Observation(2, ask(2, history), 0.1)  # trial 2 of the batch (2, 3)
    assert ask(3, history) == ask(3, [*history, late])  # whatever finished first
    assert ask(4, [*history, late]) != ask(4, history)  # the next batch does see it


def test_a_diverged_trial_counts_as_the_worst_seen():
    base = [Observation(0, ask(0), 0.5), Observation(1, ask(1), 0.7)]
    diverged = Observation(2, {**DEFAULTS, "model.optimizer.lr": 9e-3}, None)
    assert SPACE["model.optimizer.lr"].contains(ask(4, [*base, diverged])["model.optimizer.lr"])
    only = [Observation(0, DEFAULTS, None), Observation(1, ask(1), None)]
    assert ask(2, only)  # nothing converged yet: the divergences are left out, still a proposal


def test_floats_keep_three_significant_digits_inside_their_range():
    knob = Knob(1e-4, 1e-2)
    assert round_to_range(knob, 0.000682407) == 0.000682
    assert round_to_range(knob, 0.0099999) == 0.01 and round_to_range(knob, 0.00009999) == 1e-4
