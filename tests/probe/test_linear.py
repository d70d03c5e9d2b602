"""The closed-form linear probe: a planted linear label is recovered exactly, a separable class
label perfectly, noise not at all; λ is chosen by cross-validation on the training rows only."""

from __future__ import annotations

import pytest
import torch

from clay_exp.probe.linear import RIDGE_GRID, accuracy, fit_linear_probe, r2

G = torch.Generator().manual_seed(0)
X = torch.randn(300, 12, generator=G) * torch.linspace(0.1, 5.0, 12)  # features of unequal scales
A = torch.randn(12, 3, generator=G)


def test_a_planted_linear_label_is_recovered_exactly():
    y = X @ A + torch.tensor([0.5, -2.0, 3.0])
    probe = fit_linear_probe(X[:200], y[:200])
    assert probe.lam == min(RIDGE_GRID)  # no noise: the least penalty wins the cross-validation
    assert probe.score(X[200:], y[200:]) > 1 - 1e-9
    torch.testing.assert_close(probe.predict(X[200:]), y[200:].double(), atol=1e-4, rtol=0)
    # one output: the same (a (N,) label is a one-column one)
    single = fit_linear_probe(X[:200], y[:200, 0])
    assert single.score(X[200:], y[200:, 0]) > 1 - 1e-9


def test_separable_classes_are_recovered_and_noise_is_not():
    score = X @ A[:, 0]
    keep = score.abs() > 0.5 * score.std()  # two classes on either side of a plane, with a margin
    x, labels = X[keep], (score[keep] > 0).long()
    probe = fit_linear_probe(x[:150], labels[:150], num_classes=2)
    assert probe.predict(x[150:]).shape == (len(x) - 150,)
    assert probe.score(x[150:], labels[150:]) == 1.0
    noise = torch.randn(300, generator=torch.Generator().manual_seed(9))
    fitted = fit_linear_probe(X[:200], noise[:200])
    assert fitted.lam > min(RIDGE_GRID)  # nothing to learn: cross-validation shrinks
    assert fitted.score(X[200:], noise[200:]) < 0.05


def test_scores_by_hand():
    assert r2(torch.tensor([1.0, 2.0, 3.0]), torch.tensor([1.0, 2.0, 3.0])) == 1.0
    assert r2(torch.full((3,), 2.0), torch.tensor([1.0, 2.0, 3.0])) == 0.0  # the mean's skill
    assert accuracy(torch.tensor([0, 1, 2, 2]), torch.tensor([0, 1, 1, 2])) == 0.75


def test_bad_input_is_refused_early():
    with pytest.raises(ValueError, match=r"N >= folds >= 2, got features \(3, 12\), 3 labels, folds=5"):
        fit_linear_probe(X[:3], X[:3, 0])
    with pytest.raises(ValueError, match=r"ridge grid must hold positive values"):
        fit_linear_probe(X, X[:, 0], grid=(0.0, 1.0))
