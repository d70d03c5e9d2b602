"""`data=geotiff`: a folder of GeoTIFFs (one's own Sentinel-2 chips, or the demo rasters) through TorchGeo.

All TorchGeo-facing code lives in this package, so a TorchGeo upgrade is this package's work: it is
written against TorchGeo 0.8.1, whose samples are ``{'image', 'crs', 'bounds': (slice x, slice y,
slice t)}`` and whose samplers are `RandomGeoSampler` / `GridGeoSampler` (0.9+ changed both). The
one other package that touches TorchGeo builds on this one: `clay_exp.data.scenes` (``data=scenes``:
two small `RasterDataset` subclasses, and samplers over several scenes in their own CRSs, through
the hooks `random_footprints` / `grid_footprints` / `filtered` of `GeoTiffDataModule`).

One module per concern, each importing only those above it in this list:

* `files`: files and dates (`find_geotiffs`, `check_geotiff`, which file holds each band, the
  nodata the files declare, `acquisition_time`); the query type `GeoSlice`.
* `statistics`: per-band mean and standard deviation, computed (nodata left out) or checked.
* `chips`: `ChipMaker`, what the project adds to a TorchGeo sample; `RasterChips`.
* `dataset`: the dataset factory, `GeoTiffFolder` and `make_raster_dataset`.
* `samplers`: `LocationFilteredSampler`; `chip_cache`: the on-disk chip cache (no TorchGeo).
* `datamodule`: `GeoTiffDataModule`; `demo`: the demo rasters (``scripts/make_demo_geotiffs.py``).

What they make:

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
  ``[sin w, cos w, sin h, cos h]`` of the ISO week and hour (`acquisition_time`,
  `clay_exp.data.time`); where no file is dated, no ``time`` key (the model then fills zeros).
* **Nodata**: a pixel value is nodata when it is NaN/inf, equals a file's declared nodata, or equals
  ``data.nodata``. After normalisation it is filled with 0 (the band mean), so it adds nothing to
  the batch statistics and cannot make the loss NaN. A chip with more than ``max_nodata_fraction``
  of nodata values is skipped when chips are cached, and counted (with a warning) when read live.
  Band statistics computed from the files ignore nodata; a band with no valid pixel in a file or
  non-finite statistics raise a ValueError naming the file and the band.
* **Chip cache** (``data.cache=true``): the training and validation chips are read once and kept as
  memory-mapped ``.npy`` arrays (`clay_exp.data.geotiff.chip_cache`), keyed by the files and every
  setting that shapes a chip; see `GeoTiffDataModule`.

Batches are the project's dict: ``image`` (B, C, H, W) float32, ``lat``/``lon`` (B,) float64 degrees,
optionally ``time`` (B, 4) float32 (TorchGeo's ``crs``/``bounds`` lists are dropped on the way to the
device, as in TorchGeo).

The classes a config names are exported here, as TorchGeo exports its datasets from
``torchgeo.datasets``: ``_target_: clay_exp.data.geotiff.GeoTiffDataModule``.
"""

from clay_exp.data.geotiff.chips import ChipMaker, RasterChips
from clay_exp.data.geotiff.datamodule import GeoTiffDataModule
from clay_exp.data.geotiff.dataset import GeoTiffFolder, make_raster_dataset
from clay_exp.data.geotiff.files import GeoSlice, acquisition_time
from clay_exp.data.geotiff.samplers import LocationFilteredSampler

__all__ = [
    "ChipMaker",
    "GeoSlice",
    "GeoTiffDataModule",
    "GeoTiffFolder",
    "LocationFilteredSampler",
    "RasterChips",
    "acquisition_time",
    "make_raster_dataset",
]
