"""Monte-Carlo bounds on the location floor of a world that renders chips (`EarthWorld`).

The earth world draws a chip from its location (class map, regional fields: deterministic) and its
id (texture phase and pixel noise: random), so the ideal predictor's loss can be bounded from both
sides by rendering the same place again:

* **phase unknown** (an upper bound on the ``location`` floor): predict the masked patches by the
  mean of ``replicas`` renders at the same place with other ids (other phase, other noise). It
  ignores the visible patches, so the ideal predictor that also reads them does at least as well.
* **phase known** (a lower bound): the chip's own noiseless render plus fresh noise, averaged.
  Given place and phase the visible pixels add nothing about the masked ones (the noise is
  i.i.d.), so no predictor from place and visible pixels beats it; it is also a lower bound on the
  ``none`` floor, which knows less.

The K-replica mean predicts with the extra variance V/K of its own noise: the error is scaled by
K/(K+1), unbiased for the conditional variance V (target and replicas are i.i.d. given what is known).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from clay_exp.design.floors import Floor, mean_se, world_chips
from clay_exp.models.patches import normalise_patches, patchify, random_masks

#: Far above any dataset index, so replica ids never coincide with a real chip's.
_REPLICA_ID_OFFSET = 1 << 40


def rendered_location_floors(
    world: Any,
    patch_size: int,
    mask_ratio: float,
    norm_pix_loss: bool = True,
    chips: int = 512,
    replicas: int = 16,
    seed: int = 0,
) -> list[Floor]:
    """The two bounds (module docstring) on `chips` chips of `world`, one random mask each."""
    if not hasattr(world, "render") or not hasattr(world, "noise_std"):
        raise ValueError(f"{type(world).__name__} does not render chips from (lat, lon, ids)")
    if replicas < 2:
        raise ValueError(f"replicas={replicas} must be >= 2")
    data = world_chips(world, 0, chips)
    lat, lon = data["lat"], data["lon"]
    noise = torch.Generator().manual_seed(seed + 1)

    def both(images: Tensor) -> tuple[Tensor, Tensor]:
        raw = patchify(images.double(), patch_size)
        return raw, normalise_patches(raw)

    targets = both(data["image"])  # raw and norm-pix patches, (B, L, D) each
    masks = random_masks(chips, targets[0].shape[1], mask_ratio, torch.Generator().manual_seed(seed))

    own_ids = torch.arange(chips) + getattr(world, "offset", 0)  # the ids the chips were drawn with
    noiseless = world.render(lat, lon, own_ids, noise_std=0.0)
    sums = {key: [torch.zeros_like(t) for t in targets] for key in ("unknown", "known")}
    for r in range(replicas):
        ids = _REPLICA_ID_OFFSET + r * chips + torch.arange(chips)
        renders = {
            "unknown": world.render(lat, lon, ids),
            "known": noiseless + world.noise_std * torch.randn(noiseless.shape, generator=noise),
        }
        for key, images in renders.items():
            for total, part in zip(sums[key], both(images), strict=True):
                total += part
    scale = replicas / (replicas + 1)
    floors = []
    for key, label, bound in (
        ("unknown", "location, phase unknown", "an upper bound on the location floor"),
        ("known", "location, phase known", "a lower bound on the location (and none) floor"),
    ):
        errors = []
        for target, total in zip(targets, sums[key], strict=True):
            sq = (target - total / replicas) ** 2  # (B, L, D)
            per_chip = (sq.mean(-1) * masks).sum(1) / masks.sum(1) * scale
            errors.append(per_chip)
        raw, raw_se = mean_se(errors[0])
        loss, loss_se = mean_se(errors[1] if norm_pix_loss else errors[0])
        floors.append(
            Floor(
                name=label,
                estimator=f"mean of {replicas} renders at the chip's place ({bound}; Monte Carlo)",
                known_levels=None,
                chips=chips,
                raw_closed=None,
                raw_mc=raw,
                raw_mc_se=raw_se,
                loss_mc=loss,
                loss_mc_se=loss_se,
                extra={"replicas": float(replicas)},
            )
        )
    return floors
