"""`data=geotiff`: a folder of GeoTIFFs (one's own Sentinel-2 chips, or the demo rasters) through TorchGeo.

All TorchGeo-facing code lives in this module (~790 lines on purpose, the one module over 400 that
is: a TorchGeo upgrade is then one file's work; the chip cache, which does not touch TorchGeo, is
`clay_exp.data.chip_cache`): it is written against TorchGeo 0.8.1, whose samples are
``{'image', 'crs', 'bounds': (slice x, slice y, slice t)}`` and whose samplers are
`RandomGeoSampler` / `GridGeoSampler` (0.9+ changed both). The one other module that touches
TorchGeo builds on this one: `clay_exp.data.scenes` (``data=scenes``: two small `RasterDataset`
subclasses, and samplers over several scenes in their own CRSs, through the hooks
`random_footprints` / `grid_footprints` / `filtered` of `GeoTiffDataModule`).

* `GeoTiffFolder` (a `RasterDataset`): every ``*.tif`` below ``paths``, in any CRS (TorchGeo warps
  them to one: the files' CRS if they share one, else web mercator, EPSG:3857), bands picked by
  1-based index. Each sample gets ``lat``/``lon``: its footprint's centre reprojected to EPSG:4326
  with pyproj, so every encoding works unchanged; the image is normalised per band with configured
  or computed statistics.
* `GeoTiffDataModule` (a `GeoDataModule`): `RandomGeoSampler` chips for training, `GridGeoSampler`
  chips for validation; with ``split=region`` the chips are filtered by their centre's tile.

* Any other TorchGeo `RasterDataset` subclass by ``data.dataset._target_`` (e.g.
  ``torchgeo.datasets.Sentinel2`` with ``data.dataset.bands=[B02,B03,B04,B08]``; its
  ``filename_glob`` / ``filename_regex`` / ``date_format`` may be overridden there): `RasterChips`
  adds the same normalisation, nodata fill and lat/lon to its samples (`make_raster_dataset`).
* Where the files' names give acquisition times (TorchGeo's ``date`` regex group: the index, and so
  every query's ``slice t``, is the file's time interval), samples carry ``time``: Clay v1's
  ``[sin w, cos w, sin h, cos h]`` of the ISO week and hour (`acquisition_time`); where no file is
  dated, no ``time`` key (the model then fills zeros).
* **Nodata**: a pixel value is nodata when it is NaN/inf, equals a file's declared nodata, or equals
  ``data.nodata``. After normalisation it is filled with 0 (the band mean), so it adds nothing to
  the batch statistics and cannot make the loss NaN. A chip with more than ``max_nodata_fraction``
  of nodata values is skipped when chips are cached, and counted (with a warning) when read live.
  Band statistics computed from the files ignore nodata; a band with no valid pixel in a file or
  non-finite statistics raise a ValueError naming the file and the band.
* **Chip cache** (``data.cache=true``): the training and validation chips are read once and kept as
  memory-mapped ``.npy`` arrays (`clay_exp.data.chip_cache`), keyed by the files and every setting
  that shapes a chip; see `GeoTiffDataModule`.

Batches are the project's dict: ``image`` (B, C, H, W) float32, ``lat``/``lon`` (B,) float64 degrees,
optionally ``time`` (B, 4) float32 (TorchGeo's ``crs``/``bounds`` lists are dropped on the way to the
device, as in TorchGeo).
"""

from __future__ import annotations

import logging
import math
import time as timer
from collections.abc import Iterator, Mapping, Sequence
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import rasterio
import torch
from hydra.utils import get_class
from pyproj import Transformer
from rasterio.crs import CRS
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Sampler, SequentialSampler
from torchgeo.datamodules import GeoDataModule
from torchgeo.datasets import RasterDataset, stack_samples
from torchgeo.samplers import GridGeoSampler, RandomGeoSampler

from clay_exp.data.base import SplitDataModule
from clay_exp.data.chip_cache import CachedChips, ChipCache, file_fingerprints
from clay_exp.data.datamodule import EpochShuffleSampler, passthrough_collate
from clay_exp.data.splits import TUNE_SET, LocationFilter
from clay_exp.models.injection import clay_v1_time

log = logging.getLogger(__name__)
# rasterio.merge logs at INFO for every source a chip only touches: noise in every run's log.
logging.getLogger("rasterio.merge").setLevel(logging.WARNING)

#: The CRS that files in different CRSs are warped to (valid worldwide up to ±85°).
COMMON_CRS = "EPSG:3857"
GeoSlice = tuple[slice, slice, slice]
#: RasterDataset class attributes that ``data.dataset`` may override (e.g. a filename pattern).
CLASS_ATTRIBUTES = ("filename_glob", "filename_regex", "date_format", "separate_files", "all_bands")
#: A chip set may draw at most this many random footprints per chip it keeps (nodata, region split).
MAX_DRAWS_PER_CHIP = 50


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


# -- bands, nodata, statistics ----------------------------------------------------------------------
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


def compute_band_stats(
    sources: Sequence[Sequence[BandSource]],
    labels: Sequence[str],
    nodata: Sequence[float] = (),
    max_side: int = 512,
) -> tuple[list[float], list[float]]:
    """Per-band mean and standard deviation over the valid pixels of every file (each read at most
    max_side² pixels): values that are NaN/inf, a declared nodata or in `nodata` are left out.

    ValueError naming the file and band when a band of a file has no valid pixel, and naming the band
    when its statistics come out non-finite.
    """
    mean, std = [], []
    for label, band in zip(labels, sources, strict=True):
        total = total_sq = 0.0
        count = 0
        for path, index in band:
            with rasterio.open(path) as src:
                scale = max(1, int(np.ceil(max(src.width, src.height) / max_side)))
                shape = (max(1, src.height // scale), max(1, src.width // scale))
                data = src.read(index, out_shape=shape, masked=True)
            values = np.ma.getdata(data).astype(np.float64)
            valid = ~np.ma.getmaskarray(data) & np.isfinite(values)
            for value in nodata:
                valid &= values != value
            if not valid.any():
                raise ValueError(
                    f"{path}: band {label} (band {index} of the file) has no valid pixel (all NaN, inf "
                    "or nodata), so no band statistics can be computed from it: drop the file or give "
                    "data.mean / data.std"
                )
            values = values[valid]
            with np.errstate(over="ignore"):  # an overflow gives inf: refused below, naming the band
                total += float(values.sum())
                total_sq += float((values**2).sum())
            count += values.size
        m = total / count
        sd = math.sqrt(max(total_sq / count - m * m, 0.0))
        if not (math.isfinite(m) and math.isfinite(sd)):
            raise ValueError(
                f"band {label}: non-finite statistics (mean={m}, std={sd}) from {[p for p, _ in band]}"
            )
        mean.append(m)
        std.append(max(sd, 1e-6))
    return mean, std


def check_stats(name: str, values: Sequence[float], labels: Sequence[str]) -> list[float]:
    """The configured per-band `values` as floats; ValueError for a wrong count or a non-finite value."""
    values = [float(v) for v in values]
    if len(values) != len(labels):
        raise ValueError(f"data.{name}={values} needs one value per band ({len(labels)}: {list(labels)})")
    for label, value in zip(labels, values, strict=True):
        if not math.isfinite(value) or (name == "std" and value <= 0):
            raise ValueError(
                f"data.{name}: band {label} has {value}, not a finite{' positive' * (name == 'std')} number"
            )
    return values


# -- time -------------------------------------------------------------------------------------------
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


# -- from TorchGeo samples to the project's chips ---------------------------------------------------
class ChipMaker:
    """What the project adds to a TorchGeo sample: nodata fill, normalisation, lat/lon and time.

    Args:
        crs: the dataset's CRS (queries' coordinates).
        mean, std: per-band normalisation.
        nodata: values that mean "no data" besides NaN/inf.
        times: whether to add ``time`` (every file dated).
        max_nodata_fraction: chips above it are counted (and skipped when cached).
    """

    def __init__(
        self,
        crs: CRS,
        mean: Sequence[float],
        std: Sequence[float],
        nodata: Sequence[float] = (),
        times: bool = False,
        max_nodata_fraction: float = 0.5,
    ) -> None:
        self.mean = torch.tensor(list(mean), dtype=torch.float32)[:, None, None]
        self.std = torch.tensor(list(std), dtype=torch.float32)[:, None, None]
        self.nodata, self.times = [float(v) for v in nodata], bool(times)
        self.max_nodata_fraction = float(max_nodata_fraction)
        self.to_lonlat = Transformer.from_crs(crs, "EPSG:4326", always_xy=True)
        self.chips_over_nodata = 0  # in this process (each DataLoader worker counts its own)

    def centres(self, queries: Sequence[GeoSlice]) -> tuple[Tensor, Tensor]:
        """Latitude and longitude (float64 degrees) of the footprint centres of `queries`."""
        x = np.array([(q[0].start + q[0].stop) / 2 for q in queries], dtype=np.float64)
        y = np.array([(q[1].start + q[1].stop) / 2 for q in queries], dtype=np.float64)
        lon, lat = self.to_lonlat.transform(x, y)
        return torch.as_tensor(np.asarray(lat, np.float64)), torch.as_tensor(np.asarray(lon, np.float64))

    def __call__(self, sample: dict[str, Any], query: GeoSlice) -> dict[str, Any]:
        image = sample["image"].float()
        invalid = ~torch.isfinite(image)
        for value in self.nodata:
            invalid |= image == value
        image = ((image - self.mean) / self.std).masked_fill_(invalid, 0.0)
        fraction = float(invalid.float().mean())
        if fraction > self.max_nodata_fraction:
            self.chips_over_nodata += 1
            if self.chips_over_nodata in (1, 10, 100, 1000):
                log.warning(
                    "%d chip(s) so far with more than data.max_nodata_fraction=%s nodata (the latest: "
                    "%.0f %%), filled with the band means; data.cache=true skips them",
                    self.chips_over_nodata, self.max_nodata_fraction, 100 * fraction,
                )  # fmt: skip
        lat, lon = self.centres([query])
        sample |= {"image": image, "lat": lat[0], "lon": lon[0], "nodata_fraction": fraction}
        if self.times:
            t = acquisition_time(query[2])
            if t is not None:
                sample["time"] = t
        return sample


class ChipStatistics:
    """The band statistics (`mean`, `std`) of a dataset that makes its chips with ``self.chips``."""

    chips: ChipMaker

    @property
    def mean(self) -> Tensor:
        return self.chips.mean

    @property
    def std(self) -> Tensor:
        return self.chips.std


class GeoTiffFolder(ChipStatistics, RasterDataset):
    """A folder of GeoTIFFs as a TorchGeo `RasterDataset` whose samples carry lat/lon (module docstring).

    Args:
        paths: a folder (searched recursively), a file, or a list of them.
        band_indexes: 1-based band numbers to read, in order.
        chip_size: chips are this many pixels square; every raster must be at least that large.
        filename_glob: which files count.
        crs: CRS to warp to (e.g. ``EPSG:32632``); None: the files' CRS if shared, else EPSG:3857.
        res: resolution in units of that CRS; None: the first file's (TorchGeo's default).
        mean, std: per-band normalisation; None: computed from the files (nodata left out).
        nodata: a value meaning "no data" in every file, besides NaN and the files' declared nodata.
        max_nodata_fraction: see `ChipMaker`.
    """

    def __init__(
        self,
        paths: str | Path | Sequence[str | Path],
        band_indexes: Sequence[int],
        chip_size: int,
        filename_glob: str = "*.tif",
        crs: str | None = None,
        res: float | None = None,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        nodata: float | None = None,
        max_nodata_fraction: float = 0.5,
    ) -> None:
        band_indexes = [int(b) for b in band_indexes]
        if not band_indexes or min(band_indexes) < 1:
            raise ValueError(f"data.band_indexes={band_indexes} must be 1-based band numbers")
        self.filename_glob = filename_glob
        files = find_geotiffs(paths, filename_glob)
        crss = {check_geotiff(f, band_indexes) for f in files}
        if crs is None:
            target = next(iter(crss)) if len(crss) == 1 else CRS.from_user_input(COMMON_CRS)
            if len(crss) > 1:
                log.info("GeoTIFFs in %d CRSs; warping them to %s", len(crss), COMMON_CRS)
        else:
            target = CRS.from_user_input(crs)
        # RasterDataset selects bands by name from `all_bands`; name them by their 1-based index.
        self.all_bands = tuple(f"B{i}" for i in range(1, max(band_indexes) + 1))
        super().__init__(
            paths=[str(f) for f in files], crs=target, res=res, bands=[f"B{i}" for i in band_indexes]
        )
        self.check_chip_size(chip_size)
        self.chips = make_chip_maker(self, mean, std, nodata, max_nodata_fraction)

    def check_chip_size(self, chip_size: int) -> None:
        check_chip_size(self, chip_size)

    def centres(self, queries: Sequence[GeoSlice]) -> tuple[Tensor, Tensor]:
        """Latitude and longitude (float64 degrees) of the footprint centres of `queries`."""
        return self.chips.centres(queries)

    def __getitem__(self, query: GeoSlice) -> dict[str, Any]:
        return self.chips(super().__getitem__(query), query)


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


def make_chip_maker(
    raster: RasterDataset,
    mean: Sequence[float] | None,
    std: Sequence[float] | None,
    nodata: float | None,
    max_nodata_fraction: float,
) -> ChipMaker:
    """The `ChipMaker` of a dataset: nodata values from the files (+ `nodata`), statistics configured
    (checked) or computed from the files without nodata, times where every file is dated."""
    return make_chip_makers([raster], mean, std, nodata, max_nodata_fraction)[0]


def make_chip_makers(
    rasters: Sequence[RasterDataset],
    mean: Sequence[float] | None,
    std: Sequence[float] | None,
    nodata: float | None,
    max_nodata_fraction: float,
) -> list[ChipMaker]:
    """One `ChipMaker` per dataset (each in its own CRS, with its own times) sharing one normalisation:
    `make_chip_maker` with statistics and nodata values pooled over every dataset's files. The
    datasets must name the same bands."""
    labels, sources = band_sources(rasters[0])
    for raster in rasters[1:]:
        other, more = band_sources(raster)
        if other != labels:
            raise ValueError(f"datasets with different bands cannot share chips: {labels} and {other}")
        sources = [a + b for a, b in zip(sources, more, strict=True)]
    values = declared_nodata(sources) + ([] if nodata is None else [float(nodata)])
    if mean is not None:
        mean = check_stats("mean", mean, labels)
    if std is not None:
        std = check_stats("std", std, labels)
    if mean is None or std is None:
        computed_mean, computed_std = compute_band_stats(sources, labels, values)
        mean = computed_mean if mean is None else mean
        std = computed_std if std is None else std
        log.info("GeoTIFF band statistics: mean=%s std=%s", mean, std)
    if values:
        log.info("GeoTIFF nodata values %s (and NaN) are filled with the band mean", values)
    return [ChipMaker(r.crs, mean, std, values, has_times(r), max_nodata_fraction) for r in rasters]


class RasterChips(ChipStatistics, Dataset):
    """Any TorchGeo `RasterDataset` with the project's chips (`ChipMaker`): index it with a query."""

    def __init__(self, raster: RasterDataset, chips: ChipMaker) -> None:
        self.raster, self.chips = raster, chips

    def centres(self, queries: Sequence[GeoSlice]) -> tuple[Tensor, Tensor]:
        return self.chips.centres(queries)

    def __getitem__(self, query: GeoSlice) -> dict[str, Any]:
        return self.chips(self.raster[query], query)


def raster_class(target: str | type) -> type[RasterDataset]:
    """The class `target` names (``module.Class``), checked to be a TorchGeo `RasterDataset`."""
    cls = get_class(target) if isinstance(target, str) else target
    if not (isinstance(cls, type) and issubclass(cls, RasterDataset)):
        raise ValueError(f"data.dataset._target_={target!r} is not a TorchGeo RasterDataset subclass")
    return cls


def make_raster_dataset(
    spec: Mapping[str, Any], paths: Sequence[str], crs: str | None, res: float | None
) -> RasterDataset:
    """A TorchGeo `RasterDataset` from ``data.dataset``: ``_target_`` the class, `CLASS_ATTRIBUTES`
    (when not null) override the class's, every other non-null key is a constructor argument
    (e.g. ``bands``); `paths`, `crs` and `res` come from ``data.*`` (null: the class's default)."""
    spec = dict(spec)
    cls = raster_class(spec.pop("_target_"))
    overrides = {k: spec.pop(k) for k in CLASS_ATTRIBUTES if k in spec and spec[k] is not None}
    if "all_bands" in overrides:
        overrides["all_bands"] = tuple(overrides["all_bands"])
    if overrides:
        cls = type(cls.__name__, (cls,), overrides)
    kwargs = {k: list(v) if isinstance(v, Sequence) and not isinstance(v, str) else v
              for k, v in spec.items() if v is not None and not k.startswith("_")}  # fmt: skip
    if crs is not None:
        kwargs["crs"] = CRS.from_user_input(crs)
    if res is not None:
        kwargs["res"] = res
    for path in paths:
        if not Path(path).exists():
            raise ValueError(f"data.paths: {path} does not exist")
    try:
        return cls(paths=list(paths), **kwargs)
    except Exception as error:  # DatasetNotFoundError, a bad band name (AssertionError), ...
        raise ValueError(
            f"data.dataset: {cls.__name__}(paths={list(paths)}, {kwargs}) failed: {error} "
            f"(its filename_glob {getattr(cls, 'filename_glob', None)!r} and filename_regex select the files)"
        ) from error


# -- samplers ---------------------------------------------------------------------------------------
class LocationFilteredSampler(Sampler[GeoSlice]):
    """The queries of a TorchGeo sampler whose footprint centre passes `keep` (all when None).

    ``length=None``: one pass over a finite sampler (the grid), kept queries only. An int: exactly
    that many kept queries, drawing from the (random) sampler again as often as needed.
    """

    def __init__(
        self,
        sampler: Sampler[GeoSlice],
        dataset: Any,
        keep: LocationFilter | None,
        length: int | None = None,
        chunk: int = 256,
    ) -> None:
        self.sampler, self.dataset, self.keep, self.chunk = sampler, dataset, keep, chunk
        self.kept: list[GeoSlice] | None = None
        if length is None:
            self.kept = [q for batch in self._chunks(iter(sampler)) for q in self._filter(batch)]
        self.length = len(self.kept) if self.kept is not None else int(length)

    def _chunks(self, it: Iterator[GeoSlice]) -> Iterator[list[GeoSlice]]:
        while batch := list(islice(it, self.chunk)):
            yield batch

    def _filter(self, queries: list[GeoSlice]) -> list[GeoSlice]:
        if self.keep is None:
            return queries
        mask = self.keep(*self.dataset.centres(queries)).tolist()
        return [q for q, ok in zip(queries, mask, strict=True) if ok]

    def __iter__(self) -> Iterator[GeoSlice]:
        if self.kept is not None:
            yield from self.kept
            return
        produced = drawn = 0
        while produced < self.length:
            for batch in self._chunks(iter(self.sampler)):
                drawn += len(batch)
                for query in self._filter(batch)[: self.length - produced]:
                    produced += 1
                    yield query
                if produced >= self.length:
                    return
            if produced == 0 and drawn >= 100 * self.length:
                raise ValueError(f"no random chip passes the location filter in {drawn} draws")

    def __len__(self) -> int:
        return self.length


# -- the datamodule ---------------------------------------------------------------------------------
class GeoTiffDataModule(SplitDataModule, GeoDataModule):
    """TorchGeo-style datamodule over GeoTIFFs: random chips to train, grid chips to validate.

    Args:
        paths, band_indexes, filename_glob, crs, res, mean, std, nodata, max_nodata_fraction: see
            `GeoTiffFolder` (``band_indexes=None``: bands 1..``bands``).
        dataset: ``{_target_: <RasterDataset subclass>, bands: [...], ...}`` to read the files with
            another TorchGeo dataset (`make_raster_dataset`); None or `GeoTiffFolder`: the generic one.
        bands, chip_size: the chip shape, shared with the model config.
        batch_size: chips per batch.
        train_size: random chips per training epoch (`RandomGeoSampler`'s length).
        val_size: at most this many grid chips per validation set (`GridGeoSampler`, stride = chip).
        num_workers: DataLoader workers (reading live, or building the cache).
        split, heldout_zoom, heldout_fraction, heldout_seed: see `WorldDataModule`; here a chip
            belongs to a tile by its footprint's centre.
        cache: extract the chips once into `cache_dir` and read them from there (`ChipCache`): the
            training set is then ``train_size`` random footprints drawn once with `seed` (nodata
            chips skipped), shuffled anew each epoch; the validation sets the first ``val_size``
            grid chips. Rebuilt when a file (path, size, mtime) or any setting that shapes a chip
            changes.
        cache_dir: where cache folders go (``<cache_dir>/geotiff-<key>/``).
        seed: draws the cached training footprints and shuffles them.
        cache_max_age_days: other ``geotiff-<key>`` cache folders unused for this many days are
            removed when the cache is opened (None: kept until deleted by hand).

    The dataset is built (and the files checked) at construction, so bad input fails at once. The
    split plumbing (size checks, val sets, `val_dataloader`) comes from `SplitDataModule`, which
    precedes TorchGeo's `GeoDataModule` in the bases; the live dataloaders are TorchGeo's.
    """

    #: Cache folders are ``<cache_dir>/<cache_prefix>-<key>/``.
    cache_prefix = "geotiff"
    #: Tuning chips (stage=tune): grid chips of the seen tiles that `val` never reads, and held-out
    #: tiles of their own (`grid_sampler`); training footprints overlap them as they overlap `val`.
    serves_tune_sets = True

    def __init__(
        self,
        paths: str | Sequence[str],
        bands: int = 4,
        chip_size: int = 32,
        batch_size: int = 64,
        train_size: int = 3200,
        val_size: int = 1024,
        band_indexes: Sequence[int] | None = None,
        filename_glob: str = "*.tif",
        crs: str | None = None,
        res: float | None = None,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        nodata: float | None = None,
        max_nodata_fraction: float = 0.5,
        dataset: Mapping[str, Any] | None = None,
        num_workers: int = 0,
        split: str = "random",
        heldout_zoom: int = 3,
        heldout_fraction: float = 0.25,
        heldout_seed: int = 0,
        cache: bool = False,
        cache_dir: str | None = None,
        seed: int = 0,
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
        paths = [str(paths)] if isinstance(paths, str | Path) else [str(p) for p in paths]
        spec = None if dataset is None else _plain(dataset)
        generic = spec is None or spec.get("_target_") in (None, GeoTiffFolder, _qualname(GeoTiffFolder))
        if generic:
            band_indexes = (
                list(range(1, bands + 1)) if band_indexes is None else [int(b) for b in band_indexes]
            )
            if len(band_indexes) != bands:
                raise ValueError(f"data.band_indexes={band_indexes} must name data.bands={bands} bands")
            glob = (spec or {}).get("filename_glob") or filename_glob
        super().__init__(
            GeoTiffFolder,
            batch_size=batch_size,
            patch_size=chip_size,
            length=train_size,
            num_workers=num_workers,
            paths=paths,
            chip_size=chip_size,
            crs=crs,
            res=res,
            mean=None if mean is None else list(mean),
            std=None if std is None else list(std),
            nodata=nodata,
            max_nodata_fraction=max_nodata_fraction,
        )
        if generic:
            self.kwargs |= {"band_indexes": band_indexes, "filename_glob": glob}
            attributes = {k: (spec or {}).get(k) for k in ("filename_regex", "date_format")}
            attributes = {k: v for k, v in attributes.items() if v is not None}
            folder = type("GeoTiffFolder", (GeoTiffFolder,), attributes) if attributes else GeoTiffFolder
            self.dataset = folder(**self.kwargs)
            self.raster: RasterDataset = self.dataset
            self.dataset_spec: dict[str, Any] = {"_target_": _qualname(GeoTiffFolder), **attributes}
        else:
            self.raster = make_raster_dataset(spec, paths, crs, res)
            check_chip_size(self.raster, chip_size)
            if len(self.raster.bands) != bands:
                raise ValueError(
                    f"data.dataset.bands={list(self.raster.bands)} must name data.bands={bands} bands"
                )
            chips = make_chip_maker(self.raster, mean, std, nodata, max_nodata_fraction)
            self.dataset = RasterChips(self.raster, chips)
            self.dataset_spec = {k: v for k, v in spec.items() if v is not None}
        self.init_chips(bands, chip_size, cache, cache_dir, seed, cache_max_age_days)

    def init_chips(
        self,
        bands: int,
        chip_size: int,
        cache: bool,
        cache_dir: str | None,
        seed: int,
        cache_max_age_days: float | None = None,
    ) -> None:
        """The chip shape, the cache settings and the per-set attributes TorchGeo's factory reads."""
        self.bands, self.chip_size = bands, chip_size
        self.cache, self.seed = bool(cache), int(seed)
        self.cache_dir = Path(cache_dir) if cache_dir is not None else Path("data_cache")
        self.cache_max_age_days = cache_max_age_days
        self.cached: dict[str, CachedChips] | None = None
        self.val_heldout_dataset = self.val_heldout_sampler = self.val_heldout_batch_sampler = None
        self.val_heldout_batch_size = None
        self.aug = None  # normalisation happens in the dataset, per band

    @property
    def times(self) -> bool:
        """Whether batches carry ``time`` (every file dated)."""
        return self.dataset.chips.times

    def setup(self, stage: str) -> None:
        if self.cache:
            if self.cached is None:
                self.cached = self.load_or_build_cache()
            return
        self.train_dataset = self.val_dataset = self.val_heldout_dataset = self.dataset
        self.train_sampler = self.filtered(self.random_footprints(self.length), "train", self.length)
        for name in self.val_set_names:
            sampler = self.grid_sampler(name)
            if len(sampler) > self.val_size:
                sampler.kept, sampler.length = sampler.kept[: self.val_size], self.val_size
            setattr(self, f"{name}_sampler", sampler)

    # -- where chips are: the hooks a datamodule over several rasters (clay_exp.data.scenes) overrides
    def random_footprints(self, length: int, generator: torch.Generator | None = None) -> Sampler[GeoSlice]:
        """`length` random chip footprints (TorchGeo's `RandomGeoSampler`)."""
        return RandomGeoSampler(self.raster, self.chip_size, length=length, generator=generator)

    def grid_footprints(self) -> Sampler[GeoSlice]:
        """The chip grid (stride = chip) over the rasters (TorchGeo's `GridGeoSampler`)."""
        return GridGeoSampler(self.raster, self.chip_size, self.chip_size)

    def filtered(
        self, footprints: Sampler[GeoSlice], name: str, length: int | None = None
    ) -> LocationFilteredSampler:
        """The `footprints` set `name` may contain (`LocationFilteredSampler`, by the chip's centre)."""
        return LocationFilteredSampler(footprints, self.dataset, self.set_filter(name), length=length)

    def grid_sampler(self, name: str) -> LocationFilteredSampler:
        """Every grid chip (stride = chip) that belongs to val set `name`; ValueError if none.

        ``tune`` (a tuning trial's seen-region set, stage=tune) reads the seen grid chips from the
        back of the order ``val`` reads from the front, the second half only: no chip of one is a
        chip of the other while ``val`` keeps to the first half (ValueError when the seen grid has
        fewer than 2 x ``val_size`` chips). ``tune_heldout`` and ``val_heldout`` lie in different
        held-out tiles (`clay_exp.data.splits.RegionSplit`)."""
        sampler = self.filtered(self.grid_footprints(), name)
        if name == TUNE_SET:
            half = len(sampler.kept) // 2
            if half < self.val_size:
                raise ValueError(
                    f"data.eval_sets=tune: the seen tiles hold {len(sampler.kept)} grid chips, fewer than "
                    f"2 x data.val_size={self.val_size} (val reads the first half, tune the second): "
                    "lower data.val_size"
                )
            sampler.kept = sampler.kept[half:][::-1]
            sampler.length = len(sampler.kept)
        if len(sampler) == 0:
            raise ValueError(
                f"data.split={'region' if self.region else 'random'}: no {name} chip in "
                f"{self.kwargs['paths']} ({self.region}); the rasters do not reach "
                f"{'the held-out' if name == 'val_heldout' else 'the seen'} tiles: change "
                "data.heldout_zoom / heldout_fraction / heldout_seed"
            )
        return sampler

    # -- the cache ------------------------------------------------------------------------------
    def source_settings(self) -> dict[str, Any]:
        """The files, the dataset class, bands, CRS and resolution, for the cache key."""
        labels, sources = band_sources(self.raster)
        return {
            "files": file_fingerprints(p for band in sources for p, _ in band),
            "dataset": self.dataset_spec,
            "bands": labels,
            "crs": self.raster.crs.to_wkt(),
            "res": list(self.raster.res),
        }

    def cache_settings(self) -> dict[str, Any]:
        """Everything that shapes a cached chip (the cache key hashes it; `ChipCache`)."""
        chips = self.dataset.chips
        return {
            **self.source_settings(),
            "mean": chips.mean.flatten().tolist(),
            "std": chips.std.flatten().tolist(),
            "nodata": chips.nodata,
            "max_nodata_fraction": chips.max_nodata_fraction,
            "times": self.times,
            "chip_size": self.chip_size,
            "train_size": self.length,
            "val_size": self.val_size,
            "split": repr(self.region),
            "val_sets": self.val_set_names,
            "seed": self.seed,
        }

    def load_or_build_cache(self) -> dict[str, CachedChips]:
        cache = ChipCache(
            self.cache_dir,
            self.cache_settings(),
            prefix=self.cache_prefix,
            max_age_days=self.cache_max_age_days,
        )
        sets = cache.load()
        if sets is not None:
            counts = {name: len(chips) for name, chips in sets.items()}
            log.info("chip cache: reusing %s (%s chips)", cache.folder, counts)
            return sets
        log.info("chip cache: building %s (no complete cache with these files and settings)", cache.folder)
        started = timer.perf_counter()
        with torch.random.fork_rng(devices=[]):  # RandomGeoSampler picks tiles with the global RNG
            torch.manual_seed(self.seed)
            generator = torch.Generator().manual_seed(self.seed)
            random_chips = self.random_footprints(10**9, generator)
            draws = self.filtered(random_chips, "train", MAX_DRAWS_PER_CHIP * self.length)
            sets = {"train": (self.length, self.chip_batches("train", draws, self.length))}
            for name in self.val_set_names:
                sets[name] = (self.val_size, self.chip_batches(name, self.grid_sampler(name), self.val_size))
            built = cache.build(sets)
        counts = {name: len(chips) for name, chips in built.items()}
        log.info(
            "chip cache: built %s in %.1f s (%s chips)", cache.folder, timer.perf_counter() - started, counts
        )
        return built

    def chip_batches(self, name: str, sampler: Sampler[GeoSlice], wanted: int) -> Iterator[dict[str, Tensor]]:
        """Batches of up to `wanted` chips read through `sampler`, skipping chips with more than
        ``max_nodata_fraction`` nodata (counted in the log). ValueError if the train set falls short."""
        loader = DataLoader(
            self.dataset, batch_size=self.batch_size, sampler=sampler, num_workers=self.num_workers,
            collate_fn=stack_samples,
        )  # fmt: skip
        kept = skipped = 0
        keys = ["image", "lat", "lon"] + (["time"] if self.times else [])
        limit = self.dataset.chips.max_nodata_fraction
        for batch in loader:
            ok = torch.tensor(batch["nodata_fraction"]) <= limit
            skipped += int((~ok).sum())
            rows = torch.nonzero(ok).flatten()[: wanted - kept]
            kept += len(rows)
            if len(rows):
                yield {k: batch[k][rows] for k in keys}
            if kept >= wanted:
                break
        if skipped:
            log.warning(
                "chip cache: %d %s chip(s) skipped with more than data.max_nodata_fraction=%s nodata",
                skipped, name, limit,
            )  # fmt: skip
        if name == "train" and kept < wanted:
            raise ValueError(
                f"only {kept} of data.train_size={wanted} random chips have at most "
                f"data.max_nodata_fraction={limit} nodata "
                f"(in {MAX_DRAWS_PER_CHIP * wanted} draws): the rasters are mostly nodata"
            )

    def chip_locations(self, name: str) -> tuple[Tensor, Tensor]:
        """Latitude and longitude (float64 degrees) of the chips of set `name` (``train`` or a val set),
        for coverage counts: with the cache on, the cached chips' (building the cache if needed); else
        the footprints of one training epoch or of the validation grid, without reading pixels."""
        if self.cache:
            self.setup("fit")
            arrays = self.cached[name].arrays
            return torch.from_numpy(np.array(arrays["lat"])), torch.from_numpy(np.array(arrays["lon"]))
        if name == "train":
            queries = list(self.filtered(self.random_footprints(self.length), "train", self.length))
        else:
            queries = self.grid_sampler(name).kept[: self.val_size]
        return self.dataset.centres(queries)

    # -- dataloaders ----------------------------------------------------------------------------
    def set_dataloader(self, name: str) -> DataLoader:
        if self.cached is None:
            return self._dataloader_factory(name)  # TorchGeo's: `<name>_dataset` with `<name>_sampler`
        chips = self.cached[name]
        sampler = EpochShuffleSampler(len(chips), self.seed) if name == "train" else SequentialSampler(chips)
        # Reading a memory-mapped batch costs less than handing it over from a worker process.
        return DataLoader(chips, batch_size=self.batch_size, sampler=sampler, collate_fn=passthrough_collate)

    def transfer_batch_to_device(
        self, batch: dict[str, Any], device: torch.device, dataloader_idx: int
    ) -> Any:
        # Only tensors reach the model: TorchGeo's crs/bounds lists and each chip's nodata_fraction
        # stay behind (TorchGeo's own hook deletes crs/bounds, which cached batches do not have).
        batch = {k: v for k, v in batch.items() if torch.is_tensor(v)}
        return super(GeoDataModule, self).transfer_batch_to_device(batch, device, dataloader_idx)

    def on_after_batch_transfer(self, batch: dict[str, Any], dataloader_idx: int) -> dict[str, Any]:
        return batch  # no batch augmentation: the dataset normalised each band already


def _qualname(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def _plain(node: Mapping[str, Any]) -> dict[str, Any]:
    """A config node (DictConfig or dict) as plain Python containers."""
    from omegaconf import DictConfig, OmegaConf

    return OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else dict(node)  # type: ignore[return-value]
