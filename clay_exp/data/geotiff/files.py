"""Files and dates: which GeoTIFFs a folder holds, that each can be placed on Earth, where each band
of a TorchGeo dataset lives, the nodata values the files declare, and the acquisition time a query's
time slice carries.

The TorchGeo query type `GeoSlice` (TorchGeo 0.8.1: ``(slice x, slice y, slice t)``) is named here,
once, for the whole package.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import pandas as pd
import rasterio
import torch
from rasterio.crs import CRS
from torch import Tensor
from torchgeo.datasets import RasterDataset

from clay_exp.data.time import clay_v1_time

#: The CRS that files in different CRSs are warped to (valid worldwide up to ±85°).
COMMON_CRS = "EPSG:3857"
#: A TorchGeo 0.8.1 query: (slice x, slice y, slice t) in the dataset's CRS.
GeoSlice = tuple[slice, slice, slice]


def find_geotiffs(paths: str | Path | Sequence[str | Path], filename_glob: str = "*.tif") -> list[Path]:
    """Every file matching `filename_glob` below the folders in `paths` (or the files themselves).

    Raises ValueError for a path that does not exist or when no file matches.
    """
    paths = [paths] if isinstance(paths, str | Path) else list(paths)
    if not paths:
        raise ValueError("data.paths is empty: give a folder of GeoTIFFs or a list of files/folders")
    files: set[Path] = set()
    for path in map(Path, paths):
        if path.is_dir():
            files |= {p for p in path.rglob(filename_glob) if p.is_file()}
        elif path.is_file():
            files.add(path)
        else:
            raise ValueError(
                f"data.paths: {path} does not exist "
                "(for the demo rasters run python scripts/make_demo_geotiffs.py)"
            )
    if not files:
        raise ValueError(
            f"data.paths: no file matching {filename_glob!r} in {[str(p) for p in paths]} "
            "(data.filename_glob sets the pattern)"
        )
    return sorted(files)


def check_geotiff(path: Path, band_indexes: Sequence[int]) -> CRS:
    """The file's CRS, after checking it has one and has every configured band (ValueError otherwise)."""
    try:
        with rasterio.open(path) as src:
            crs, count = src.crs, src.count
    except rasterio.errors.RasterioIOError as error:
        raise ValueError(f"{path}: not a raster rasterio can read ({error})") from error
    if crs is None:
        raise ValueError(
            f"{path}: has no CRS (coordinate reference system), so its chips cannot be placed on Earth; "
            "georeference it (e.g. gdal_edit.py -a_srs EPSG:32632 -a_ullr ...)"
        )
    if max(band_indexes) > count:
        raise ValueError(
            f"{path}: has {count} band(s), fewer than configured: data.bands / data.band_indexes asks for "
            f"bands {list(band_indexes)} (1-based)"
        )
    return crs


def check_chip_size(raster: RasterDataset, chip_size: int) -> None:
    """ValueError naming every raster smaller than a chip at the dataset's resolution."""
    xres, yres = raster.res
    for path, geometry in zip(raster.index.filepath, raster.index.geometry, strict=True):
        xmin, ymin, xmax, ymax = geometry.bounds
        width, height = (xmax - xmin) / xres, (ymax - ymin) / yres
        if width < chip_size or height < chip_size:
            raise ValueError(
                f"{path}: {width:.0f} x {height:.0f} pixels at the dataset's resolution {raster.res} "
                f"({raster.crs.to_string()}), smaller than data.chip_size={chip_size}"
            )


#: Where one band of the dataset lives in one file: (path, 1-based band in that file).
BandSource = tuple[str, int]


def band_sources(raster: RasterDataset) -> tuple[list[str], list[list[BandSource]]]:
    """The dataset's band labels and, per band, the (file, band index) pairs that hold it.

    One multi-band file per scene (``separate_files=False``): the dataset's `band_indexes` (all of a
    file's bands when None); one file per band (Sentinel-2's ``separate_files=True``): band 1 of the
    file TorchGeo's own `_update_filepath` names for that band.
    """
    files = [str(f) for f in raster.index.filepath]
    if raster.separate_files:
        labels = [str(b) for b in raster.bands]
        return labels, [[(raster._update_filepath(b, f), 1) for f in files] for b in raster.bands]
    indexes = getattr(raster, "band_indexes", None)
    if indexes is None:
        with rasterio.open(files[0]) as src:
            indexes = list(range(1, src.count + 1))
    names = list(raster.all_bands or [])
    labels = [names[i - 1] if i - 1 < len(names) else f"band {i}" for i in indexes]
    return labels, [[(f, int(i)) for f in files] for i in indexes]


def declared_nodata(sources: Sequence[Sequence[BandSource]]) -> list[float]:
    """Every nodata value the files declare (NaN is always nodata and not listed)."""
    values: set[float] = set()
    for path in sorted({p for band in sources for p, _ in band}):
        with rasterio.open(path) as src:
            values |= {float(v) for v in src.nodatavals if v is not None and math.isfinite(v)}
    return sorted(values)


def acquisition_time(interval: slice) -> Tensor | None:
    """Clay v1's time features (4,) of a query's time slice, None when it carries no time.

    TorchGeo gives an undated file the interval (Timestamp.min, Timestamp.max): no time. A dated
    file's interval spans its name's precision: under an hour (e.g. Sentinel-2's ``%Y%m%dT%H%M%S``)
    its start gives the week and hour; a day or longer (a date without a time) the middle's week
    and 12 h, as Clay v1 does for a date without a time.
    """
    start, stop = pd.Timestamp(interval.start), pd.Timestamp(interval.stop)
    if start <= pd.Timestamp.min or stop >= pd.Timestamp.max:
        return None
    if stop - start < pd.Timedelta(hours=1):
        moment, hour = start, start.hour
    else:
        moment, hour = start + (stop - start) / 2, 12
    week = moment.isocalendar()[1]
    return clay_v1_time(torch.tensor([week]), torch.tensor([hour]))[0]


def has_times(raster: RasterDataset) -> bool:
    """Whether every file of the dataset has an acquisition time (a dated interval in the index)."""
    return all(iv.left > pd.Timestamp.min and iv.right < pd.Timestamp.max for iv in raster.index.index)
