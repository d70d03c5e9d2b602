from __future__ import annotations

import pytest
import torch

from clay_exp.models.mae import MaskedAutoencoderViT
from tests.helpers import small_mae


def small(**kwargs) -> MaskedAutoencoderViT:
    return small_mae(**kwargs)


@pytest.mark.parametrize("ratio", [0.75, 0.5, 0.9])
def test_masking_keeps_the_configured_ratio(ratio):
    m = small(mask_ratio=ratio)
    x = torch.randn(5, 16, 32)
    kept, mask, ids_restore = m.random_masking(x)
    n_keep = int(16 * (1 - ratio))
    assert kept.shape == (5, n_keep, 32)
    assert (mask.sum(dim=1) == 16 - n_keep).all()
    # the kept tokens are exactly the unmasked ones, in shuffled order
    for b in range(5):
        visible = x[b, mask[b] == 0]
        assert sorted(map(tuple, visible.tolist())) == sorted(map(tuple, kept[b].tolist()))
    assert torch.equal(torch.sort(ids_restore, dim=1).values, torch.arange(16).expand(5, -1))


def test_masks_differ_across_samples_and_follow_the_generator():
    m = small()
    x = torch.randn(8, 16, 32)
    _, mask_a, _ = m.random_masking(x, torch.Generator().manual_seed(1))
    _, mask_b, _ = m.random_masking(x, torch.Generator().manual_seed(1))
    assert torch.equal(mask_a, mask_b)
    assert len({tuple(r.tolist()) for r in mask_a}) > 1


def test_patchify_roundtrip():
    m = small()
    img = torch.randn(2, 3, 16, 16)
    patches = m.patchify(img)
    assert patches.shape == (2, 16, 4 * 4 * 3)
    torch.testing.assert_close(m.unpatchify(patches), img)
    # patch 1 is the second patch of the top row: columns 4..7
    torch.testing.assert_close(patches[0, 1].view(4, 4, 3), img[0, :, 0:4, 4:8].permute(1, 2, 0))


def test_loss_is_masked_mse_of_normalised_pixels():
    m = small()
    img = torch.randn(2, 3, 16, 16)
    target = m.patchify(img)
    norm = (target - target.mean(-1, keepdim=True)) / (target.var(-1, keepdim=True) + 1e-6) ** 0.5
    mask = torch.zeros(2, 16)
    mask[:, :4] = 1
    assert m.reconstruction_loss(img, norm, mask) == pytest.approx(0.0, abs=1e-6)
    pred = norm.clone()
    pred[:, 4:] += 5.0  # errors on visible patches do not count
    pred[:, :4] += 1.0  # every masked pixel off by one -> loss 1
    assert m.reconstruction_loss(img, pred, mask) == pytest.approx(1.0, abs=1e-5)


@pytest.mark.parametrize("injection", ["add", "token", "clay_v1"])
def test_location_changes_the_output_and_gets_gradients(injection):
    # (film starts from the plain MAE, so the location changes nothing at init: test_injection.py)
    torch.manual_seed(0)
    m = small(location_dim=4, injection=injection, location_dropout=0.0)
    img = torch.randn(3, 3, 16, 16)
    loc = torch.randn(3, 4, requires_grad=True)
    g = torch.Generator().manual_seed(0)
    out = m(img, loc, generator=g)
    assert out.pred.shape == (3, 16, 48) and out.mask.shape == (3, 16)
    out.loss.backward()
    assert loc.grad is not None and loc.grad.abs().sum() > 0
    assert m.injection.proj.weight.grad.abs().sum() > 0
    out2 = m(img, loc + 1.0, generator=torch.Generator().manual_seed(0))
    assert not torch.allclose(out.pred, out2.pred)


@pytest.mark.parametrize("injection", ["add", "token", "clay_v1", "film"])
def test_no_location_means_no_projection(injection):
    m = small(location_dim=0, injection=injection)
    assert m.location_parameters() == []
    out = m(torch.randn(2, 3, 16, 16))
    assert out.pred.shape == (2, 16, 48)


def test_bad_shapes_and_settings_raise():
    m = small(location_dim=4)
    with pytest.raises(ValueError, match=r"\(B, 3, 16, 16\).*got \(2, 4, 16, 16\)"):
        m(torch.randn(2, 4, 16, 16), torch.randn(2, 4))
    with pytest.raises(ValueError, match=r"location must have shape \(2, 4\)"):
        m(torch.randn(2, 3, 16, 16), torch.randn(2, 5))
    with pytest.raises(
        ValueError, match=r"injection='concat' is not one of \['add', 'token', 'clay_v1', 'film'\]"
    ):
        small(injection="concat")
    with pytest.raises(ValueError, match=r"mask_ratio=1\.0"):
        small(mask_ratio=1.0)
    with pytest.raises(ValueError, match="not a multiple"):
        small(img_size=18)
