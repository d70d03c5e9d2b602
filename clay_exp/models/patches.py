"""The MAE's patch geometry, in one place: how a chip becomes patches, what the loss compares, which
patches are masked.

The model (`clay_exp.models.mae`) and the information floors (`clay_exp.design`) both use these:
a floor computed with another patch order, normalisation or masking rule would not be a floor of
the loss the model reports.

* `patchify` / `unpatchify`: ``(B, C, H, W)`` <-> ``(B, L, p*p*C)``, patches in row-major order,
  pixels ``(p, p, C)`` inside a patch (He et al., 2022);
* `normalise_patches`: each patch standardised by its own mean and unbiased variance, the
  ``norm_pix_loss`` target;
* the masking rule: `visible_count` patches stay visible, those with the smallest uniform noise
  (`masking_from_noise`); `check_mask_ratio` refuses a ratio that leaves no visible or no masked
  patch; `random_masks` draws such masks for the floors.
"""

from __future__ import annotations

import torch
from torch import Tensor

#: The epsilon added to each patch's variance before normalising (the MAE paper's 1e-6).
NORM_PIX_EPS = 1.0e-6


def patchify(images: Tensor, patch_size: int) -> Tensor:
    """(B, C, H, W) -> (B, L, p*p*C), patches in row-major order, pixels (p, p, C) within a patch."""
    b, c, h, w = images.shape
    p = patch_size
    if h % p or w % p:
        raise ValueError(f"chip size {h}x{w} is not a multiple of patch_size={p}")
    x = images.reshape(b, c, h // p, p, w // p, p)
    return torch.einsum("nchpwq->nhwpqc", x).reshape(b, (h // p) * (w // p), p * p * c)


def unpatchify(patches: Tensor, patch_size: int, channels: int, grid: int) -> Tensor:
    """Inverse of `patchify` for a square chip of `grid` x `grid` patches: -> (B, C, H, W)."""
    b = patches.shape[0]
    p, c, g = patch_size, channels, grid
    x = patches.reshape(b, g, g, p, p, c)
    return torch.einsum("nhwpqc->nchpwq", x).reshape(b, c, g * p, g * p)


def normalise_patches(patches: Tensor) -> Tensor:
    """Each patch (last dim) standardised by its own mean and unbiased variance (``norm_pix_loss``)."""
    mean = patches.mean(dim=-1, keepdim=True)
    var = patches.var(dim=-1, keepdim=True)
    return (patches - mean) / (var + NORM_PIX_EPS) ** 0.5


def visible_count(num_patches: int, mask_ratio: float) -> int:
    """Visible patches per chip under the MAE's rule, ``int(L * (1 - mask_ratio))`` (unchecked: a
    ratio of 1.0 leaves none, as an evaluation with every patch masked wants)."""
    return int(num_patches * (1 - mask_ratio))


def check_mask_ratio(num_patches: int, mask_ratio: float) -> int:
    """`visible_count` for a ratio to train or compute floors with: at least one visible and one
    masked patch, else a ValueError naming the ratio."""
    keep = visible_count(num_patches, mask_ratio)
    if not 1 <= keep < num_patches:
        raise ValueError(
            f"mask_ratio={mask_ratio!r} must leave at least one visible and one masked patch "
            f"of the {num_patches} patches"
        )
    return keep


def masking_from_noise(noise: Tensor, keep: int) -> tuple[Tensor, Tensor, Tensor]:
    """The MAE's masking of a (B, L) noise draw: the `keep` patches with the smallest noise stay
    visible. Returns ``ids_keep`` (B, keep), ``mask`` (B, L) in `noise`'s dtype (1 = masked) and
    ``ids_restore`` (B, L), the permutation that puts shuffled patches back in place."""
    ids_shuffle = torch.argsort(noise, dim=1)
    ids_restore = torch.argsort(ids_shuffle, dim=1)
    mask = torch.ones_like(noise)
    mask[:, :keep] = 0
    mask = torch.gather(mask, 1, ids_restore)
    return ids_shuffle[:, :keep], mask, ids_restore


def random_masks(n: int, num_patches: int, mask_ratio: float, generator: torch.Generator) -> Tensor:
    """(n, L) bool, True = masked: the MAE's masking of a uniform noise draw from `generator`."""
    keep = check_mask_ratio(num_patches, mask_ratio)
    noise = torch.rand(n, num_patches, generator=generator)
    return masking_from_noise(noise, keep)[1].bool()
