"""Floors of the other worlds (`synthetic`, `earth`): the best linear predictor, fitted.

**Other worlds (`synthetic`, `earth`): best linear predictor.** Means and covariances of raw pixels,
normalised pixels and optional location features (the world's true per-chip fields: `location_features`)
are estimated on ``fit_chips`` chips; the masked (raw and normalised) values of *other* chips are
predicted by the fitted linear conditional. A fixed predictor evaluated on fresh chips is an unbiased
estimate of its own loss, hence an **upper bound** of the ideal loss; estimation error (≈ inputs /
fit_chips) inflates it, more for the location floor (more inputs).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from clay_exp.data.worlds.earth import EarthWorld
from clay_exp.data.worlds.hierarchical import HierarchicalWorld
from clay_exp.data.worlds.synthetic import SyntheticWorld
from clay_exp.design.floors import CLOSED_FORM_WORLDS, LINEAR_FEATURE_WORLDS, Floor, mean_se, world_chips
from clay_exp.geometry import lonlat_to_unit
from clay_exp.models.patches import normalise_patches, patchify, random_masks


def location_features(world: Any, lat: Tensor, lon: Tensor) -> Tensor:
    """The world's true per-chip location information as features (B, F), for the linear floors.

    synthetic: the cover fields on the chip's footprint grid and the chip-level texture field;
    earth: the class fractions of the chip's real class map, its centre zone (one-hot) and the
    regional fields. hierarchical: the true factors (what ``encoding=oracle`` reads).
    """
    if isinstance(world, SyntheticWorld):
        covers = world.cover_field(world.footprint_points(lat, lon)).flatten(1)
        return torch.cat([covers, world.chip_field(lonlat_to_unit(lat, lon).float())], dim=1)
    if isinstance(world, EarthWorld):
        classes = world.class_map(lat, lon)
        k = len(world.zone_names)
        fractions = torch.nn.functional.one_hot(classes.flatten(1), k).float().mean(1)
        centre = torch.nn.functional.one_hot(classes[:, world.map_grid // 2, world.map_grid // 2], k).float()
        regional = world.regional_field(lonlat_to_unit(lat, lon).float())
        return torch.cat([fractions, centre, regional], dim=1)
    if isinstance(world, HierarchicalWorld):
        return world.tile_factors(lat, lon).flatten(1)
    raise ValueError(
        f"no location features for {type(world).__name__}; worlds with features: "
        f"{[*LINEAR_FEATURE_WORLDS, *CLOSED_FORM_WORLDS]}"
    )


def linear_floors(
    world: Any,
    patch_size: int,
    mask_ratio: float,
    norm_pix_loss: bool = True,
    fit_chips: int = 4096,
    eval_chips: int = 512,
    masks_count: int = 64,
    seed: int = 0,
    features: Callable[[Any, Tensor, Tensor], Tensor] | None = location_features,
    ridge: float = 1e-4,
) -> list[Floor]:
    """Best-linear-predictor floors (upper bounds, module docstring): ``none`` and, with `features`,
    ``location``. `world` needs ``fit_chips + eval_chips`` chips; the first are fitted, the rest
    evaluated, in groups sharing one of `masks_count` random masks (one solve per mask); the
    standard error treats the masks as clusters.
    """
    if fit_chips + eval_chips > len(world):
        raise ValueError(f"fit_chips + eval_chips = {fit_chips + eval_chips} exceeds the world's length")
    if eval_chips < 2 * masks_count:
        raise ValueError(
            f"eval_chips={eval_chips} needs at least 2 chips per mask (masks_count={masks_count})"
        )
    fit, ev = world_chips(world, 0, fit_chips), world_chips(world, fit_chips, eval_chips)
    xf = patchify(fit["image"].double(), patch_size)
    xe = patchify(ev["image"].double(), patch_size)
    lp, dim = xf.shape[1], xf.shape[2]
    if features is not None:
        phi_f = features(world, fit["lat"], fit["lon"]).double()
        phi_e = features(world, ev["lat"], ev["lon"]).double()
    else:
        phi_f, phi_e = xf.new_zeros(fit_chips, 0), xe.new_zeros(eval_chips, 0)
    # Joint moments of [raw pixels, normalised pixels, features], once for both floors (only the
    # blocks a prediction needs); the products in float32 (centred data: ample), the solves in float64.
    raw_f, nrm_f = xf.flatten(1), normalise_patches(xf).flatten(1)
    mean_x, mean_n, mean_phi = raw_f.mean(0), nrm_f.mean(0), phi_f.mean(0)
    inputs = torch.cat([raw_f - mean_x, phi_f - mean_phi], dim=1).float()
    denom = fit_chips - 1
    c_in_in = (inputs.T @ inputs).double() / denom  # (P + F, P + F)
    c_x_in = (inputs[:, : lp * dim].T @ inputs).double() / denom
    c_n_in = ((nrm_f - mean_n).float().T @ inputs).double() / denom
    del inputs
    nrm_e, raw_e = normalise_patches(xe).flatten(1), xe.flatten(1)
    e_all = torch.cat([raw_e - mean_x, phi_e - mean_phi], dim=1)
    g = torch.Generator().manual_seed(seed)
    masks = random_masks(masks_count, lp, mask_ratio, g)
    group = torch.arange(eval_chips) % masks_count
    pix_patch = torch.arange(lp * dim) // dim
    specs = [("none", 0)] + ([("location", phi_f.shape[1])] if phi_f.shape[1] else [])
    errors: dict[str, tuple[Tensor, Tensor]] = {}
    for name, n_features in specs:
        raw_err = torch.zeros(eval_chips, dtype=torch.float64)
        nrm_err = torch.zeros(eval_chips, dtype=torch.float64)
        for k in range(masks_count):
            masked_pix = masks[k][pix_patch]
            inp = torch.cat([torch.nonzero(~masked_pix).flatten(), lp * dim + torch.arange(n_features)])
            tgt = torch.nonzero(masked_pix).flatten()
            sub = c_in_in[inp][:, inp]
            sub = sub + ridge * sub.diagonal().mean() * torch.eye(len(inp), dtype=torch.float64)
            chol = torch.linalg.cholesky(sub)
            rows = group == k
            a = torch.cholesky_solve(e_all[rows][:, inp].T, chol)  # (inputs, chips)
            pred_x = mean_x[tgt][:, None] + c_x_in[tgt][:, inp] @ a
            pred_n = mean_n[tgt][:, None] + c_n_in[tgt][:, inp] @ a
            raw_err[rows] = ((raw_e[rows][:, tgt].T - pred_x) ** 2).mean(0)
            nrm_err[rows] = ((nrm_e[rows][:, tgt].T - pred_n) ** 2).mean(0)
        errors[name] = (raw_err, nrm_err)

    def clustermean_se(per_chip: Tensor) -> tuple[float, float]:
        # Chips sharing a mask are not independent draws of masks: the masks are the clusters.
        return mean_se(torch.stack([per_chip[group == k].mean() for k in range(masks_count)]))

    floors = []
    for name, n_features in specs:
        raw_err, nrm_err = errors[name]
        loss_err = nrm_err if norm_pix_loss else raw_err
        raw, raw_se = clustermean_se(raw_err)
        loss, loss_se = clustermean_se(loss_err)
        gap, gap_se = clustermean_se(errors["none"][1 if norm_pix_loss else 0] - loss_err)
        n_inputs = lp * dim - int(masks[0].sum()) * dim + n_features
        floors.append(
            Floor(
                name=name,
                estimator=(
                    f"best linear predictor fitted on {fit_chips} chips, "
                    f"{'visible pixels + location features' if n_features else 'visible pixels'} "
                    f"({n_inputs} inputs): an upper bound"
                ),
                known_levels=None,
                chips=eval_chips,
                raw_closed=None,
                raw_mc=raw,
                raw_mc_se=raw_se,
                loss_mc=loss,
                loss_mc_se=loss_se,
                extra={
                    "gap_from_first": gap,
                    "gap_from_first_se": gap_se,
                    "inputs": float(n_inputs),
                    "features": float(n_features),
                },
            )
        )
    return floors
