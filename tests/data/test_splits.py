"""Region splits: held-out tiles never reach training, the validation sets are named and disjoint."""

from __future__ import annotations

from functools import partial

import mercantile
import pytest
import torch

from clay_exp.data.datamodule import WorldDataModule
from clay_exp.data.splits import RegionSplit, make_region_split
from clay_exp.data.worlds.earth import EarthWorld
from clay_exp.data.worlds.hierarchical import HierarchicalWorld
from clay_exp.data.worlds.synthetic import SyntheticWorld


def heldout_by_mercantile(split: RegionSplit, lat: torch.Tensor, lon: torch.Tensor) -> list[bool]:
    """Held-out flag of each point, its tile computed by mercantile (the reference tiling)."""
    tiles = [mercantile.tile(float(b), float(a), split.zoom) for a, b in zip(lat, lon, strict=True)]
    xs, ys = torch.tensor([t.x for t in tiles]), torch.tensor([t.y for t in tiles])
    return split.tile_is_heldout(xs, ys).tolist()


def test_region_split_holds_out_a_fixed_fraction_of_tiles():
    x, y = (t.flatten() for t in torch.meshgrid(torch.arange(64), torch.arange(64), indexing="ij"))
    held = RegionSplit(zoom=6, fraction=0.3, seed=4).tile_is_heldout(x, y)
    assert float(held.double().mean()) == pytest.approx(0.3, abs=0.02)
    assert torch.equal(held, RegionSplit(zoom=6, fraction=0.3, seed=4).tile_is_heldout(x, y))
    assert not torch.equal(held, RegionSplit(zoom=6, fraction=0.3, seed=5).tile_is_heldout(x, y))


@pytest.mark.parametrize(
    "world",
    [
        partial(SyntheticWorld),
        partial(HierarchicalWorld),
        partial(EarthWorld, locations="sphere"),
    ],
    ids=["synthetic", "hierarchical_world", "earth"],
)
def test_heldout_tiles_never_appear_in_training_batches(world):
    dm = WorldDataModule(
        world=world, chip_size=8, batch_size=32, train_size=256, val_size=64, split="region", heldout_zoom=3
    )
    dm.setup("fit")
    assert dm.val_set_names == ["val", "val_heldout"]
    train = list(dm.train_dataloader())
    lat, lon = torch.cat([b["lat"] for b in train]), torch.cat([b["lon"] for b in train])
    assert len(lat) == 256 and not any(heldout_by_mercantile(dm.region, lat, lon))
    seen, heldout = dm.val_dataloader()
    for loader, expected in ((seen, False), (heldout, True)):
        batch = next(iter(loader))
        assert all(flag == expected for flag in heldout_by_mercantile(dm.region, batch["lat"], batch["lon"]))


def test_random_split_is_unchanged():
    dm = WorldDataModule(world=partial(SyntheticWorld), chip_size=8, batch_size=8, train_size=16, val_size=8)
    dm.setup("fit")
    assert dm.val_set_names == ["val"] and dm.region is None
    assert isinstance(dm.val_dataloader(), torch.utils.data.DataLoader)


def test_bad_split_settings_are_named():
    with pytest.raises(ValueError, match=r"data.split='tiles' is not one of \['random', 'region'\]"):
        make_region_split("tiles", 3, 0.25, 0)
    with pytest.raises(ValueError, match=r"heldout_fraction=1\.5"):
        make_region_split("region", 3, 1.5, 0)
    with pytest.raises(ValueError, match="zoom=40"):
        make_region_split("region", 40, 0.25, 0)


def test_impossible_constraints_fail_with_a_clear_message():
    nowhere = HierarchicalWorld(length=4, region=lambda lat, lon: torch.zeros_like(lat, dtype=torch.bool))
    with pytest.raises(ValueError, match="no location passes this world's constraints"):
        nowhere[[0]]


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ({"batch_size": 0}, r"data.batch_size=0 must be >= 1"),
        ({"train_size": -3}, r"data.train_size=-3 must be >= 1"),
        ({"val_size": 0}, r"data.val_size=0 must be >= 1"),
        ({"num_workers": -1}, r"data.num_workers=-1 must be >= 0"),
        ({"split": "tiles"}, r"data.split='tiles' is not one of"),
    ],
)
def test_both_datamodules_reject_bad_settings_before_reading_anything(tmp_path, setting, message):
    """The shared SplitDataModule checks run first: no world is built, no GeoTIFF folder is read."""
    from clay_exp.data.geotiff import GeoTiffDataModule

    with pytest.raises(ValueError, match=message):
        WorldDataModule(world=partial(SyntheticWorld), **setting)
    with pytest.raises(ValueError, match=message):  # the folder does not exist: that error would come later
        GeoTiffDataModule(paths=str(tmp_path / "nowhere"), **setting)


def test_val_dataloaders_follow_val_set_names_in_order():
    from torch.utils.data import DataLoader

    from clay_exp.data.base import SplitDataModule

    class Named(SplitDataModule):
        def __init__(self, split: str) -> None:
            super().__init__()
            self.init_split(
                batch_size=1, train_size=1, val_size=1, num_workers=0,
                split=split, heldout_zoom=2, heldout_fraction=0.5, heldout_seed=0,
            )  # fmt: skip

        def set_dataloader(self, name: str) -> DataLoader:
            loader = DataLoader([0])
            loader.set_name = name
            return loader

    assert Named("random").val_dataloader().set_name == "val"
    assert [dl.set_name for dl in Named("region").val_dataloader()] == ["val", "val_heldout"]
    assert Named("region").train_dataloader().set_name == "train"
    region = Named("region")
    lat, lon = torch.linspace(-80, 80, 50), torch.linspace(-170, 170, 50)
    assert torch.equal(region.set_filter("val_heldout")(lat, lon), region.region.is_heldout(lat, lon))
    assert torch.equal(region.set_filter("train")(lat, lon), ~region.region.is_heldout(lat, lon))
    assert Named("random").set_filter("train") is None
