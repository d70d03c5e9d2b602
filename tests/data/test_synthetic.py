from __future__ import annotations

import pytest
import torch

from clay_exp.data.datamodule import WorldDataModule
from clay_exp.data.worlds.synthetic import SyntheticWorld


def test_chip_i_is_always_the_same_chip():
    world = SyntheticWorld(length=100, world_seed=3)
    batch = world[[5, 17, 42]]
    again = SyntheticWorld(length=100, world_seed=3)[[42, 5]]
    torch.testing.assert_close(batch["image"][2], again["image"][0])
    torch.testing.assert_close(batch["image"][0], again["image"][1])
    single = world[17]
    torch.testing.assert_close(single["image"], batch["image"][1])
    assert single["lat"] == batch["lat"][1]
    other = SyntheticWorld(length=100, world_seed=4)[[5]]
    assert not torch.allclose(other["image"][0], batch["image"][0])


def test_batch_format():
    world = SyntheticWorld(length=64, bands=6, chip_size=16)
    b = world[list(range(64))]
    assert b["image"].shape == (64, 6, 16, 16) and b["image"].dtype == torch.float32
    assert b["lat"].shape == b["lon"].shape == (64,) and b["lat"].dtype == torch.float64
    assert torch.isfinite(b["image"]).all()
    assert (b["lat"].abs() <= 90).all() and (b["lon"].abs() <= 180).all()


def test_locations_uniform_by_area():
    lat, lon = SyntheticWorld(length=1).locations(torch.arange(20000))
    sinlat = torch.sin(torch.deg2rad(lat))
    # uniform on the sphere <=> sin(lat) and lon uniform
    assert abs(float(sinlat.mean())) < 0.02 and abs(float(sinlat.var()) - 1 / 3) < 0.01
    assert abs(float(lon.mean())) < 4 and abs(float(lon.var()) - 360**2 / 12) < 400


def test_splits_are_disjoint_worlds_of_the_same_planet():
    train = SyntheticWorld(length=50, split="train")
    val = SyntheticWorld(length=50, split="val")
    lt, lv = train[list(range(50))]["lat"], val[list(range(50))]["lat"]
    assert not set(lt.tolist()) & set(lv.tolist())
    assert torch.equal(train.signatures, val.signatures)


def test_content_depends_on_location():
    """Chips at nearly the same place look alike; chips far apart do not."""
    world = SyntheticWorld(length=1, noise_std=0.0)
    lat = torch.tensor([20.0, 20.0, -40.0], dtype=torch.float64)
    lon = torch.tensor([30.0, 30.0001, 120.0], dtype=torch.float64)
    covers = world.cover_field(world.footprint_points(lat, lon))
    assert torch.allclose(covers[0], covers[1], atol=1e-2)
    assert (covers[0] - covers[2]).abs().mean() > 0.1


def test_index_errors_and_bad_arguments():
    world = SyntheticWorld(length=10)
    with pytest.raises(IndexError, match="out of range"):
        world[[3, 10]]
    with pytest.raises(ValueError, match="split='holdout'"):
        SyntheticWorld(length=10, split="holdout")


def test_datamodule_batches():
    from functools import partial

    dm = WorldDataModule(
        world=partial(SyntheticWorld), bands=4, chip_size=16, batch_size=8, train_size=20, val_size=12
    )
    dm.setup("fit")
    train = list(dm.train_dataloader())
    val = list(dm.val_dataloader())
    assert [b["image"].shape[0] for b in train] == [8, 8]  # drop_last in training
    assert [b["image"].shape[0] for b in val] == [8, 4]
    assert train[0]["image"].shape == (8, 4, 16, 16)
    with pytest.raises(ValueError, match="batch_size=0"):
        WorldDataModule(world=partial(SyntheticWorld), batch_size=0)
