"""The MAE's patch geometry is one piece: the model and the floors patchify, normalise and mask alike."""

from __future__ import annotations

import pytest
import torch

from clay_exp.models.patches import (
    check_mask_ratio,
    masking_from_noise,
    normalise_patches,
    patchify,
    random_masks,
    unpatchify,
    visible_count,
)
from tests.helpers import small_mae


def test_patches_and_normalisation_are_the_maes():
    torch.manual_seed(0)
    mae = small_mae(img_size=8, in_chans=2, embed_dim=16, decoder_embed_dim=16)
    images, pred = torch.randn(3, 2, 8, 8), torch.randn(3, 4, 32)
    mask = torch.tensor([[1.0, 1, 1, 0], [0, 1, 1, 1], [1, 0, 1, 1]])
    assert torch.equal(patchify(images, 4), mae.patchify(images))
    ours = (((pred - normalise_patches(patchify(images, 4))) ** 2).mean(-1) * mask).sum() / mask.sum()
    assert torch.allclose(ours, mae.reconstruction_loss(images, pred, mask), atol=1e-6)


def test_normalised_patches_have_zero_mean_and_unit_unbiased_variance():
    patches = 3.0 + 2.0 * torch.randn(5, 7, 48, dtype=torch.float64)
    n = normalise_patches(patches)
    assert torch.allclose(n.mean(-1), torch.zeros(5, 7, dtype=torch.float64), atol=1e-12)
    # var / (var + 1e-6): one up to the epsilon, which matters only for flat patches
    assert torch.allclose(n.var(-1), torch.ones(5, 7, dtype=torch.float64), atol=1e-6)


def test_unpatchify_inverts_patchify_and_odd_sizes_are_refused():
    img = torch.randn(2, 3, 12, 12)
    assert torch.equal(unpatchify(patchify(img, 4), 4, 3, 3), img)
    with pytest.raises(ValueError, match="10x12 is not a multiple of patch_size=4"):
        patchify(torch.randn(1, 3, 10, 12), 4)


def test_floor_masks_are_the_maes_masks_for_the_same_draw():
    mae = small_mae(mask_ratio=0.75)
    tokens = torch.randn(6, mae.num_patches, 8)
    _, mae_mask, _ = mae.random_masking(tokens, torch.Generator().manual_seed(5))
    ours = random_masks(6, mae.num_patches, 0.75, torch.Generator().manual_seed(5))
    assert torch.equal(ours, mae_mask.bool())
    assert visible_count(mae.num_patches, 0.75) == 4
    assert ((~ours).sum(1) == 4).all()


def test_the_smallest_noise_stays_visible_and_restore_undoes_the_shuffle():
    noise = torch.tensor([[0.9, 0.1, 0.5, 0.3], [0.2, 0.8, 0.4, 0.6]])
    ids_keep, mask, ids_restore = masking_from_noise(noise, 2)
    assert ids_keep.tolist() == [[1, 3], [0, 2]]
    assert mask.tolist() == [[1.0, 0.0, 1.0, 0.0], [0.0, 1.0, 0.0, 1.0]]
    shuffled = torch.gather(noise, 1, torch.argsort(noise, dim=1))
    assert torch.equal(torch.gather(shuffled, 1, ids_restore), noise)
    # with every patch masked (an evaluation setting) nothing is kept
    assert masking_from_noise(noise, visible_count(4, 1.0))[1].eq(1).all()


@pytest.mark.parametrize("ratio", [0.9, 1.0, 0.0, -0.5])
def test_impossible_ratios_are_refused_naming_the_ratio(ratio):
    with pytest.raises(ValueError, match=f"mask_ratio={ratio!r} must leave at least one visible"):
        check_mask_ratio(4, ratio)
    with pytest.raises(ValueError, match="at least one visible"):
        random_masks(1, 4, ratio, torch.Generator())
    with pytest.raises(ValueError, match="at least one visible"):
        small_mae(img_size=8, mask_ratio=ratio)  # 4 patches
