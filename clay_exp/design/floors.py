"""Information floors: the ideal predictor's masked-patch loss without and with location.

(One module of ~590 lines on purpose: the closed form, the two Monte-Carlo estimators, the linear
estimator of the other worlds and the config glue all share one convention for patches, masks and
the norm-pix loss — the MAE's — and a floor computed with another convention would be wrong.)

A location encoding can only lower the MAE's loss by the information location carries that the
visible patches lack. These floors measure that information for a generated world, before training:

* ``none``: the masked patches predicted from the visible patches (and what every chip shares);
* ``location``: from the visible patches plus the true location information;
* on `HierarchicalWorld`, any subset of its levels (e.g. only the coarse ones known).

**`hierarchical_world` (linear-Gaussian).** In patch space a chip is ``x = A f + √v_n ε``: ``A`` holds
the world's basis patterns scaled by √(level share), ``f`` the chip's tile factors (each level's
vector isotropic with identity covariance, independent across levels), ``ε`` i.i.d. N(0, 1).
Factors of zoom-0 levels are the same for every chip (a constant of the world any trained model
knows), so they are *known* in every floor. Given a mask, the unknown factors' posterior from the
visible pixels is Gaussian with covariance ``S = v_n (v_n I + A_vᵀA_v)⁻¹`` and mean
``(v_n I + A_vᵀA_v)⁻¹ A_vᵀ r_v`` (``r_v``: visible pixels minus the known levels' part), computed in
factor space (d·L ≤ a few dozen dimensions, whatever the chip size). Then:

* raw-pixel MSE, closed form per mask: ``(tr(S A_mᵀA_m) + v_n·|m|) / |m|`` (|m| masked values). It is
  the exact risk of the posterior-mean predictor on the real world (it depends on second moments
  only), and the Bayes risk where factors are Gaussian. The world's factors have a fixed norm √d and
  coarse levels have few tiles (z2: 16 vectors a model could memorise), so a non-linear predictor
  can do better: the closed form is the *linear* floor, an upper bound of the ideal one;
* raw-pixel Monte Carlo: real chips of the world class, predicted by that posterior mean (checks
  the closed form, and shows where few tiles make the world's factor moments differ from I);
* norm-pix Monte Carlo (the MAE's loss: every target patch standardised by its own mean and
  unbiased variance, so the Bayes predictor is E[normalised patch | visible], not the normalised
  conditional mean): per real chip, ``M`` draws of the masked patches from the Gaussian posterior
  predictive, each normalised; the predictor is their mean ``n̄``. Its loss on the real chip,
  ``‖n − n̄‖²`` minus the ``tr Var / M`` that a finite ``M`` adds (estimated by the draws' unbiased
  variance), is an unbiased estimate of the loss of the exact predictive-mean predictor: a
  predictor one can write down, so an upper bound of the ideal norm-pix loss. The draws' mean
  variance (``normpix_surrogate``) is the Bayes risk if the factors were Gaussian.

**Other worlds (`synthetic`, `earth`): best linear predictor.** Means and covariances of raw pixels,
normalised pixels and optional location features (the world's true per-chip fields: `location_features`)
are estimated on ``fit_chips`` chips; the masked (raw and normalised) values of *other* chips are
predicted by the fitted linear conditional. A fixed predictor evaluated on fresh chips is an unbiased
estimate of its own loss, hence an **upper bound** of the ideal loss; estimation error (≈ inputs /
fit_chips) inflates it, more for the location floor (more inputs).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import hydra
import torch
from omegaconf import DictConfig
from torch import Tensor

from clay_exp.data.hierarchical import HierarchicalWorld

#: Worlds whose floors have a closed form (linear-Gaussian).
CLOSED_FORM_WORLDS = ("HierarchicalWorld",)
#: Worlds with location features for the linear (Monte-Carlo) floors.
LINEAR_FEATURE_WORLDS = ("SyntheticWorld", "EarthWorld")
_EPS = 1.0e-6  # the MAE's norm-pix epsilon


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


# -- patches, normalisation and masks exactly as clay_exp.models.mae ---------------------------------
def patchify(images: Tensor, patch_size: int) -> Tensor:
    """(B, C, H, W) -> (B, L, p*p*C), the MAE's patch order (row-major patches, (p, p, C) inside)."""
    b, c, h, w = images.shape
    p = patch_size
    if h % p or w % p:
        raise ValueError(f"chip size {h}x{w} is not a multiple of patch_size={p}")
    x = images.reshape(b, c, h // p, p, w // p, p)
    return torch.einsum("nchpwq->nhwpqc", x).reshape(b, (h // p) * (w // p), p * p * c)


def normalise_patches(patches: Tensor) -> Tensor:
    """Each patch standardised by its own mean and unbiased variance (the MAE's norm_pix_loss target)."""
    mean = patches.mean(dim=-1, keepdim=True)
    var = patches.var(dim=-1, keepdim=True)
    return (patches - mean) / (var + _EPS) ** 0.5


def visible_count(num_patches: int, mask_ratio: float) -> int:
    """Visible patches per chip, the MAE's rule int(L * (1 - mask_ratio)); at least one of each kind."""
    keep = int(num_patches * (1 - mask_ratio))
    if not 1 <= keep < num_patches:
        raise ValueError(
            f"mask_ratio={mask_ratio!r} must leave at least one visible and one masked patch "
            f"of the {num_patches} patches"
        )
    return keep


def random_masks(n: int, num_patches: int, mask_ratio: float, generator: torch.Generator) -> Tensor:
    """(n, L) bool, True = masked: a uniformly random set of `visible_count` visible patches per row."""
    keep = visible_count(num_patches, mask_ratio)
    order = torch.argsort(torch.rand(n, num_patches, generator=generator), dim=1)
    masks = torch.ones(n, num_patches, dtype=torch.bool)
    masks.scatter_(1, order[:, :keep], False)
    return masks


def _mean_se(values: Tensor) -> tuple[float, float]:
    v = values.double()
    se = v.std().item() / math.sqrt(len(v)) if len(v) > 1 else float("nan")
    return v.mean().item(), se


# -- the hierarchical world, linear-Gaussian ------------------------------------------------------------
class LinearGaussianWorld:
    """A `HierarchicalWorld` in patch space: ``x = A f + √v_n ε`` (module docstring).

    Attributes: ``design`` (L_patches, D, K) = A, columns ordered (level, factor); ``levels``;
    ``noise_var``; ``gram`` (L_patches, K, K) = per-patch AᵀA.
    """

    def __init__(self, world: HierarchicalWorld, patch_size: int) -> None:
        if not isinstance(world, HierarchicalWorld):
            raise ValueError(
                f"the closed-form floors need one of {list(CLOSED_FORM_WORLDS)}, got "
                f"{type(world).__name__}; use linear_floors (Monte Carlo) for other worlds"
            )
        self.world, self.patch_size = world, int(patch_size)
        self.levels = list(world.levels)
        basis = world.basis.double()  # (L, d, C, S, S)
        self.factors_per_level = basis.shape[1]
        amp = torch.tensor(world.level_shares, dtype=torch.float64).sqrt()
        cols = (basis * amp[:, None, None, None, None]).flatten(0, 1)  # (K, C, S, S)
        self.design = patchify(cols, self.patch_size).permute(1, 2, 0).contiguous()  # (Lp, D, K)
        self.noise_var = float(world.noise_share)
        self.gram = torch.einsum("pdk,pdj->pkj", self.design, self.design)

    @property
    def num_patches(self) -> int:
        return self.design.shape[0]

    @property
    def patch_dim(self) -> int:
        return self.design.shape[1]

    def always_known(self) -> list[int]:
        """Levels with a single tile (zoom 0): constants of the world, known to every predictor."""
        return [z for z in self.levels if z == 0]

    def columns(self, levels: Sequence[int]) -> Tensor:
        """Indices of the factor columns of `levels` (which must be levels of the world)."""
        bad = [z for z in levels if z not in self.levels]
        if bad:
            raise ValueError(f"levels {bad} are not levels of this world (data.world.levels={self.levels})")
        d = self.factors_per_level
        idx = [self.levels.index(z) * d + k for z in sorted(set(levels)) for k in range(d)]
        return torch.tensor(idx, dtype=torch.int64)

    def _split(self, known: Sequence[int]) -> tuple[Tensor, Tensor]:
        known_cols = self.columns([*self.always_known(), *known])
        unknown = torch.ones(self.design.shape[-1], dtype=torch.bool)
        unknown[known_cols] = False
        return known_cols, torch.nonzero(unknown).flatten()

    def _posterior(self, unknown: Tensor, masks: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Per chip: eigenvectors of A_vᵀA_v, the covariance shrink factors v_n/(v_n+λ), and 1/(v_n+λ)."""
        gp = self.gram[:, unknown][:, :, unknown]  # (Lp, Ku, Ku)
        gv = torch.einsum("bp,pkj->bkj", (~masks).double(), gp)
        lam, vec = torch.linalg.eigh(gv)
        lam = lam.clamp_min(0.0)
        vn = self.noise_var
        tol = 1e-9 * max(1.0, float(lam.max()) if lam.numel() else 1.0)
        if vn > 0:
            shrink, inv = vn / (vn + lam), 1.0 / (vn + lam)
        else:  # no noise: directions the visible pixels see are known exactly, the others not at all
            seen = lam > tol
            shrink = (~seen).double()
            inv = torch.where(seen, 1.0 / lam.clamp_min(tol), torch.zeros_like(lam))
        return vec, shrink, inv

    def closed_form_raw(self, known: Sequence[int], masks: Tensor) -> Tensor:
        """Expected raw-pixel MSE over the masked values of each mask (B,), knowing levels `known`."""
        _, unknown = self._split(known)
        masked_values = masks.sum(1).double() * self.patch_dim
        if len(unknown) == 0:
            return torch.full((len(masks),), self.noise_var, dtype=torch.float64)
        vec, shrink, _ = self._posterior(unknown, masks)
        cov = torch.einsum("bki,bi,bji->bkj", vec, shrink, vec)  # posterior covariance S
        gp = self.gram[:, unknown][:, :, unknown]
        gm = torch.einsum("bp,pkj->bkj", masks.double(), gp)
        trace = torch.einsum("bkj,bjk->b", cov, gm)
        return (trace + self.noise_var * masked_values) / masked_values

    def monte_carlo(
        self,
        images: Tensor,
        factors: Tensor,
        known: Sequence[int],
        masks: Tensor,
        draws: int,
        generator: torch.Generator,
    ) -> dict[str, Tensor]:
        """Per real chip (B,): raw MSE of the posterior mean, norm-pix loss of the predictive mean
        (``normpix``, finite-draw bias removed) and the Gaussian surrogate's Bayes risk
        (``normpix_surrogate``). `factors` (B, L·d) are the chips' true factors (the batch's latents).
        """
        if draws < 2:
            raise ValueError(f"draws={draws!r} must be >= 2 (the variance needs two draws)")
        x = patchify(images.double(), self.patch_size)  # (B, Lp, D)
        f = factors.double()
        known_cols, unknown = self._split(known)
        a_known, a_unknown = self.design[:, :, known_cols], self.design[:, :, unknown]
        base = torch.einsum("pdk,bk->bpd", a_known, f[:, known_cols])
        m = masks.double()[..., None]  # (B, Lp, 1)
        masked_values = masks.sum(1).double() * self.patch_dim
        b, keep = len(x), masks[0].logical_not().sum().item()
        # Draws of the masked patches only (every row masks the same count), in float32: the cost is
        # M x masked values per chip, and float32 is ample for a variance of O(1) numbers.
        order = torch.argsort(masks.to(torch.int8), dim=1, stable=True)[:, keep:]  # masked patch ids
        a_masked = a_unknown[order].float()  # (B, n_m, D, Ku)
        base_m = torch.gather(base, 1, order[..., None].expand(-1, -1, self.patch_dim)).float()
        if len(unknown):
            vec, shrink, inv = self._posterior(unknown, masks)
            atr = torch.einsum("pdk,bpd->bk", a_unknown, (x - base) * (1 - m))
            mu = torch.einsum("bki,bi,bji,bj->bk", vec, inv, vec, atr)
            eps = torch.randn(b, draws, len(unknown), generator=generator, dtype=torch.float64)
            z = (mu[:, None] + torch.einsum("bki,bi,bmi->bmk", vec, shrink.sqrt(), eps)).float()
            mean_pred = base + torch.einsum("pdk,bk->bpd", a_unknown, mu)
            draws_x = base_m[:, None] + torch.einsum("bndk,bmk->bmnd", a_masked, z)
        else:
            mean_pred = base
            draws_x = base_m[:, None].expand(b, draws, *base_m.shape[1:])
        noise = torch.randn(draws_x.shape, generator=generator)
        draws_x = draws_x + math.sqrt(self.noise_var) * noise
        raw = (((x - mean_pred) ** 2) * m).sum((1, 2)) / masked_values
        nd = normalise_patches(draws_x).double()  # (B, M, n_m, D)
        nbar, s2 = nd.mean(1), nd.var(1)
        target = torch.gather(normalise_patches(x), 1, order[..., None].expand(-1, -1, self.patch_dim))
        realised = (target - nbar) ** 2 - s2 / draws
        return {
            "raw": raw,
            "normpix": realised.mean((1, 2)),
            "normpix_surrogate": s2.mean((1, 2)),
        }


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
        gap, gap_se = _mean_se(reference - per_chip[key])
        raw, raw_se = _mean_se(per_chip["raw"])
        loss, loss_se = _mean_se(per_chip["normpix"]) if norm_pix_loss else (raw, raw_se)
        diff, diff_se = _mean_se(per_chip["raw"] - closed[name])
        sur, sur_se = _mean_se(per_chip["normpix_surrogate"])
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
    from clay_exp.design.coverage import row_area_shares

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
    known_cols, unknown = model._split([])
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
    mean, se = _mean_se(torch.stack(errors))
    return {"raw": mean, "raw_se": se, "posterior_on_true_tile": torch.stack(on_true).mean().item()}


# -- other worlds: the best linear predictor, fitted ---------------------------------------------------
def location_features(world: Any, lat: Tensor, lon: Tensor) -> Tensor:
    """The world's true per-chip location information as features (B, F), for the linear floors.

    synthetic: the cover fields on the chip's footprint grid and the chip-level texture field;
    earth: the class fractions of the chip's real class map, its centre zone (one-hot) and the
    regional fields. hierarchical: the true factors (what ``encoding=oracle`` reads).
    """
    from clay_exp.data.earth import EarthWorld
    from clay_exp.data.synthetic import SyntheticWorld
    from clay_exp.geometry import lonlat_to_unit

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


def _chips(world: Any, start: int, count: int, batch: int = 256) -> dict[str, Tensor]:
    parts: dict[str, list[Tensor]] = {}
    for s in range(start, start + count, batch):
        out = world[list(range(s, min(s + batch, start + count)))]
        for k in ("image", "lat", "lon"):
            parts.setdefault(k, []).append(out[k])
    return {k: torch.cat(v) for k, v in parts.items()}


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
    fit, ev = _chips(world, 0, fit_chips), _chips(world, fit_chips, eval_chips)
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

    def cluster_mean_se(per_chip: Tensor) -> tuple[float, float]:
        # Chips sharing a mask are not independent draws of masks: the masks are the clusters.
        return _mean_se(torch.stack([per_chip[group == k].mean() for k in range(masks_count)]))

    floors = []
    for name, n_features in specs:
        raw_err, nrm_err = errors[name]
        loss_err = nrm_err if norm_pix_loss else raw_err
        raw, raw_se = cluster_mean_se(raw_err)
        loss, loss_se = cluster_mean_se(loss_err)
        gap, gap_se = cluster_mean_se(errors["none"][1 if norm_pix_loss else 0] - loss_err)
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


def estimators(report: FloorReport) -> str:
    """The distinct estimators of a report's floors, each after the floors it made ("`x`, `y`: a; `z`: b")."""
    named: dict[str, list[str]] = {}
    for f in report.floors:
        named.setdefault(f.estimator, []).append(f"`{f.name}`")
    if len(named) == 1:
        return next(iter(named))
    return "; ".join(f"{', '.join(names)}: {est}" for est, names in named.items())


# -- from a composed config --------------------------------------------------------------------------
@dataclass
class FloorReport:
    world: str
    patch_size: int
    mask_ratio: float
    norm_pix_loss: bool
    chip_shape: list[int]
    floors: list[Floor]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def world_from_config(cfg: DictConfig, split: str = "val", length: int = 4096) -> Any:
    """The world of a composed config (``cfg.data``: a WorldDataModule) with `length` chips of `split`."""
    dm = hydra.utils.instantiate(cfg.data)
    if not hasattr(dm, "world"):
        raise ValueError(
            f"data={cfg.get('data_name', '?')} is not a generated world; floors need "
            "data=hierarchical_world, synthetic or earth"
        )
    return dm.world(split=split, length=length, bands=dm.bands, chip_size=dm.chip_size)


def floors_from_config(
    cfg: DictConfig,
    chips: int = 1024,
    draws: int = 32,
    fit_chips: int = 4096,
    eval_chips: int = 512,
    seed: int = 0,
) -> FloorReport:
    """Floors of the world and MAE settings (patch size, mask ratio, norm-pix) of a composed config."""
    bb = cfg.model.backbone
    patch, ratio, norm_pix = int(bb.patch_size), float(bb.mask_ratio), bool(bb.norm_pix_loss)
    probe = world_from_config(cfg, length=1)
    if isinstance(probe, HierarchicalWorld):
        world = world_from_config(cfg, length=chips)
        floors = hierarchical_floors(world, patch, ratio, norm_pix, chips=chips, draws=draws, seed=seed)
    else:
        world = world_from_config(cfg, length=fit_chips + eval_chips)
        floors = linear_floors(
            world, patch, ratio, norm_pix, fit_chips=fit_chips, eval_chips=eval_chips, seed=seed
        )
        if hasattr(world, "render"):  # earth: bounds from re-rendering the same places
            from clay_exp.design.render_floors import rendered_location_floors

            floors += rendered_location_floors(world, patch, ratio, norm_pix, chips=eval_chips, seed=seed)
    return FloorReport(
        world=type(world).__name__,
        patch_size=patch,
        mask_ratio=ratio,
        norm_pix_loss=norm_pix,
        chip_shape=[world.bands, world.chip_size, world.chip_size],
        floors=floors,
    )
