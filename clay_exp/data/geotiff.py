"""`data=geotiff`: a folder of GeoTIFFs (one's own Sentinel-2 chips, or the demo rasters) through TorchGeo.

All TorchGeo-facing code lives in this module: it is written against TorchGeo 0.8.1, whose samples
are ``{'image', 'crs', 'bounds': (slice x, slice y, slice t)}`` and whose samplers are
`RandomGeoSampler` / `GridGeoSampler` (0.9+ changed both).

* `GeoTiffFolder` (a `RasterDataset`): every ``*.tif`` below ``paths``, in any CRS (TorchGeo warps
  them to one: the files' CRS if they share one, else web mercator, EPSG:3857), bands picked by
  1-based index. Each sample gets ``lat``/``lon``: its footprint's centre reprojected to EPSG:4326
  with pyproj, so every encoding works unchanged; the image is normalised per band with configured
  or computed statistics.
* `GeoTiffDataModule` (a `GeoDataModule`): `RandomGeoSampler` chips for training, `GridGeoSampler`
  chips for validation; with ``split=region`` the chips are filtered by their centre's tile.

Batches are the project's dict: ``image`` (B, C, H, W) float32, ``lat``/``lon`` (B,) float64 degrees
(TorchGeo's ``crs``/``bounds`` lists are dropped on the way to the device, as in TorchGeo).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import torch
from pyproj import Transformer
from rasterio.crs import CRS
from torch import Tensor
from torch.utils.data import DataLoader, Sampler
from torchgeo.datamodules import GeoDataModule
from torchgeo.datasets import RasterDataset
from torchgeo.samplers import GridGeoSampler, RandomGeoSampler

from clay_exp.data.base import SplitDataModule
from clay_exp.data.splits import LocationFilter

log = logging.getLogger(__name__)
# rasterio.merge logs at INFO for every source a chip only touches: noise in every run's log.
logging.getLogger("rasterio.merge").setLevel(logging.WARNING)

#: The CRS that files in different CRSs are warped to (valid worldwide up to ±85°).
COMMON_CRS = "EPSG:3857"
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


def compute_band_stats(
    files: Sequence[Path], band_indexes: Sequence[int], max_side: int = 512
) -> tuple[list[float], list[float]]:
    """Per-band mean and standard deviation over every file's valid pixels (read at most max_side²)."""
    total = np.zeros(len(band_indexes))
    total_sq = np.zeros(len(band_indexes))
    count = 0
    for path in files:
        with rasterio.open(path) as src:
            scale = max(1, int(np.ceil(max(src.width, src.height) / max_side)))
            shape = (len(band_indexes), max(1, src.height // scale), max(1, src.width // scale))
            data = src.read(list(band_indexes), out_shape=shape, masked=True).astype(np.float64)
        valid = ~np.ma.getmaskarray(data).any(axis=0)
        values = data.data[:, valid]
        total += values.sum(axis=1)
        total_sq += (values**2).sum(axis=1)
        count += values.shape[1]
    if count == 0:
        raise ValueError(f"no valid pixels in {[str(f) for f in files]} to compute band statistics from")
    mean = total / count
    std = np.sqrt(np.maximum(total_sq / count - mean**2, 0.0))
    return mean.tolist(), np.maximum(std, 1e-6).tolist()


class GeoTiffFolder(RasterDataset):
    """A folder of GeoTIFFs as a TorchGeo `RasterDataset` whose samples carry lat/lon (module docstring).

    Args:
        paths: a folder (searched recursively), a file, or a list of them.
        band_indexes: 1-based band numbers to read, in order.
        chip_size: chips are this many pixels square; every raster must be at least that large.
        filename_glob: which files count.
        crs: CRS to warp to (e.g. ``EPSG:32632``); None: the files' CRS if shared, else EPSG:3857.
        res: resolution in units of that CRS; None: the first file's (TorchGeo's default).
        mean, std: per-band normalisation; None: computed from the files.
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
        for name, stats in (("mean", mean), ("std", std)):
            if stats is not None and len(stats) != len(band_indexes):
                raise ValueError(f"data.{name}={list(stats)} needs one value per band ({len(band_indexes)})")
        if mean is None or std is None:
            computed_mean, computed_std = compute_band_stats(files, band_indexes)
            mean = computed_mean if mean is None else mean
            std = computed_std if std is None else std
            log.info("GeoTIFF band statistics: mean=%s std=%s", mean, std)
        self.mean = torch.tensor(list(mean), dtype=torch.float32)[:, None, None]
        self.std = torch.tensor(list(std), dtype=torch.float32)[:, None, None]
        self.to_lonlat = Transformer.from_crs(self.crs, "EPSG:4326", always_xy=True)

    def check_chip_size(self, chip_size: int) -> None:
        """ValueError naming every raster smaller than a chip at the dataset's resolution."""
        xres, yres = self.res
        for path, geometry in zip(self.index.filepath, self.index.geometry, strict=True):
            xmin, ymin, xmax, ymax = geometry.bounds
            width, height = (xmax - xmin) / xres, (ymax - ymin) / yres
            if width < chip_size or height < chip_size:
                raise ValueError(
                    f"{path}: {width:.0f} x {height:.0f} pixels at the dataset's resolution {self.res} "
                    f"({self.crs.to_string()}), smaller than data.chip_size={chip_size}"
                )

    def centres(self, queries: Sequence[GeoSlice]) -> tuple[Tensor, Tensor]:
        """Latitude and longitude (float64 degrees) of the footprint centres of `queries`."""
        x = np.array([(q[0].start + q[0].stop) / 2 for q in queries], dtype=np.float64)
        y = np.array([(q[1].start + q[1].stop) / 2 for q in queries], dtype=np.float64)
        lon, lat = self.to_lonlat.transform(x, y)
        return torch.as_tensor(np.asarray(lat, np.float64)), torch.as_tensor(np.asarray(lon, np.float64))

    def __getitem__(self, query: GeoSlice) -> dict[str, Any]:
        sample = super().__getitem__(query)
        lat, lon = self.centres([query])
        sample["image"] = (sample["image"] - self.mean) / self.std
        sample["lat"], sample["lon"] = lat[0], lon[0]
        return sample


class LocationFilteredSampler(Sampler[GeoSlice]):
    """The queries of a TorchGeo sampler whose footprint centre passes `keep` (all when None).

    ``length=None``: one pass over a finite sampler (the grid), kept queries only. An int: exactly
    that many kept queries, drawing from the (random) sampler again as often as needed.
    """

    def __init__(
        self,
        sampler: Sampler[GeoSlice],
        dataset: GeoTiffFolder,
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


class GeoTiffDataModule(SplitDataModule, GeoDataModule):
    """TorchGeo-style datamodule over `GeoTiffFolder`: random chips to train, grid chips to validate.

    Args:
        paths, band_indexes, filename_glob, crs, res, mean, std: see `GeoTiffFolder`
            (``band_indexes=None``: bands 1..``bands``).
        bands, chip_size: the chip shape, shared with the model config.
        batch_size: chips per batch.
        train_size: random chips per training epoch (`RandomGeoSampler`'s length).
        val_size: at most this many grid chips per validation set (`GridGeoSampler`, stride = chip).
        num_workers: DataLoader workers.
        split, heldout_zoom, heldout_fraction, heldout_seed: see `WorldDataModule`; here a chip
            belongs to a tile by its footprint's centre.

    The dataset is built (and the files checked) at construction, so bad input fails at once. The
    split plumbing (size checks, val sets, `val_dataloader`) comes from `SplitDataModule`, which
    precedes TorchGeo's `GeoDataModule` in the bases; the dataloaders are TorchGeo's.
    """

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
        num_workers: int = 0,
        split: str = "random",
        heldout_zoom: int = 3,
        heldout_fraction: float = 0.25,
        heldout_seed: int = 0,
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
        )
        band_indexes = list(range(1, bands + 1)) if band_indexes is None else [int(b) for b in band_indexes]
        if len(band_indexes) != bands:
            raise ValueError(f"data.band_indexes={band_indexes} must name data.bands={bands} bands")
        paths = [str(paths)] if isinstance(paths, str | Path) else [str(p) for p in paths]
        super().__init__(
            GeoTiffFolder,
            batch_size=batch_size,
            patch_size=chip_size,
            length=train_size,
            num_workers=num_workers,
            paths=paths,
            band_indexes=band_indexes,
            chip_size=chip_size,
            filename_glob=filename_glob,
            crs=crs,
            res=res,
            mean=None if mean is None else list(mean),
            std=None if std is None else list(std),
        )
        self.bands, self.chip_size = bands, chip_size
        self.dataset = GeoTiffFolder(**self.kwargs)
        self.val_heldout_dataset = self.val_heldout_sampler = self.val_heldout_batch_sampler = None
        self.val_heldout_batch_size = None
        self.aug = None  # normalisation happens in the dataset, per band

    def setup(self, stage: str) -> None:
        self.train_dataset = self.val_dataset = self.val_heldout_dataset = self.dataset
        random_chips = RandomGeoSampler(self.dataset, self.chip_size, length=self.length)
        self.train_sampler = LocationFilteredSampler(
            random_chips, self.dataset, self.set_filter("train"), length=self.length
        )
        for name in self.val_set_names:
            grid = GridGeoSampler(self.dataset, self.chip_size, self.chip_size)
            sampler = LocationFilteredSampler(grid, self.dataset, self.set_filter(name))
            if sampler.kept is not None and len(sampler.kept) > self.val_size:
                sampler.kept, sampler.length = sampler.kept[: self.val_size], self.val_size
            if len(sampler) == 0:
                raise ValueError(
                    f"data.split={'region' if self.region else 'random'}: no {name} chip in "
                    f"{self.kwargs['paths']} ({self.region}); the rasters do not reach "
                    f"{'the held-out' if name == 'val_heldout' else 'the seen'} tiles: change "
                    "data.heldout_zoom / heldout_fraction / heldout_seed"
                )
            setattr(self, f"{name}_sampler", sampler)

    def set_dataloader(self, name: str) -> DataLoader:
        return self._dataloader_factory(name)  # TorchGeo's: `<name>_dataset` with `<name>_sampler`

    def on_after_batch_transfer(self, batch: dict[str, Any], dataloader_idx: int) -> dict[str, Any]:
        return batch  # no batch augmentation: the dataset normalised each band already
