"""`SceneDataModule` (``data=scenes``): the real scenes as one datamodule, built on `GeoTiffDataModule`
through its hooks (where chips are, which chips a set keeps, what the cache key records)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import shapely
import torch
from pyproj import Transformer
from torch.utils.data import Sampler

from clay_exp.data.geotiff.chip_cache import file_fingerprints
from clay_exp.data.geotiff.chips import RasterChips, make_chip_makers
from clay_exp.data.geotiff.datamodule import GeoTiffDataModule
from clay_exp.data.geotiff.files import band_sources, check_chip_size
from clay_exp.data.geotiff.samplers import LocationFilteredSampler
from clay_exp.data.scenes.datasets import (
    SCENE_DATASETS,
    SceneChips,
    SceneQuery,
    common_bounds,
    resolve_band_names,
)
from clay_exp.data.scenes.files import SCENES, check_names, require_scenes
from clay_exp.data.scenes.samplers import SceneGridSampler, SceneRandomSampler, WholeFootprintSampler
from clay_exp.tiles import MAX_ZOOM

#: Metres of web-mercator tile width per 2^-zoom at the equator (the earth's circumference).
EQUATOR_M = 40_075_016.686


def tile_width_m(zoom: int, lat: float) -> float:
    """Ground width (metres) of a web-mercator tile at `zoom` and latitude `lat` (degrees)."""
    return EQUATOR_M * math.cos(math.radians(lat)) / 2**zoom


class SceneDataModule(GeoTiffDataModule):
    """The real scenes (`clay_exp.data.scenes.files.SCENES`) as one datamodule (package docstring).

    Args:
        root: the folder `scripts/fetch_scenes.py` filled (``data/scenes``).
        scenes: which scenes (names in `SCENES`); they must share a sensor's band names.
        band_names: the bands, in order (``all``: every imaging band of the sensor, each resampled
            bilinearly to `res`); ``bands`` must count them.
        res: metres per pixel in each scene's own CRS (null: the sensor's, 10 m for Sentinel-2 and
            30 m for Landsat 8).
        mean, std, nodata, max_nodata_fraction: as `GeoTiffDataModule` (statistics pooled over every
            scene's files; nodata 0 is L1C's and Landsat Level-1's fill value).
        grid_seed: the fixed order of the validation grid (not the run seed: every run validates on
            the same chips).
        Others: `GeoTiffDataModule`'s.

    A scene folder that is missing raises `ScenesMissingError` with the fetch command.
    """

    cache_prefix = "scenes"

    def __init__(
        self,
        root: str,
        scenes: Sequence[str] = ("s2_brandenburg", "s2_virginia"),
        band_names: str | Sequence[str] = ("B02", "B03", "B04", "B08"),
        bands: int = 4,
        chip_size: int = 32,
        batch_size: int = 64,
        train_size: int = 3200,
        val_size: int = 1024,
        res: float | None = None,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        nodata: float | None = 0,
        max_nodata_fraction: float = 0.5,
        num_workers: int = 0,
        split: str = "random",
        heldout_zoom: int = 14,
        heldout_fraction: float = 0.25,
        heldout_seed: int = 0,
        cache: bool = True,
        cache_dir: str | None = None,
        seed: int = 0,
        grid_seed: int = 0,
        cache_max_age_days: float | None = None,
        eval_sets: str = "val",
        tune_heldout_fraction: float = 0.0,
    ) -> None:
        self.init_split(
            batch_size=batch_size,
            train_size=train_size,
            val_size=val_size,
            num_workers=num_workers,
            split=split,
            heldout_zoom=heldout_zoom,
            heldout_fraction=heldout_fraction,
            heldout_seed=heldout_seed,
            eval_sets=eval_sets,
            tune_heldout_fraction=tune_heldout_fraction,
        )
        if not 0 <= max_nodata_fraction <= 1:
            raise ValueError(f"data.max_nodata_fraction={max_nodata_fraction!r} must be in [0, 1]")
        names = check_names([scenes] if isinstance(scenes, str) else scenes)
        if not names:
            raise ValueError(f"data.scenes is empty: name one or more of {list(SCENES)}")
        self.scene_names = names
        root = require_scenes(root, names)
        self.band_names = resolve_band_names(band_names, names)
        if len(self.band_names) != bands:
            raise ValueError(
                f"data.band_names={self.band_names} must name data.bands={bands} bands "
                f"(set data.bands={len(self.band_names)})"
            )
        folders = [str(Path(root) / n) for n in names]
        self.rasters = [
            SCENE_DATASETS[n](paths=[f], bands=self.band_names, **({} if res is None else {"res": res}))
            for n, f in zip(names, folders, strict=True)
        ]
        for raster in self.rasters:
            check_chip_size(raster, chip_size)
        self.rois = [shapely.box(*common_bounds(r)) for r in self.rasters]
        self.check_heldout_blocks(chip_size)  # before the band statistics read the files
        makers = make_chip_makers(self.rasters, mean, std, nodata, max_nodata_fraction)
        # GeoDataModule keeps the plumbing (batch size, length, workers; it sets `dataset` to None);
        # `paths` names the folders in errors. Its own dataset_class is never called: setup is ours.
        super(GeoTiffDataModule, self).__init__(
            SceneChips,
            batch_size=batch_size,
            patch_size=chip_size,
            length=train_size,
            num_workers=num_workers,
            paths=folders,
        )
        self.dataset = SceneChips([RasterChips(r, c) for r, c in zip(self.rasters, makers, strict=True)])
        self.grid_seed = int(grid_seed)
        self.init_chips(bands, chip_size, cache, cache_dir, seed, cache_max_age_days)

    def check_heldout_blocks(self, chip_size: int) -> None:
        """ValueError if a chip is not narrower than a held-out tile (a chip could then lie wholly in
        no tile, and its corners no longer say which tiles it touches)."""
        if self.region is None:
            return
        for name, raster, roi in zip(self.scene_names, self.rasters, self.rois, strict=True):
            chip_m = chip_size * max(raster.res)
            xmin, ymin, xmax, ymax = roi.bounds
            to_lonlat = Transformer.from_crs(raster.crs, "EPSG:4326", always_xy=True)
            lat = float(
                np.abs(to_lonlat.transform([xmin, xmax, xmin, xmax], [ymin, ymin, ymax, ymax])[1]).max()
            )
            tile_m = tile_width_m(self.region.zoom, lat)  # at the scene's poleward edge: narrowest
            if chip_m >= tile_m:
                finest = max(z for z in range(MAX_ZOOM + 1) if tile_width_m(z, lat) > chip_m)
                raise ValueError(
                    f"data.heldout_zoom={self.region.zoom}: held-out tiles are ~{tile_m:.0f} m wide at "
                    f"{name}, not wider than a chip ({chip_m:.0f} m); use heldout_zoom <= {finest}"
                )

    @property
    def times(self) -> bool:
        """Whether batches carry ``time`` (some scene is dated; undated ones get zeros)."""
        return self.dataset.times

    def random_footprints(self, length: int, generator: torch.Generator | None = None) -> SceneRandomSampler:
        return SceneRandomSampler(self.rasters, self.rois, self.chip_size, length, generator)

    def grid_footprints(self) -> SceneGridSampler:
        return SceneGridSampler(self.rasters, self.rois, self.chip_size, self.grid_seed)

    def filtered(
        self, footprints: Sampler[SceneQuery], name: str, length: int | None = None
    ) -> LocationFilteredSampler:
        return WholeFootprintSampler(footprints, self.dataset, self.set_filter(name), length=length)

    def source_settings(self) -> dict[str, Any]:
        sources = [p for raster in self.rasters for band in band_sources(raster)[1] for p, _ in band]
        return {
            "files": file_fingerprints(sources),
            "dataset": {n: type(r).__qualname__ for n, r in zip(self.scene_names, self.rasters, strict=True)},
            "bands": self.band_names,
            "crs": [r.crs.to_wkt() for r in self.rasters],
            "res": [list(r.res) for r in self.rasters],
            "grid_seed": self.grid_seed,
        }
