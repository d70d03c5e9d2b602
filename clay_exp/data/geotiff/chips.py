"""The chip maker: what the project adds to a TorchGeo sample (nodata fill, per-band normalisation,
lat/lon of the footprint's centre, time), and `RasterChips`, any TorchGeo `RasterDataset` with it."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from pyproj import Transformer
from rasterio.crs import CRS
from torch import Tensor
from torch.utils.data import Dataset
from torchgeo.datasets import RasterDataset

from clay_exp.data.geotiff.files import GeoSlice, acquisition_time, band_sources, declared_nodata, has_times
from clay_exp.data.geotiff.statistics import check_stats, compute_band_stats

log = logging.getLogger(__name__)


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
