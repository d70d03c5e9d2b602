"""The probe's points and labels: fixed, labelled by the earth world, split by region."""

from __future__ import annotations

import pytest
import torch

from clay_exp.data.splits import RegionSplit
from clay_exp.data.worlds.earth import EarthWorld
from clay_exp.probe import HELDOUT_TEST_SET, TASKS, TEST_SET, SplitSettings, sample_points


def test_points_are_fixed_labelled_and_split_by_region(land_data):
    again = sample_points(TASKS["land"], n_train=600, n_test=400)
    assert torch.equal(again.train.lat, land_data.train.lat) and torch.equal(
        again.train.lon, land_data.train.lon
    )
    world = EarthWorld(1, locations="sphere")
    region = RegionSplit()  # the split's defaults: z3, a quarter of the tiles, seed 0
    sets = {"train": land_data.train, **land_data.tests}
    assert {k: len(v) for k, v in sets.items()} == {"train": 600, TEST_SET: 400, HELDOUT_TEST_SET: 400}
    for name, points in sets.items():
        _, land = world.zone_and_land(points.lat, points.lon)
        assert torch.equal(points.labels, land.long())
        inside = region.is_heldout(points.lat, points.lon)
        assert bool(inside.all()) if name == HELDOUT_TEST_SET else not bool(inside.any())
    pairs = {(a, b) for s in sets.values() for a, b in zip(s.lat.tolist(), s.lon.tolist(), strict=True)}
    assert len(pairs) == 1400  # no point in two sets
    # Uniform by area: |sin(lat)| is uniform on [0, 1], mean 1/2 (uniform in degrees would give 2/pi).
    assert float(torch.sin(torch.deg2rad(land_data.train.lat)).abs().mean()) == pytest.approx(0.5, abs=0.05)


def test_zone_points_lie_on_land_with_their_zone():
    data = sample_points(TASKS["zone"], n_train=300, n_test=200, split=SplitSettings(split="random"))
    assert set(data.tests) == {TEST_SET}
    world = EarthWorld(1)
    zone, land = world.zone_and_land(data.train.lat, data.train.lon)
    assert bool(land.all()) and torch.equal(data.train.labels, zone)
    assert data.classes == world.zone_names and len(data.classes) == 32


def test_bad_points_are_refused_early():
    with pytest.raises(ValueError, match=r"n_train=0 and n_test=5 must be >= 1"):
        sample_points(TASKS["land"], 0, 5)
    with pytest.raises(ValueError, match=r"data.split='tiles'"):
        SplitSettings(split="tiles")
