"""Floors of `hierarchical_world`: every subset of its levels known, and a ``none`` that has
memorised a coarse level's few tile vectors (the maths: `clay_exp.design.gaussian_world`)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from clay_exp.data.worlds.hierarchical import HierarchicalWorld
from clay_exp.design.coverage import row_area_shares
from clay_exp.design.floors import Floor, mean_se
from clay_exp.design.gaussian_world import LinearGaussianWorld
from clay_exp.models.patches import patchify, random_masks


def level_subsets(levels: Sequence[int]) -> list[tuple[str, list[int]]]:
    """Named sets of known levels: none, each level alone, each coarse prefix, all (location).

    Zoom-0 levels are known in every set (see `LinearGaussianWorld.always_known`), so not listed.
    """
    varying = [z for z in levels if z != 0]
    subsets: list[tuple[str, list[int]]] = [("none", [])]
    if len(varying) > 1:
        subsets += [(f"z{z} only", [z]) for z in varying]
        subsets += [(f"z<={varying[i]}", varying[: i + 1]) for i in range(1, len(varying) - 1)]
    subsets.append(("location", varying))
    return subsets


def hierarchical_floors(
    world: HierarchicalWorld,
    patch_size: int,
    mask_ratio: float,
    norm_pix_loss: bool = True,
    chips: int = 1024,
    draws: int = 16,
    seed: int = 0,
    subsets: Sequence[tuple[str, Sequence[int]]] | None = None,
    batch: int = 64,
) -> list[Floor]:
    """Floors of a hierarchical world on its first `chips` chips (each with its own random mask)."""
    model = LinearGaussianWorld(world, patch_size)
    if chips > len(world):
        raise ValueError(f"chips={chips} exceeds the world's length {len(world)}")
    g = torch.Generator().manual_seed(seed)
    masks = random_masks(chips, model.num_patches, mask_ratio, g)
    subsets = list(subsets) if subsets is not None else level_subsets(model.levels)
    parts: dict[str, dict[str, list[Tensor]]] = {name: {} for name, _ in subsets}
    closed = {name: model.closed_form_raw(known, masks) for name, known in subsets}
    for start in range(0, chips, batch):
        ids = list(range(start, min(start + batch, chips)))
        chip_batch = world[ids]
        for name, known in subsets:
            out = model.monte_carlo(chip_batch["image"], chip_batch["latents"], known, masks[ids], draws, g)
            for key, value in out.items():
                parts[name].setdefault(key, []).append(value)
    floors = []
    key = "normpix" if norm_pix_loss else "raw"
    reference = torch.cat(parts[subsets[0][0]][key])  # the first subset (none): gaps are paired on chips
    for name, known in subsets:
        per_chip = {k: torch.cat(v) for k, v in parts[name].items()}
        gap, gap_se = mean_se(reference - per_chip[key])
        raw, raw_se = mean_se(per_chip["raw"])
        loss, loss_se = mean_se(per_chip["normpix"]) if norm_pix_loss else (raw, raw_se)
        diff, diff_se = mean_se(per_chip["raw"] - closed[name])
        sur, sur_se = mean_se(per_chip["normpix_surrogate"])
        floors.append(
            Floor(
                name=name,
                estimator="linear-Gaussian posterior (closed form raw; MC norm-pix)",
                known_levels=sorted({*model.always_known(), *known}),
                chips=chips,
                raw_closed=closed[name].mean().item(),
                raw_mc=raw,
                raw_mc_se=raw_se,
                loss_mc=loss,
                loss_mc_se=loss_se,
                extra={
                    "gap_from_first": gap,  # loss of the first subset (none) minus this one, same chips
                    "gap_from_first_se": gap_se,
                    "raw_mc_minus_closed": diff,
                    "raw_mc_minus_closed_se": diff_se,
                    "normpix_surrogate": sur,
                    "normpix_surrogate_se": sur_se,
                },
            )
        )
    return floors


def memorised_level_floor(
    world: HierarchicalWorld,
    patch_size: int,
    mask_ratio: float,
    level: int,
    chips: int = 512,
    seed: int = 0,
    max_tiles: int = 4096,
) -> dict[str, float]:
    """Raw-pixel loss of a *none* predictor that has memorised the world's factor vectors at `level`.

    The Gaussian floors treat each tile's factors as fresh draws; but a level with few tiles (z2: 16
    vectors) is a fixed finite set a model without location can learn, then recognise from the
    visible pixels. This is the Bayes predictor for that: a mixture over the level's tiles (prior:
    their share of the sphere), the other unknown levels Gaussian as before, zoom-0 levels known.
    Returns the mean raw MSE over `chips` real chips with its standard error, and the mean posterior
    weight on each chip's true tile (how well the visible pixels identify the tile).
    """
    model = LinearGaussianWorld(world, patch_size)
    if level == 0 or level not in model.levels:
        raise ValueError(f"level={level} must be a non-zero level of the world ({model.levels})")
    n = 2**level
    if n * n > max_tiles:
        raise ValueError(f"level z{level} has {n * n} tiles (> max_tiles={max_tiles}): too many to enumerate")
    tx, ty = torch.meshgrid(torch.arange(n), torch.arange(n), indexing="ij")
    tx, ty = tx.flatten(), ty.flatten()
    lon = 360.0 * (tx.double() + 0.5) / n - 180.0
    lat = torch.rad2deg(torch.atan(torch.sinh(math.pi * (1 - 2 * (ty.double() + 0.5) / n))))
    cand = world.tile_factors(lat, lon)[:, model.levels.index(level)].double()  # (T, d)
    log_prior = torch.log(row_area_shares(level)[ty] * n)
    known_cols, unknown = model.split_columns([])
    lev_cols = model.columns([level])
    rest = torch.tensor([c for c in unknown.tolist() if c not in set(lev_cols.tolist())], dtype=torch.int64)
    masks = random_masks(chips, model.num_patches, mask_ratio, torch.Generator().manual_seed(seed))
    batch = world[list(range(chips))]
    x = patchify(batch["image"].double(), patch_size)
    f = batch["latents"].double()
    a, vn = model.design, model.noise_var
    errors, on_true = [], []
    for i in range(chips):
        vis, msk = ~masks[i], masks[i]
        r = x[i] - torch.einsum("pdk,k->pd", a[:, :, known_cols], f[i, known_cols])
        av_l, am_l = a[vis][:, :, lev_cols].flatten(0, 1), a[msk][:, :, lev_cols].flatten(0, 1)
        av_r, am_r = a[vis][:, :, rest].flatten(0, 1), a[msk][:, :, rest].flatten(0, 1)
        cov = vn * torch.eye(len(av_l), dtype=torch.float64) + av_r @ av_r.T
        chol = torch.linalg.cholesky(cov + 1e-10 * torch.eye(len(cov), dtype=torch.float64))
        res = r[vis].flatten()[None, :] - cand @ av_l.T  # (T, P_v)
        sol = torch.cholesky_solve(res.T, chol)  # (P_v, T)
        weights = torch.softmax(-0.5 * (res.T * sol).sum(0) + log_prior, dim=0)
        pred = weights @ (cand @ am_l.T + (av_r.T @ sol).T @ am_r.T)  # mixture of posterior means
        errors.append(((r[msk].flatten() - pred) ** 2).mean())
        true_tile = (cand - f[i, lev_cols]).norm(dim=1).argmin()
        on_true.append(weights[true_tile])
    mean, se = mean_se(torch.stack(errors))
    return {"raw": mean, "raw_se": se, "posterior_on_true_tile": torch.stack(on_true).mean().item()}
