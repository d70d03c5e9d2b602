"""`hierarchical_world` in patch space, linear-Gaussian: the model behind its closed-form floors.

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
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from clay_exp.data.worlds.hierarchical import HierarchicalWorld
from clay_exp.design.floors import CLOSED_FORM_WORLDS
from clay_exp.models.patches import normalise_patches, patchify


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

    def split_columns(self, known: Sequence[int]) -> tuple[Tensor, Tensor]:
        """(known, unknown) factor columns when `known` levels (and the zoom-0 ones) are given."""
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
        _, unknown = self.split_columns(known)
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
        known_cols, unknown = self.split_columns(known)
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
