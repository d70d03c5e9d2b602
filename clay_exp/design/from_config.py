"""From a composed config to the design maths: the world, its floors and its coverage.

The only module of `clay_exp.design` that reads configs (and imports Hydra): the maths below it
(`floors`, `gaussian_world`, `hierarchical_floors`, `linear_floors`, `render_floors`, `coverage`)
takes worlds and numbers, so tests and notebooks call it without composing anything.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import hydra
from omegaconf import DictConfig

from clay_exp.data.worlds.hierarchical import HierarchicalWorld
from clay_exp.design.coverage import LevelCoverage, coverage, set_locations
from clay_exp.design.floors import FloorReport
from clay_exp.design.hierarchical_floors import hierarchical_floors
from clay_exp.design.linear_floors import linear_floors
from clay_exp.design.render_floors import rendered_location_floors


def world_from_config(cfg: DictConfig, split: str = "val", length: int = 4096) -> Any:
    """The world of a composed config (``cfg.data``: a WorldDataModule) with `length` chips of `split`."""
    dm = hydra.utils.instantiate(cfg.data)
    if not hasattr(dm, "world"):
        raise ValueError(
            f"data={cfg.get('data_name', '?')} is not a generated world; floors need "
            "data=hierarchical_world, synthetic or earth"
        )
    return dm.world(split=split, length=length, bands=dm.bands, chip_size=dm.chip_size)


def floors_from_config(
    cfg: DictConfig,
    chips: int = 1024,
    draws: int = 32,
    fit_chips: int = 4096,
    eval_chips: int = 512,
    seed: int = 0,
) -> FloorReport:
    """Floors of the world and MAE settings (patch size, mask ratio, norm-pix) of a composed config."""
    bb = cfg.model.backbone
    patch, ratio, norm_pix = int(bb.patch_size), float(bb.mask_ratio), bool(bb.norm_pix_loss)
    probe = world_from_config(cfg, length=1)
    if isinstance(probe, HierarchicalWorld):
        world = world_from_config(cfg, length=chips)
        floors = hierarchical_floors(world, patch, ratio, norm_pix, chips=chips, draws=draws, seed=seed)
    else:
        world = world_from_config(cfg, length=fit_chips + eval_chips)
        floors = linear_floors(
            world, patch, ratio, norm_pix, fit_chips=fit_chips, eval_chips=eval_chips, seed=seed
        )
        if hasattr(world, "render"):  # earth: bounds from re-rendering the same places
            floors += rendered_location_floors(world, patch, ratio, norm_pix, chips=eval_chips, seed=seed)
    return FloorReport(
        world=type(world).__name__,
        patch_size=patch,
        mask_ratio=ratio,
        norm_pix_loss=norm_pix,
        chip_shape=[world.bands, world.chip_size, world.chip_size],
        floors=floors,
    )


def coverage_sets_from_config(cfg: Any, zooms: Sequence[int]) -> dict[str, list[LevelCoverage]]:
    """Coverage per validation set name (``val``, and ``val_heldout`` under a region split): of a
    generated world's chips, or of a raster datamodule's (`GeoTiffDataModule.chip_locations`)."""
    dm = hydra.utils.instantiate(cfg.data)
    train_lat, train_lon = set_locations(dm, "train")
    out = {}
    for name in dm.val_set_names:
        val_lat, val_lon = set_locations(dm, name)
        out[name] = coverage(train_lat, train_lon, zooms, val_lat, val_lon)
    return out
