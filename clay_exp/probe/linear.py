"""Closed-form linear probes on fixed features: ridge regression and the ridge classifier.

The same for every run (the same budget): features standardised on the training rows, an
unpenalised intercept, the ridge penalty λ·n·|W|² (so λ does not depend on the number of rows)
chosen from `RIDGE_GRID` by `FOLDS`-fold cross-validation on the training rows only (never on the
rows it is scored on), then refitted on all of them. One eigendecomposition of the features'
covariance per fold gives every λ of the grid at once. A classifier is ridge regression on one-hot
targets, predicting the largest output (Rifkin & Klautau's regularised least-squares classifier):
the same solver, no iterations, no learning rate to tune.

Scores: ``r2`` = 1 − Σ SSE / Σ SST over the outputs (SST about the scored rows' own mean; 1 is exact,
0 is the mean's skill), ``acc`` = accuracy.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

#: λ (per row) tried by the cross-validation, the same for every probe.
RIDGE_GRID = tuple(10.0**k for k in range(-6, 4))
#: Folds of the cross-validation.
FOLDS = 5


@dataclass
class LinearProbe:
    """A fitted probe: ``predict(x) = ((x − mean) / scale) @ weight + bias``."""

    mean: Tensor
    scale: Tensor
    weight: Tensor  # (D, K)
    bias: Tensor  # (K,)
    lam: float
    num_classes: int | None  # None: regression

    def outputs(self, features: Tensor) -> Tensor:
        return ((features.double() - self.mean) / self.scale) @ self.weight + self.bias

    def predict(self, features: Tensor) -> Tensor:
        """Regression: the values ``(N, K)``; classification: the class ids ``(N,)``."""
        out = self.outputs(features)
        return out if self.num_classes is None else out.argmax(dim=1)

    def score(self, features: Tensor, labels: Tensor) -> float:
        """``acc`` for a classifier, ``r2`` for a regression."""
        if self.num_classes is not None:
            return accuracy(self.predict(features), labels)
        return r2(self.predict(features), labels)


def r2(pred: Tensor, target: Tensor) -> float:
    """1 − Σ SSE / Σ SST over all outputs (SST about the target's column means)."""
    y = _matrix(target)
    sse = ((_matrix(pred) - y) ** 2).sum()
    sst = ((y - y.mean(dim=0)) ** 2).sum()
    return float(1.0 - sse / sst) if sst > 0 else float("nan")


def accuracy(pred: Tensor, labels: Tensor) -> float:
    return float((pred == labels).double().mean())


def _matrix(y: Tensor) -> Tensor:
    y = y.double()
    return y[:, None] if y.dim() == 1 else y


def _targets(labels: Tensor, num_classes: int | None) -> Tensor:
    if num_classes is None:
        return _matrix(labels)
    return torch.nn.functional.one_hot(labels.long(), num_classes).double()


def _solutions(x: Tensor, y: Tensor, grid: tuple[float, ...]) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Standardisation and the ridge weights ``(len(grid), D, K)`` and biases of centred data."""
    mean = x.mean(dim=0)
    scale = x.std(dim=0, unbiased=False)
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))  # a constant feature carries nothing
    z = (x - mean) / scale
    y_mean = y.mean(dim=0)
    n = len(x)
    evals, evecs = torch.linalg.eigh(z.T @ z / n)
    proj = evecs.T @ (z.T @ (y - y_mean) / n)  # (D, K) in the eigenbasis
    lam = torch.tensor(grid, dtype=torch.float64)
    weights = torch.einsum("de,ld,dk->lek", evecs.T, 1.0 / (evals.clamp_min(0)[None, :] + lam[:, None]), proj)
    return mean, scale, weights, y_mean


def fit_linear_probe(
    features: Tensor,
    labels: Tensor,
    num_classes: int | None = None,
    grid: tuple[float, ...] = RIDGE_GRID,
    folds: int = FOLDS,
    seed: int = 0,
) -> LinearProbe:
    """Fit on `features` ``(N, D)`` and `labels` (``(N,)`` class ids for a classifier with
    `num_classes`, else ``(N,)`` or ``(N, K)`` values); λ by `folds`-fold cross-validation over
    `grid` (ties: the larger λ), then refitted on every row."""
    x = features.detach().double().cpu()
    if x.dim() != 2 or len(x) != len(labels) or len(x) < folds or folds < 2:
        raise ValueError(
            f"need features (N, D) and N labels with N >= folds >= 2, got features {tuple(x.shape)}, "
            f"{len(labels)} labels, folds={folds}"
        )
    if not grid or min(grid) <= 0:
        raise ValueError(f"the ridge grid must hold positive values, got {grid}")
    labels = labels.detach().cpu()
    y = _targets(labels, num_classes)
    fold = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed)) % folds
    losses = torch.zeros(len(grid), dtype=torch.float64)
    for k in range(folds):
        held = fold == k
        mean, scale, weights, y_mean = _solutions(x[~held], y[~held], grid)
        out = torch.einsum("nd,ldk->lnk", (x[held] - mean) / scale, weights) + y_mean
        if num_classes is None:
            losses += ((out - y[held]) ** 2).sum(dim=(1, 2))
        else:  # errors, then the squared error to break ties between equally accurate λ
            wrong = (out.argmax(dim=2) != labels[held]).double().sum(dim=1)
            losses += wrong + ((out - y[held]) ** 2).sum(dim=(1, 2)) / (y.numel() + 1)
    # the smallest loss; among equals the largest λ (the simpler probe)
    best = max(range(len(grid)), key=lambda i: (-float(losses[i]), grid[i]))
    mean, scale, weights, y_mean = _solutions(x, y, (grid[best],))
    return LinearProbe(mean, scale, weights[0], y_mean, grid[best], num_classes)
