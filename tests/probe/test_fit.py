"""One fit: the head, the scores, an encoding that learns and one that cannot see location."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from clay_exp.probe import FitSettings, build_encoding, fit_probe, scores

SHORT = FitSettings(steps=60, lr=3e-2, hidden_dim=32)


def make(name: str, seed: int = 0):
    return lambda: build_encoding(name, seed)


def test_scores_match_hand_computation():
    labels = torch.tensor([0, 0, 0, 1, 1, 2])
    preds = torch.tensor([0, 0, 1, 1, 0, 0])
    logits = torch.nn.functional.one_hot(preds, 4).float()  # class 3: absent from both, not averaged
    s = scores(logits, labels, 4)
    recall = [2 / 3, 1 / 2, 0.0]
    precision = [2 / 4, 1 / 2, 0.0]
    f1 = [2 * p * r / (p + r) if p + r else 0.0 for p, r in zip(precision, recall, strict=True)]
    assert s["acc"] == pytest.approx(3 / 6)
    assert s["balanced_acc"] == pytest.approx(np.mean(recall))
    assert s["macro_f1"] == pytest.approx(np.mean(f1))


def test_learnable_encoding_beats_majority_and_none_equals_it(land_data):
    majority = land_data.majority_rates()
    none = fit_probe(make("none"), land_data, seed=0, fit=SHORT)
    for name, rate in majority.items():
        assert none.metrics[f"{name}/acc"] == pytest.approx(rate, abs=1e-6)  # it cannot see location
        assert none.metrics[f"{name}/balanced_acc"] == pytest.approx(0.5, abs=1e-6)
    xyz = fit_probe(make("xyz"), land_data, seed=0, fit=SHORT)
    assert xyz.metrics["test/acc"] > majority["test"] + 0.05
    assert xyz.metrics["test/balanced_acc"] > 0.6
    assert xyz.train_loss[-1] < 0.7 * xyz.train_loss[0]
    assert xyz.params_trainable == xyz.params > 0 and none.params == 0


def test_encoding_parameters_train_with_the_head(land_data):
    torch.manual_seed(0)
    before = [p.detach().clone() for p in build_encoding("xyz", 0).parameters()]
    trained = []

    def build():
        encoding = make("xyz")()
        trained.append(encoding)
        return encoding

    fit_probe(build, land_data, seed=0, fit=FitSettings(steps=5))
    after = list(trained[0].parameters())
    assert not any(torch.equal(a, b) for a, b in zip(before, after, strict=True))
    # The same seed gives the same fit: runs pair up by seed.
    again = fit_probe(make("xyz"), land_data, seed=0, fit=FitSettings(steps=5))
    first = fit_probe(make("xyz"), land_data, seed=0, fit=FitSettings(steps=5))
    assert again.metrics == first.metrics


def test_bad_fit_settings_are_refused_early():
    with pytest.raises(ValueError, match=r"steps=0.*lr=-1"):
        FitSettings(steps=0, lr=-1)
