"""Web-mercator (XYZ) tile math for whole batches, matching `mercantile.tile` exactly.

mercantile is the reference (tests compare against it on many points), but it works one point at
a time in Python; a training step needs the tile of every chip at several zooms, so the same
formula is written here with float64 tensor ops. Two deliberate differences, both documented:

* longitude is wrapped to [-180, 180) first, so +180 and -180 (the same meridian) share a tile
  (mercantile clamps instead: 190 is not -170 there);
* latitude is clamped to the web-mercator limit (±85.0511°) first, which is what mercantile does
  silently for |lat| in (85.0511, 90) and the only sane answer at exactly ±90 (where it raises).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

#: Latitude limit of the web-mercator projection (the square world of zoom 0), in degrees.
MERCATOR_MAX_LAT: float = math.degrees(2.0 * math.atan(math.exp(math.pi)) - math.pi / 2.0)
#: mercantile's tie-break: a point within EPSILON of a tile's right/bottom edge goes to the next tile.
MERCANTILE_EPSILON: float = 1e-14
#: Deepest zoom supported: 2**zoom must fit comfortably in int64 arithmetic downstream.
MAX_ZOOM: int = 30


def wrap_longitude(lon: Tensor) -> Tensor:
    """Wrap longitudes (degrees) into [-180, 180)."""
    return torch.remainder(lon + 180.0, 360.0) - 180.0


def clamp_latitude(lat: Tensor) -> Tensor:
    """Clamp latitudes (degrees) to the web-mercator limit ±85.0511°."""
    return lat.clamp(-MERCATOR_MAX_LAT, MERCATOR_MAX_LAT)


def mercator_unit(lon: Tensor, lat: Tensor) -> tuple[Tensor, Tensor]:
    """Fractional web-mercator position in [0, 1]² (x east, y south), float64, as mercantile._xy.

    NaN or infinite coordinates raise ValueError: they have no tile, and the integer cast below
    would silently give them one.
    """
    finite = torch.isfinite(lon) & torch.isfinite(lat)
    if not bool(finite.all()):
        i = int(torch.nonzero(~finite).flatten()[0])
        raise ValueError(
            f"non-finite coordinates have no web-mercator tile: point {i} has lat={float(lat[i])!r}, "
            f"lon={float(lon[i])!r} ({int((~finite).sum())} such point(s))"
        )
    lon = wrap_longitude(lon.to(torch.float64))
    lat = clamp_latitude(lat.to(torch.float64))
    x = lon / 360.0 + 0.5
    sinlat = torch.sin(torch.deg2rad(lat))
    y = 0.5 - 0.25 * torch.log((1.0 + sinlat) / (1.0 - sinlat)) / math.pi
    return x, y


def _unit_to_index(u: Tensor, zoom: int) -> Tensor:
    n = 2**zoom
    idx = torch.floor((u + MERCANTILE_EPSILON) * n).to(torch.int64)
    # mercantile: u <= 0 -> 0, u >= 1 -> n - 1
    idx = torch.where(u <= 0, torch.zeros_like(idx), idx)
    idx = torch.where(u >= 1, torch.full_like(idx, n - 1), idx)
    return idx.clamp(0, n - 1)


def check_zoom(zoom: int) -> int:
    """Validate a zoom level, returning it as int."""
    if int(zoom) != zoom or not 0 <= zoom <= MAX_ZOOM:
        raise ValueError(f"zoom={zoom!r} is not an integer in [0, {MAX_ZOOM}]")
    return int(zoom)


def lonlat_to_tile(lon: Tensor, lat: Tensor, zoom: int) -> tuple[Tensor, Tensor]:
    """Tile column x and row y (int64) of each point at `zoom`: mercantile.tile(wrap(lon), lat, zoom)."""
    zoom = check_zoom(zoom)
    ux, uy = mercator_unit(lon, lat)
    return _unit_to_index(ux, zoom), _unit_to_index(uy, zoom)


def tile_chain(
    lon: Tensor, lat: Tensor, zooms: list[int] | tuple[int, ...]
) -> dict[int, tuple[Tensor, Tensor]]:
    """(x, y) of each point's tile at every zoom in `zooms`.

    Ancestors are taken by bit-shifting the deepest tile (x >> dz is mercantile.parent's rule), so the
    chain is consistent by construction: each level's tile contains the next level's.
    """
    zooms = sorted({check_zoom(z) for z in zooms})
    deepest = zooms[-1]
    x, y = lonlat_to_tile(lon, lat, deepest)
    return {z: (x >> (deepest - z), y >> (deepest - z)) for z in zooms}
