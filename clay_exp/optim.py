"""The one optimizer builder: parameter groups with learning-rate scales -> an optimizer.

The training module, the probe and the benchmarks all build their optimizer here, so an encoding's
groups mean the same everywhere: a group's ``lr_scale`` multiplies the optimizer's base learning rate,
its other keys (``name``, ``weight_decay``, ...) go to the optimizer as they are, and the encoding
is handed the optimizer (`SpatialEncoding.attach_optimizer`) to hook its steps.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch

from clay_exp.encodings.base import SpatialEncoding


def build_optimizer(
    factory: Callable[..., torch.optim.Optimizer],
    groups: Sequence[Mapping[str, Any]],
    encoding: SpatialEncoding | None = None,
) -> torch.optim.Optimizer:
    """``factory(params=groups)`` with each group's learning rate times its ``lr_scale`` (default 1).

    `factory` is an optimizer class or a partial carrying the base rate (Hydra's ``_partial_``
    ``model.optimizer``, ``functools.partial(torch.optim.Adam, lr=...)``); empty groups are dropped.
    `encoding`, if given, gets ``attach_optimizer(optimizer)`` once the optimizer exists.
    """
    groups = [g for g in ({**g, "params": list(g["params"])} for g in groups) if g["params"]]
    scales = [g.get("lr_scale", 1.0) for g in groups]
    optimizer = factory(params=[{k: v for k, v in g.items() if k != "lr_scale"} for g in groups])
    for group, scale in zip(optimizer.param_groups, scales, strict=True):
        group["lr"] = group["lr"] * scale
    if encoding is not None:
        encoding.attach_optimizer(optimizer)
    return optimizer


class WarmupCosine:
    """The learning-rate factor at an optimizer step: linear warm-up over `warmup` steps, then a
    cosine from 1 down to `floor` at step `total`, held at `floor` after it.

    A callable object rather than a closure so that ``LambdaLR.state_dict`` stores `total`,
    `warmup` and `floor` in every checkpoint: a resumed run keeps the schedule it started with, also
    when ``resume=`` raises its budget (the steps past the original `total` then hold `floor`; see
    docs/reliability.md).
    """

    def __init__(self, total: int, warmup: int, floor: float) -> None:
        self.total, self.warmup, self.floor = int(total), int(warmup), float(floor)

    def __call__(self, step: int) -> float:
        if step < self.warmup:
            return (step + 1) / self.warmup
        progress = min(1.0, (step - self.warmup) / max(1, self.total - self.warmup))
        return self.floor + (1 - self.floor) * 0.5 * (1 + math.cos(math.pi * progress))
