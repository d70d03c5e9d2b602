"""Coverage against direct counts and the uniform-sphere closed form; power against simulation."""

from __future__ import annotations

import math
from collections import Counter

import mercantile
import numpy as np
import pytest
import torch
from scipy import stats

from clay_exp.data.worlds.hierarchical import HierarchicalWorld
from clay_exp.design.coverage import (
    clustered_locations,
    coverage,
    expected_uniform_coverage,
    level_alignment,
    row_area_shares,
)
from clay_exp.design.from_config import coverage_sets_from_config
from clay_exp.design.power import critical_t, min_detectable_difference, power, sd_from_ci, seeds_needed


class _Tile:
    """mercantile's tile at one zoom (it clamps latitudes in (85.05, 90) itself)."""

    def __init__(self, zoom: int) -> None:
        self.zoom = zoom

    def __call__(self, lat: float, lon: float) -> tuple[int, int, int]:
        return tuple(mercantile.tile(lon, lat, self.zoom))


def test_coverage_matches_a_direct_mercantile_count():
    lat = torch.tensor([10.0, 10.1, 10.2, -45.0, -45.0, 60.0, 89.0, -33.3], dtype=torch.float64)
    lon = torch.tensor([20.0, 20.1, 20.3, 170.0, -170.0, 5.0, 0.0, 151.2], dtype=torch.float64)
    vlat = torch.tensor([10.05, -60.0, 60.0], dtype=torch.float64)
    vlon = torch.tensor([20.05, 100.0, 5.0], dtype=torch.float64)
    for level in coverage(lat, lon, [0, 3, 9], vlat, vlon):
        z = level.zoom
        tile = _Tile(z)
        counts = Counter(tile(a, o) for a, o in zip(lat.tolist(), lon.tolist(), strict=True))
        assert level.occupied == len(counts)
        assert level.share_ge[1] == len(counts) / 4**z
        assert level.quartiles_occupied[1] == np.median(list(counts.values()))
        own = [counts[tile(a, o)] for a, o in zip(lat.tolist(), lon.tolist(), strict=True)]
        assert level.chip_median == float(torch.tensor(own, dtype=torch.float64).median())
        seen = [tile(a, o) in counts for a, o in zip(vlat.tolist(), vlon.tolist(), strict=True)]
        assert level.val_seen == pytest.approx(sum(seen) / len(seen))


def test_uniform_sphere_sampling_matches_the_closed_form():
    n, zooms = 3000, [2, 5, 6]
    world = HierarchicalWorld(length=n, split="train")
    lat, lon = world.locations(torch.arange(n))
    vlat, vlon = HierarchicalWorld(length=2000, split="val").locations(torch.arange(2000) + 2**40)
    for z in zooms:
        assert row_area_shares(z).sum().item() * 2**z == pytest.approx(1.0)
    for got, want in zip(
        coverage(lat, lon, zooms, vlat, vlon), expected_uniform_coverage(n, zooms), strict=True
    ):
        tiles = 4**got.zoom
        for t in (1, 10):
            p = want.share_ge[t]
            # Tile occupancies are nearly independent: a binomial spread over the tiles (4 sd + one tile).
            assert abs(got.share_ge[t] - p) < 4 * math.sqrt(p * (1 - p) / tiles) + 1 / tiles, (got.zoom, t)
        assert (
            abs(got.val_seen - want.val_seen)
            < 4 * math.sqrt(want.val_seen * (1 - want.val_seen) / 2000) + 0.01
        )


def test_region_split_holds_out_whole_tiles(make_cfg):
    cfg = make_cfg(
        ["data=hierarchical_world", "data.split=region", "data.train_size=512", "data.val_size=128"]
    )
    sets = coverage_sets_from_config(cfg, [3, 5])
    assert sets["val"][0].val_seen > 0.9
    assert sets["val_heldout"][0].val_seen == 0.0 and sets["val_heldout"][1].val_seen == 0.0


def test_sites_put_many_chips_in_few_tiles():
    lat, lon = clustered_locations(1024, 16, 6, seed=3)
    z6, z10 = coverage(lat, lon, [6, 10])
    assert z6.occupied <= 16 and z6.quartiles_occupied[1] >= 1024 / 16  # each site tile holds its chips
    assert z10.occupied > 500  # spread inside the site tiles
    with pytest.raises(ValueError):
        clustered_locations(10, 0, 6)


def test_level_alignment():
    a = level_alignment([2, 6], [0, 5, 10, 15])
    assert [(x["coarsest_encoding_level"], x["rows_per_world_tile"], x["exact"]) for x in a] == [
        (5, 64, False),
        (10, 256, False),
    ]
    assert level_alignment([5], [0, 5])[0]["exact"]


def test_critical_t_reproduces_the_audit():
    assert critical_t(3, 0.05, 105) > 40  # Holm over 105 pairs at 3 seeds
    assert critical_t(5, 0.05, 4) < 6
    assert critical_t(5, 0.05, 1) == pytest.approx(stats.t.ppf(0.975, 4))
    assert critical_t(5, 0.05, 4) > critical_t(5, 0.05, 1)
    with pytest.raises(ValueError, match="at least 2"):
        critical_t(1)


def test_minimum_detectable_difference_has_its_power_in_simulation():
    n, k, sd, reps = 5, 4, 0.02, 20000
    mdd = min_detectable_difference(sd, n, alpha=0.05, k=k, target_power=0.8)
    assert power(mdd, sd, n, 0.05, k) == pytest.approx(0.8, abs=1e-6)
    rng = np.random.default_rng(0)
    diffs = rng.normal(mdd, sd, size=(reps, n))
    p = stats.ttest_1samp(diffs, 0.0, axis=1).pvalue
    rate = float((p < 0.05 / k).mean())
    assert abs(rate - 0.8) < 4 * math.sqrt(0.8 * 0.2 / reps)
    assert seeds_needed(mdd, sd, 0.05, k, 0.8) == n
    assert min_detectable_difference(sd, 10, k=k) < mdd  # more seeds, smaller effects


def test_sd_from_ci_inverts_the_students_t_interval():
    x = np.random.default_rng(1).normal(0.8, 0.03, size=3)
    lo, hi = stats.t.interval(0.95, 2, loc=x.mean(), scale=stats.sem(x))
    assert sd_from_ci((hi - lo) / 2, 3) == pytest.approx(x.std(ddof=1))
