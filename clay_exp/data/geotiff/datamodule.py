"""`GeoTiffDataModule` (``data=geotiff``): a TorchGeo `GeoDataModule` over a folder of GeoTIFFs or any
TorchGeo `RasterDataset`: random chips to train, grid chips to validate, optionally read once into
the chip cache (`clay_exp.data.geotiff.chip_cache`).

Where chips are is three hooks (`random_footprints`, `grid_footprints`, `filtered`), which the
scenes' datamodule (`clay_exp.data.scenes`) overrides to sample several rasters in their own CRSs.
"""

from __future__ import annotations

import logging
import time as timer
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Sampler, SequentialSampler
from torchgeo.datamodules import GeoDataModule
from torchgeo.datasets import RasterDataset, stack_samples
from torchgeo.samplers import GridGeoSampler, RandomGeoSampler

from clay_exp.data.base import SplitDataModule
from clay_exp.data.datamodule import EpochShuffleSampler, passthrough_collate
from clay_exp.data.geotiff.chip_cache import CachedChips, ChipCache, file_fingerprints
from clay_exp.data.geotiff.chips import RasterChips, make_chip_maker
from clay_exp.data.geotiff.dataset import GEOTIFF_FOLDER, GeoTiffFolder, make_raster_dataset
from clay_exp.data.geotiff.files import GeoSlice, band_sources, check_chip_size
from clay_exp.data.geotiff.samplers import LocationFilteredSampler
from clay_exp.data.splits import TUNE_SET

log = logging.getLogger(__name__)

#: The names ``data.dataset._target_`` may give the generic dataset: the package's, the module's.
GEOTIFF_FOLDER_NAMES = (GEOTIFF_FOLDER, f"{GeoTiffFolder.__module__}.{GeoTiffFolder.__qualname__}")
#: A chip set may draw at most this many random footprints per chip it keeps (nodata, region split).
MAX_DRAWS_PER_CHIP = 50


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
        generic = spec is None or spec.get("_target_") in (None, GeoTiffFolder, *GEOTIFF_FOLDER_NAMES)
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
            self.dataset_spec: dict[str, Any] = {"_target_": GEOTIFF_FOLDER, **attributes}
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


def _plain(node: Mapping[str, Any]) -> dict[str, Any]:
    """A config node (DictConfig or dict) as plain Python containers."""
    from omegaconf import DictConfig, OmegaConf

    return OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else dict(node)  # type: ignore[return-value]
