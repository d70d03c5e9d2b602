"""Information floors: the ideal predictor's masked-patch loss without and with location.

A location encoding can only lower the MAE's loss by the information location carries that the
visible patches lack. These floors measure that information for a generated world, before training:

* ``none``: the masked patches predicted from the visible patches (and what every chip shares);
* ``location``: from the visible patches plus the true location information;
* on `HierarchicalWorld`, any subset of its levels (e.g. only the coarse ones known).

The estimators, each in its own module, all on the MAE's own patches, masks and norm-pix loss
(`clay_exp.models.patches`: a floor computed with another convention would be wrong):

* `clay_exp.design.gaussian_world` / `hierarchical_floors`: `hierarchical_world` is linear-Gaussian,
  with a closed form and Monte Carlo over the posterior;
* `clay_exp.design.linear_floors`: the other worlds' best linear predictor, fitted (an upper bound);
* `clay_exp.design.render_floors`: earth's bounds on the ``location`` floor from re-rendering places.

This module holds what they share: the `Floor` record, the `FloorReport` of a world, the Monte-Carlo
mean and standard error, and reading chips. Reading a config is `clay_exp.design.from_config`'s job:
nothing here imports Hydra.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import Tensor

#: Worlds whose floors have a closed form (linear-Gaussian).
CLOSED_FORM_WORLDS = ("HierarchicalWorld",)
#: Worlds with location features for the linear (Monte-Carlo) floors.
LINEAR_FEATURE_WORLDS = ("SyntheticWorld", "EarthWorld")


@dataclass
class Floor:
    """One floor; losses are means over masked values, ``*_se`` their Monte-Carlo standard errors."""

    name: str
    estimator: str
    known_levels: list[int] | None  # hierarchical world: the levels whose factors are given
    chips: int
    raw_closed: float | None  # closed form (hierarchical), averaged over the chips' masks
    raw_mc: float
    raw_mc_se: float
    loss_mc: float  # in the model's loss units (norm-pix if norm_pix_loss, else raw)
    loss_mc_se: float
    extra: dict[str, float] = field(default_factory=dict)


@dataclass
class FloorReport:
    """The floors of one world under one MAE setting (patch size, mask ratio, loss units)."""

    world: str
    patch_size: int
    mask_ratio: float
    norm_pix_loss: bool
    chip_shape: list[int]
    floors: list[Floor]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def estimators(report: FloorReport) -> str:
    """The distinct estimators of a report's floors, each after the floors it made ("`x`, `y`: a; `z`: b")."""
    named: dict[str, list[str]] = {}
    for f in report.floors:
        named.setdefault(f.estimator, []).append(f"`{f.name}`")
    if len(named) == 1:
        return next(iter(named))
    return "; ".join(f"{', '.join(names)}: {est}" for est, names in named.items())


def mean_se(values: Tensor) -> tuple[float, float]:
    """Mean and standard error of the mean of `values` (NaN standard error for a single value)."""
    v = values.double()
    se = v.std().item() / math.sqrt(len(v)) if len(v) > 1 else float("nan")
    return v.mean().item(), se


def world_chips(world: Any, start: int, count: int, batch: int = 256) -> dict[str, Tensor]:
    """Chips ``start .. start + count - 1`` of `world` as one dict of ``image``, ``lat``, ``lon``
    (read `batch` at a time)."""
    parts: dict[str, list[Tensor]] = {}
    for s in range(start, start + count, batch):
        out = world[list(range(s, min(s + batch, start + count)))]
        for k in ("image", "lat", "lon"):
            parts.setdefault(k, []).append(out[k])
    return {k: torch.cat(v) for k, v in parts.items()}
