"""hierarchical_world: determinism, variance shares as configured, latents attached to the tile chain."""

from __future__ import annotations

import mercantile
import pytest
import torch

from clay_exp.data.worlds.hierarchical import FACTORS_PER_LEVEL, HierarchicalWorld

SHARES = dict(levels=[0, 3, 6, 10], level_shares=[0.1, 0.2, 0.3, 0.25], noise_share=0.15)


def test_chip_i_is_always_the_same_chip():
    world = HierarchicalWorld(length=100, world_seed=5)
    batch = world[[3, 50, 99]]
    again = HierarchicalWorld(length=100, world_seed=5)[[99, 3]]
    # the same chip whatever the batch (up to float rounding of batched matrix products)
    torch.testing.assert_close(batch["image"][2], again["image"][0])
    assert torch.equal(batch["latents"][0], again["latents"][1])
    single = world[50]
    torch.testing.assert_close(single["image"], batch["image"][1])
    other = HierarchicalWorld(length=100, world_seed=6)[[3]]
    assert not torch.allclose(other["image"][0], batch["image"][0])


def test_batch_format():
    world = HierarchicalWorld(length=32, bands=6, chip_size=16)
    b = world[list(range(32))]
    assert b["image"].shape == (32, 6, 16, 16) and b["image"].dtype == torch.float32
    assert b["latents"].shape == (32, 4 * FACTORS_PER_LEVEL) and b["latents"].dtype == torch.float32
    assert b["lat"].dtype == torch.float64 and torch.isfinite(b["image"]).all()
    # every level's factors have norm sqrt(d)
    norms = b["latents"].view(32, 4, FACTORS_PER_LEVEL).norm(dim=-1)
    torch.testing.assert_close(norms, torch.full_like(norms, FACTORS_PER_LEVEL**0.5))


def test_variance_shares_match_the_config():
    """Estimated from 2000 chips: each level's component (projection on its patterns) and the noise."""
    world = HierarchicalWorld(length=2000, chip_size=16, world_seed=1, **SHARES)
    x = world[list(range(2000))]["image"].flatten(1).double()  # (n, N)
    n_values = x.shape[1]
    assert float(x.pow(2).mean()) == pytest.approx(1.0, abs=0.02)
    explained = torch.zeros(())
    for level, share in enumerate(SHARES["level_shares"]):
        basis = world.basis[level].flatten(1).double()  # (d, N), orthogonal rows
        coef = x @ basis.T / basis.pow(2).sum(dim=1)
        component = (coef.pow(2) * basis.pow(2).sum(dim=1)).sum(dim=1) / n_values  # per-chip mean square
        assert float(component.mean()) == pytest.approx(share, abs=0.005), level
        explained = explained + component.mean()
    assert float(x.pow(2).mean() - explained) == pytest.approx(SHARES["noise_share"], abs=0.01)


def test_only_global_semantics_means_every_chip_alike():
    """All variance at z0 (one tile for the planet): chips differ by their noise only."""
    world = HierarchicalWorld(
        length=300, chip_size=16, levels=[0, 6], level_shares=[0.9, 0.0], noise_share=0.1
    )
    x = world[list(range(300))]["image"]
    between_chips = x.var(dim=0).mean()  # per-pixel variance across chips
    assert float(between_chips) == pytest.approx(0.1, rel=0.1)
    assert float(x.pow(2).mean()) == pytest.approx(1.0, abs=0.03)


def test_latents_are_attached_to_the_tile_chain():
    """Two points in one z6 tile but different z10 tiles share the z0/z3/z6 factors, not the z10 ones."""
    world = HierarchicalWorld(length=1)
    z6 = mercantile.tile(7.45, 46.95, 6)
    west, south, east, north = mercantile.bounds(z6)
    lon = torch.tensor([west + 0.1 * (east - west), west + 0.9 * (east - west)], dtype=torch.float64)
    lat = torch.tensor([south + 0.5 * (north - south)] * 2, dtype=torch.float64)
    tiles = [mercantile.tile(float(a), float(b), 10) for a, b in zip(lon, lat, strict=True)]
    assert tiles[0] != tiles[1]
    factors = world.tile_factors(lat, lon)  # (2, L, d)
    assert torch.equal(factors[0, :3], factors[1, :3])
    assert not torch.allclose(factors[0, 3], factors[1, 3])
    # the batch's latents are the factors of the chip's own tiles
    b = world[[0]]
    torch.testing.assert_close(b["latents"], world.tile_factors(b["lat"], b["lon"]).flatten(1))


def test_land_locations_are_on_land():
    from clay_exp.data.worlds.geography import land_mask

    b = HierarchicalWorld(length=200, locations="land")[list(range(200))]
    assert bool(land_mask().is_land(b["lat"], b["lon"]).all())


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(level_shares=[0.5, 0.5, 0.5, 0.5]), "sum to 1"),
        (dict(level_shares=[0.9]), "one share per level"),
        (dict(levels=[3, 0], level_shares=[0.5, 0.4]), "increasing"),
        (dict(chip_size=2, bands=1), "latent factors need"),
        (dict(locations="ocean"), "locations='ocean'"),
    ],
)
def test_bad_configuration_is_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        HierarchicalWorld(length=1, **kwargs)
