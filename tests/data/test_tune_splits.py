"""Tuning sets (issue 18): chips a tuning trial validates on, apart from every chip a study reports.

`tune` has chip ids of its own; `tune_heldout` lies in held-out tiles that `val_heldout` never uses;
without `tune_heldout_fraction` every reported set is exactly what it was."""

from __future__ import annotations

from functools import partial

import pytest
import torch

from clay_exp.data.datamodule import WorldDataModule
from clay_exp.data.splits import RegionSplit, make_region_split
from clay_exp.data.worlds.earth import EarthWorld
from clay_exp.data.worlds.hierarchical import HierarchicalWorld
from clay_exp.data.worlds.synthetic import SyntheticWorld
from clay_exp.data.worlds.world import SPLIT_OFFSETS
from clay_exp.tiles import lonlat_to_tile

SIZES = {"chip_size": 8, "batch_size": 64, "train_size": 256, "val_size": 128}


def chips(dm: WorldDataModule, name: str) -> dict[str, torch.Tensor]:
    dataset = dm.datasets[name]
    return dataset[list(range(len(dataset)))]


def tiles(batch: dict[str, torch.Tensor], zoom: int) -> set[tuple[int, int]]:
    x, y = lonlat_to_tile(batch["lon"], batch["lat"], zoom)
    return set(zip(x.tolist(), y.tolist(), strict=True))


def module(world, eval_sets: str, fraction: float = 0.3, **kwargs) -> WorldDataModule:
    dm = WorldDataModule(
        world=world, split="region", heldout_zoom=4, eval_sets=eval_sets, tune_heldout_fraction=fraction,
        **SIZES, **kwargs,
    )  # fmt: skip
    dm.setup("fit")
    return dm


@pytest.mark.parametrize(
    "world",
    [partial(SyntheticWorld), partial(HierarchicalWorld), partial(EarthWorld, locations="sphere")],
    ids=["synthetic", "hierarchical_world", "earth"],
)
def test_tuning_chips_are_disjoint_from_every_reported_chip(world):
    reported, tuning = module(world, "val"), module(world, "tune")
    assert reported.val_set_names == ["val", "val_heldout"]
    assert tuning.val_set_names == ["tune", "tune_heldout"]
    ids = {name: set(chips(dm, name)["index"].tolist()) for dm in (reported, tuning) for name in dm.datasets}
    for tune_set in ("tune", "tune_heldout"):
        for other in ("train", "val", "val_heldout"):
            assert not ids[tune_set] & ids[other], (tune_set, other)
    assert min(ids["tune"]) >= SPLIT_OFFSETS["tune"]
    zoom = reported.region.zoom
    val_tiles, tune_tiles = (
        tiles(chips(reported, "val_heldout"), zoom),
        tiles(chips(tuning, "tune_heldout"), zoom),
    )
    assert val_tiles and tune_tiles and not val_tiles & tune_tiles  # held-out tiles: split, not shared
    region = reported.region
    for name, dm, held in (("tune", tuning, False), ("tune_heldout", tuning, True), ("train", tuning, False)):
        b = chips(dm, name)
        assert bool((region.is_heldout(b["lat"], b["lon"]) == held).all()), name


def test_without_a_tuning_share_the_reported_sets_are_unchanged():
    """fraction 0 (the default): val_heldout is exactly the chips the plain hold-out filter gives."""
    dm = module(partial(HierarchicalWorld), "val", fraction=0.0)
    old = HierarchicalWorld(length=128, split="val", chip_size=8, region=RegionSplit(zoom=4).is_heldout)
    assert torch.equal(chips(dm, "val_heldout")["image"], old[list(range(128))]["image"])
    assert repr(dm.region) == "RegionSplit(zoom=4, fraction=0.25, seed=0)"  # cache keys unchanged
    assert module(partial(HierarchicalWorld), "tune", fraction=0.0).val_set_names == ["tune"]


def test_the_tuning_share_moves_only_val_heldout():
    with_share, without = (
        module(partial(HierarchicalWorld), "val"),
        module(partial(HierarchicalWorld), "val", 0.0),
    )
    for name in ("train", "val"):
        assert torch.equal(chips(with_share, name)["image"], chips(without, name)["image"]), name


def test_bad_tuning_settings_are_named(tmp_path):
    with pytest.raises(ValueError, match=r"tune_heldout_fraction=1\.0 must be in \[0, 1\)"):
        make_region_split("region", 3, 0.25, 0, 1.0)
    with pytest.raises(ValueError, match=r"tune_heldout_fraction=0\.2 needs data\.split=region"):
        make_region_split("random", 3, 0.25, 0, 0.2)
    with pytest.raises(ValueError, match=r"data\.eval_sets='test' is not one of \['val', 'tune'\]"):
        WorldDataModule(world=partial(SyntheticWorld), eval_sets="test")
