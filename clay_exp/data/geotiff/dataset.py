"""The dataset factory: `GeoTiffFolder` (any folder of GeoTIFFs, bands by index) and, by
``data.dataset._target_``, any other TorchGeo `RasterDataset` subclass (`make_raster_dataset`),
whose samples `RasterChips` turns into the project's chips.

The class a ``_target_`` names is imported here (`import_class`), not through Hydra: the data reads
no config machinery (the datamodule receives ``data.dataset`` as a plain mapping).
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from rasterio.crs import CRS
from torch import Tensor
from torchgeo.datasets import RasterDataset

from clay_exp.data.geotiff.chips import ChipStatistics, make_chip_maker
from clay_exp.data.geotiff.files import COMMON_CRS, GeoSlice, check_chip_size, check_geotiff, find_geotiffs

log = logging.getLogger(__name__)
# rasterio.merge logs at INFO for every source a chip only touches: noise in every run's log.
logging.getLogger("rasterio.merge").setLevel(logging.WARNING)

#: RasterDataset class attributes that ``data.dataset`` may override (e.g. a filename pattern).
CLASS_ATTRIBUTES = ("filename_glob", "filename_regex", "date_format", "separate_files", "all_bands")
#: The name configs give `GeoTiffFolder` (``data.dataset._target_``): where the package exports it.
#: The chip cache's key records it, so caches built before the package was split stay valid.
GEOTIFF_FOLDER = "clay_exp.data.geotiff.GeoTiffFolder"


class GeoTiffFolder(ChipStatistics, RasterDataset):
    """A folder of GeoTIFFs as a TorchGeo `RasterDataset` whose samples carry lat/lon (package docstring).

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


def import_class(target: str) -> Any:
    """The object `target` (``package.module.Name``) names; ValueError naming the target otherwise."""
    module, _, name = str(target).rpartition(".")
    if not module:
        raise ValueError(f"data.dataset._target_={target!r} is not a dotted path (package.module.Class)")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as error:
        raise ValueError(f"data.dataset._target_={target!r} cannot be imported: {error}") from error


def raster_class(target: str | type) -> type[RasterDataset]:
    """The class `target` names (``module.Class``), checked to be a TorchGeo `RasterDataset`."""
    cls = import_class(target) if isinstance(target, str) else target
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
