"""Chips clustered at sites, and what training has seen (the learnable yardstick's input)."""

from __future__ import annotations

import mercantile
import pytest
import torch

from clay_exp.data.datamodule import WorldDataModule
from clay_exp.data.worlds.hierarchical import FACTORS_PER_LEVEL, HierarchicalWorld
from clay_exp.encodings.oracle import OracleEncoding
from clay_exp.tiles import lonlat_to_tile

WORLD = {
    "levels": [0, 3, 6],
    "level_shares": [0.1, 0.3, 0.3],
    "noise_share": 0.3,
    "bands": 2,
    "chip_size": 16,
}


def world(split: str = "train", length: int = 2048, **kw) -> HierarchicalWorld:
    return HierarchicalWorld(length, split=split, locations="sites", sites=64, site_zoom=6, **WORLD, **kw)


def tiles(batch: dict, zoom: int) -> set[tuple[int, int]]:
    x, y = lonlat_to_tile(batch["lon"], batch["lat"], zoom)
    return set(zip(x.tolist(), y.tolist(), strict=True))


def test_chips_cluster_at_sites_shared_by_every_split():
    train = world()[list(range(2048))]
    val = world("val", 512)[list(range(512))]
    site_tiles = tiles(train, 6)
    assert len(site_tiles) <= 64  # at most one z6 tile per site
    assert len(site_tiles) >= 50  # and (almost) every site used: 2048 chips over 64 sites
    assert tiles(val, 6) <= site_tiles  # validation chips sit at the training sites
    # each chip lies inside its site's tile, by mercantile's own tiling
    for i in range(0, 2048, 97):
        lon, lat = float(train["lon"][i]), float(train["lat"][i])
        assert (mercantile.tile(lon, lat, 6).x, mercantile.tile(lon, lat, 6).y) in site_tiles
    # chips per site ~ 2048 / 64 = 32
    x, y = lonlat_to_tile(train["lon"], train["lat"], 6)
    _, counts = torch.unique(x * 64 + y, return_counts=True)
    assert 20 <= float(counts.float().median()) <= 45


def test_sites_are_deterministic_and_validated():
    a, b = world()[[0, 5, 9]], world()[[0, 5, 9]]
    assert torch.equal(a["lat"], b["lat"]) and torch.equal(a["image"], b["image"])
    with pytest.raises(ValueError, match="sites=0"):
        HierarchicalWorld(8, locations="sites", sites=0)
    with pytest.raises(ValueError, match="locations='clusters'"):
        HierarchicalWorld(8, locations="clusters")


def test_region_split_holds_out_whole_sites_and_the_oracle_sees_only_trained_tiles():
    dm = WorldDataModule(
        world=lambda **kw: HierarchicalWorld(locations="sites", sites=64, site_zoom=6, **WORLD | kw),
        bands=2,
        chip_size=16,
        batch_size=64,
        train_size=1024,
        val_size=256,
        split="region",
        heldout_zoom=6,
        heldout_fraction=0.25,
    )
    dm.setup("fit")
    train = dm.datasets["train"][list(range(1024))]
    seen_val = dm.datasets["val"][list(range(256))]
    heldout = dm.datasets["val_heldout"][list(range(256))]
    assert not tiles(heldout, 6) & tiles(train, 6)  # held-out sites are never trained on
    assert bool(train["latents_seen"].all()) and bool(seen_val["latents_seen"].all())
    seen = heldout["latents_seen"]
    assert bool(seen[:, 0].all()) and not bool(seen[:, 2].any())  # z0 always seen, z6 never
    # z3: seen exactly when a training chip shares the z3 tile
    z3 = tiles(train, 3)
    x, y = lonlat_to_tile(heldout["lon"], heldout["lat"], 3)
    expected = torch.tensor([(int(a), int(b)) in z3 for a, b in zip(x, y, strict=True)])
    assert torch.equal(seen[:, 1], expected) and 0 < float(expected.float().mean()) < 1 + 1e-9

    oracle, learnable = OracleEncoding(WORLD["levels"]), OracleEncoding(WORLD["levels"], known="seen")
    full, masked = oracle(heldout), learnable(heldout)
    blocks = masked.view(-1, 3, FACTORS_PER_LEVEL)
    assert torch.equal(full, heldout["latents"].float())
    assert torch.equal(blocks[:, 0], full.view(-1, 3, FACTORS_PER_LEVEL)[:, 0])
    assert float(blocks[:, 2].abs().max()) == 0.0  # the unknowable z6 factor is zeroed
    assert torch.equal(learnable(seen_val), oracle(seen_val))  # on seen sites they agree
    with pytest.raises(ValueError, match="known='some'"):
        OracleEncoding(WORLD["levels"], known="some")
