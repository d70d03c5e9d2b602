"""Floors: the closed form against Monte Carlo on real chips, the fitted linear floor, bad inputs."""

from __future__ import annotations

import json

import pytest
import torch

from clay_exp.data.worlds.hierarchical import HierarchicalWorld
from clay_exp.data.worlds.synthetic import SyntheticWorld
from clay_exp.design.cli import main
from clay_exp.design.gaussian_world import LinearGaussianWorld
from clay_exp.design.hierarchical_floors import hierarchical_floors, level_subsets, memorised_level_floor
from clay_exp.design.linear_floors import linear_floors, location_features
from clay_exp.models.patches import random_masks

# Unknown factors at z10: every chip sits in its own tile, so factors are i.i.d. across chips, as
# the closed form assumes (a coarse level with few tiles has its world-specific second moments).
SMALL = {"bands": 2, "chip_size": 8, "levels": (0, 10), "level_shares": (0.3, 0.5), "noise_share": 0.2}


def small_world(length: int = 512, **kw) -> HierarchicalWorld:
    return HierarchicalWorld(length=length, split="val", **{**SMALL, **kw})


def test_closed_form_matches_monte_carlo_on_real_chips():
    floors = {f.name: f for f in hierarchical_floors(small_world(768), 4, 0.75, chips=768, draws=16)}
    assert [name for name, _ in level_subsets([0, 10])] == ["none", "location"]
    for f in floors.values():
        # Paired on the same chips and masks: MC minus closed form is zero within 4 standard errors.
        diff, se = f.extra["raw_mc_minus_closed"], f.extra["raw_mc_minus_closed_se"]
        assert abs(diff) < 4 * se, (f.name, diff, se)
    assert floors["location"].raw_closed == pytest.approx(SMALL["noise_share"])
    # Knowing the factors leaves Gaussian noise only: the posterior draws are then exact, so the
    # realised norm-pix loss and the surrogate's Bayes risk estimate the same number.
    loc = floors["location"]
    tol = 4 * (loc.loss_mc_se**2 + loc.extra["normpix_surrogate_se"] ** 2) ** 0.5
    assert abs(loc.loss_mc - loc.extra["normpix_surrogate"]) < tol
    gap, gap_se = floors["location"].extra["gap_from_first"], floors["location"].extra["gap_from_first_se"]
    assert gap > 10 * gap_se > 0


def test_monte_carlo_would_catch_a_wrong_closed_form():
    # The same chips scored against a world with other shares: the paired check must fail there.
    world = small_world(512)
    wrong = small_world(512, level_shares=(0.3, 0.3), noise_share=0.4)
    model = LinearGaussianWorld(wrong, 4)
    masks = random_masks(512, model.num_patches, 0.75, torch.Generator().manual_seed(1))
    chips = world[list(range(512))]
    mc = model.monte_carlo(chips["image"], chips["latents"], [], masks, 4, torch.Generator().manual_seed(2))
    diff = mc["raw"] - model.closed_form_raw([], masks)
    assert abs(diff.mean()) > 4 * diff.std() / len(diff) ** 0.5


def test_fitted_linear_floor_approaches_the_closed_form():
    world = small_world(6144)
    floors = {
        f.name: f for f in linear_floors(world, 4, 0.75, fit_chips=4096, eval_chips=2048, masks_count=4)
    }
    model = LinearGaussianWorld(world, 4)
    masks = random_masks(4, model.num_patches, 0.75, torch.Generator().manual_seed(0))  # linear_floors' masks
    for name, known in (("none", []), ("location", [10])):
        closed = model.closed_form_raw(known, masks).mean().item()
        f = floors[name]
        # An upper bound, close to the ideal with 4096 fitted chips for a few dozen inputs.
        assert closed - 4 * f.raw_mc_se < f.raw_mc < closed * 1.05 + 4 * f.raw_mc_se, (name, closed, f.raw_mc)


def test_unsupported_worlds_name_the_valid_choices():
    synthetic = SyntheticWorld(length=4, chip_size=8, bands=2)
    with pytest.raises(ValueError, match="HierarchicalWorld"):
        LinearGaussianWorld(synthetic, 4)
    with pytest.raises(ValueError, match="SyntheticWorld"):
        location_features(object(), torch.zeros(1), torch.zeros(1))
    with pytest.raises(ValueError, match="not levels of this world"):
        LinearGaussianWorld(small_world(4), 4).closed_form_raw([3], torch.ones(1, 4, dtype=torch.bool))


def test_noise_free_world_is_the_limit_of_vanishing_noise():
    # 2 visible patches of 2x2x1 = 8 values cannot pin 16 unknown factors: a positive floor, which
    # the noise-free branch must give as the limit of ever smaller noise.
    kw = {"bands": 1, "chip_size": 8, "levels": (0, 10, 12)}
    clean = HierarchicalWorld(length=8, level_shares=(0.4, 0.3, 0.3), noise_share=0.0, **kw)
    faint = HierarchicalWorld(length=8, level_shares=(0.4, 0.3, 0.3 - 1e-7), noise_share=1e-7, **kw)
    masks = random_masks(64, 16, 0.875, torch.Generator().manual_seed(0))
    none = LinearGaussianWorld(clean, 2).closed_form_raw([], masks)
    assert torch.isfinite(none).all() and (none > 0.01).all()
    assert torch.allclose(none, LinearGaussianWorld(faint, 2).closed_form_raw([], masks), atol=1e-4)
    assert torch.allclose(
        LinearGaussianWorld(clean, 2).closed_form_raw([10, 12], masks), torch.zeros(64).double()
    )


def test_command_writes_floors_and_coverage(tmp_path, capsys):
    out = tmp_path / "f.json"
    overrides = [
        "data=hierarchical_world",
        "data.world.levels=[0,10]",
        "data.world.level_shares=[0.3,0.5]",
        "data.world.noise_share=0.2",
        "data.chip_size=8",
        "data.bands=2",
        "data.train_size=256",
    ]
    assert main([*overrides, "--chips", "128", "--draws", "4", "--sites", "8", "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert [f["name"] for f in result["floors"]["floors"]] == ["none", "location"]
    assert result["zooms"] == [0, 5, 10, 15]
    assert result["coverage"]["val"][0]["occupied"] == 1
    assert "| location |" in capsys.readouterr().out


def test_memorising_a_coarse_level_lies_between_its_gaussian_floors():
    # 16 z2 tile vectors: a predictor that knows them recognises the tile from the visible pixels.
    world = HierarchicalWorld(
        length=256,
        split="val",
        bands=2,
        chip_size=16,
        levels=(2, 6),
        level_shares=(0.3, 0.3),
        noise_share=0.4,
    )
    memo = memorised_level_floor(world, 4, 0.875, 2, chips=256)
    model = LinearGaussianWorld(world, 4)
    masks = random_masks(256, model.num_patches, 0.875, torch.Generator().manual_seed(0))  # the same masks
    none, z2_known = model.closed_form_raw([], masks).mean(), model.closed_form_raw([2], masks).mean()
    assert z2_known - 4 * memo["raw_se"] < memo["raw"] < none - 4 * memo["raw_se"]
    assert 1 / 16 < memo["posterior_on_true_tile"] <= 1
    with pytest.raises(ValueError, match="too many"):
        memorised_level_floor(world, 4, 0.875, 6, max_tiles=1024)
