"""One fit of the probe: an encoding plus the same small MLP head, trained on the points, scored.

A plain PyTorch loop, not Lightning: a fit is a few hundred full-batch steps of a tiny model, and
Lightning's per-fit setup would cost more than the fit, times (encodings × tasks × seeds).
"""

from __future__ import annotations

import functools
import math
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn
from torchmetrics.functional.classification import multiclass_accuracy, multiclass_f1_score

from clay_exp.encodings.base import SpatialEncoding
from clay_exp.encodings.layers import mlp
from clay_exp.optim import build_optimizer
from clay_exp.probe.tasks import PointSet, TaskData

#: Scores per test set, as ``<set>/<score>`` metric keys.
SCORES = ("acc", "balanced_acc", "macro_f1")
#: Largest number of points encoded in one call at evaluation (bounds memory for big encoders).
EVAL_CHUNK = 8192


@dataclass(frozen=True)
class FitSettings:
    """The head and the budget, the same for every encoding."""

    steps: int = 300
    lr: float = 1e-2
    hidden_dim: int = 64
    num_layers: int = 2
    batch_size: int | None = None  # None: full batch

    def __post_init__(self) -> None:
        counts = {"steps": self.steps, "hidden_dim": self.hidden_dim, "num_layers": self.num_layers}
        counts["batch_size"] = self.batch_size
        bad = [f"{k}={v!r}" for k, v in counts.items() if v is not None and (int(v) != v or v < 1)]
        if not (self.lr > 0 and math.isfinite(self.lr)):
            bad.append(f"lr={self.lr!r}")
        if bad:
            raise ValueError(
                f"bad probe setting(s) {', '.join(bad)}: steps, hidden_dim, num_layers and batch_size "
                "must be integers >= 1 (batch_size None: full batch), lr a positive number"
            )


class ProbeHead(nn.Module):
    """`num_layers` GELU layers of `hidden_dim` (encodings.layers.mlp), then a linear classifier.

    A zero-width input (``none``) leaves only the biases: the head can learn the class prior.
    """

    def __init__(self, in_dim: int, num_classes: int, hidden_dim: int = 64, num_layers: int = 2) -> None:
        super().__init__()
        with warnings.catch_warnings():
            # nn.init warns that initialising the (0, hidden) weight of a zero-width input is a no-op.
            warnings.filterwarnings("ignore", "Initializing zero-element tensors", UserWarning)
            self.body = mlp(in_dim, hidden_dim, num_layers)
        self.classifier = nn.Linear(hidden_dim, num_classes)

    def forward(self, features: Tensor) -> Tensor:
        return self.classifier(self.body(features))


def scores(logits: Tensor, labels: Tensor, num_classes: int) -> dict[str, float]:
    """Accuracy, balanced accuracy (macro recall) and macro-F1; classes absent from both count not."""
    preds = logits.argmax(dim=-1)
    return {
        "acc": float(multiclass_accuracy(preds, labels, num_classes, average="micro")),
        "balanced_acc": float(multiclass_accuracy(preds, labels, num_classes, average="macro")),
        "macro_f1": float(multiclass_f1_score(preds, labels, num_classes, average="macro")),
    }


@dataclass
class ProbeFit:
    """What one fit gives the report."""

    metrics: dict[str, float]
    step_time_s: float
    params: int
    params_trainable: int
    train_loss: list[float] = field(default_factory=list)


def _encode(encoding: SpatialEncoding, points: PointSet) -> Tensor:
    """The encoding of every point, in chunks, without gradients."""
    with torch.no_grad():
        parts = [
            encoding({"lat": points.lat[i : i + EVAL_CHUNK], "lon": points.lon[i : i + EVAL_CHUNK]})
            for i in range(0, len(points), EVAL_CHUNK)
        ]
    return torch.cat(parts).float()


def fit_probe(
    make_encoding: Callable[[], SpatialEncoding], data: TaskData, seed: int, fit: FitSettings = FitSettings()
) -> ProbeFit:
    """Fit encoding + head on `data.train` with Adam (seeded init and batches), score the test sets."""
    torch.manual_seed(seed)
    encoding = make_encoding()
    head = ProbeHead(encoding.out_dim, len(data.classes), fit.hidden_dim, fit.num_layers)
    trainable = [p for p in encoding.parameters() if p.requires_grad]
    # The encoding's own groups keep their learning-rate scales (e.g. hierarchical's per-level rates).
    groups = [{"name": "head", "params": list(head.parameters())}, *encoding.param_groups()]
    optimizer = build_optimizer(functools.partial(torch.optim.Adam, lr=fit.lr), groups, encoding)

    train, n = data.train, len(data.train)
    batch = n if fit.batch_size is None else min(fit.batch_size, n)
    order = torch.Generator().manual_seed(seed)
    start = time.perf_counter()
    # Nothing to learn in the encoding: its features are fixed, so compute them once.
    features = None if trainable else _encode(encoding.eval(), train)
    encoding.train(bool(trainable))
    head.train()
    losses = []
    for _ in range(fit.steps):
        idx = slice(None) if batch == n else torch.randint(n, (batch,), generator=order)
        if features is None:
            x = encoding({"lat": train.lat[idx], "lon": train.lon[idx]}).float()
        else:
            x = features[idx]
        loss = nn.functional.cross_entropy(head(x), train.labels[idx])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    step_time = (time.perf_counter() - start) / fit.steps

    encoding.eval()
    head.eval()
    metrics = {}
    for name, points in {**data.tests, "train": train}.items():
        with torch.no_grad():
            logits = head(_encode(encoding, points))
        metrics |= {f"{name}/{k}": v for k, v in scores(logits, points.labels, len(data.classes)).items()}
    metrics["train/loss"] = losses[-1]
    return ProbeFit(
        metrics,
        step_time,
        sum(p.numel() for p in encoding.parameters()),
        sum(p.numel() for p in trainable),
        losses,
    )
