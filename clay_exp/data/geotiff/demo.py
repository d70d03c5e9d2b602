"""Small, georeferenced demo GeoTIFFs rendered from the `earth` world (for ``data=geotiff`` and tests).

Six square rasters in several UTM zones and in EPSG:4326, in both hemispheres (two of them fall in
tiles that the default ``data.split=region`` holds out), as uint16 reflectance x 10000 with nodata 0,
like Sentinel-2 L2A. No download: the pixels come from the earth world at each site.
``scripts/make_demo_geotiffs.py`` is the command line.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import rasterio
import torch
from pyproj import Transformer
from rasterio.transform import from_origin

from clay_exp.data.worlds.earth import EarthWorld, band_wavelengths

#: (file stem, latitude, longitude, CRS of the file)
DEMO_SITES = (
    ("bern_utm32n", 46.95, 7.45, "EPSG:32632"),
    ("cairo_wgs84", 30.05, 31.25, "EPSG:4326"),
    ("manaus_utm20s", -3.10, -60.02, "EPSG:32720"),
    ("cape_town_utm34s", -33.92, 18.60, "EPSG:32734"),
    ("iowa_utm15n", 41.60, -93.60, "EPSG:32615"),
    ("alice_springs_wgs84", -23.70, 133.88, "EPSG:4326"),
)
METRES_PER_DEGREE = 6371008.8 * math.pi / 180  # on the mean-radius sphere the world renders on


def site_transform(lat: float, lon: float, crs: str, size: int, pixel_m: float) -> rasterio.Affine:
    """Affine transform of a size x size raster of ~pixel_m pixels centred on (lat, lon) in `crs`."""
    if crs == "EPSG:4326":
        yres = pixel_m / METRES_PER_DEGREE
        xres = yres / math.cos(math.radians(lat))  # square pixels on the ground
        return from_origin(lon - xres * size / 2, lat + yres * size / 2, xres, yres)
    x, y = Transformer.from_crs("EPSG:4326", crs, always_xy=True).transform(lon, lat)
    return from_origin(x - pixel_m * size / 2, y + pixel_m * size / 2, pixel_m, pixel_m)


def write_demo_geotiffs(
    out: Path, size: int = 128, pixel_m: float = 100.0, bands: int = 4, world_seed: int = 0
) -> list[Path]:
    """Render every site with the earth world and write it as `<out>/<stem>.tif`; returns the paths."""
    out.mkdir(parents=True, exist_ok=True)
    world = EarthWorld(
        length=1,
        bands=bands,
        chip_size=size,
        world_seed=world_seed,
        chip_extent_deg=size * pixel_m / METRES_PER_DEGREE,
        map_grid=32,
    )
    lat = torch.tensor([s[1] for s in DEMO_SITES], dtype=torch.float64)
    lon = torch.tensor([s[2] for s in DEMO_SITES], dtype=torch.float64)
    images = world.render(lat, lon, torch.arange(len(DEMO_SITES)))
    dn = (images * 10000).round().clamp(1, 65535).to(torch.int32).numpy().astype(np.uint16)
    wavelengths = band_wavelengths(bands, None)
    paths = []
    for (stem, site_lat, site_lon, crs), data in zip(DEMO_SITES, dn, strict=True):
        path = out / f"{stem}.tif"
        profile = {
            "driver": "GTiff",
            "width": size,
            "height": size,
            "count": bands,
            "dtype": "uint16",
            "crs": crs,
            "transform": site_transform(site_lat, site_lon, crs, size, pixel_m),
            "nodata": 0,
        }
        with rasterio.open(path, "w", **profile) as dst:
            dst.write(data)
            for i, w in enumerate(wavelengths, start=1):
                dst.set_band_description(i, f"reflectance x 10000 at {w:.3f} um")
        paths.append(path)
    return paths
