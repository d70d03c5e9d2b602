"""Coverage: how many training chips each web-mercator tile holds at each zoom.

A tile's learned vector (a hierarchical or lookup encoding's table row) learns only from the training
chips inside that tile, so chips per tile at each level say which levels a study can learn at all,
and the share of validation chips whose tile holds a training chip ("seen") says which levels can
help validation. Counts use the project's tile math (`clay_exp.tiles`, equal to mercantile).

For chips uniform by area on the sphere (the generated worlds' ``locations=sphere``), tile ``t`` has
probability ``p_t`` = its share of the sphere (rows north of ±85.0511° take the polar caps, as the
tile math clamps them), so with ``n`` chips its count is Binomial(n, p_t): `expected_uniform_coverage`
gives the expected shares without sampling.

`clustered_locations` prototypes a *sites* sampling (chips clustered in a few tiles) for studies
that need coarse tiles with hundreds of chips and fine tiles with a handful.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch
from scipy import stats
from torch import Tensor

from clay_exp.hashing import hash_uniform
from clay_exp.tiles import check_zoom, lonlat_to_tile

THRESHOLDS = (1, 10, 100)


def tile_keys(lat: Tensor, lon: Tensor, zoom: int) -> Tensor:
    """One int64 key per point: its tile at `zoom` (x * 2**zoom + y)."""
    x, y = lonlat_to_tile(lon, lat, zoom)
    return x * (2**zoom) + y


def tile_counts(lat: Tensor, lon: Tensor, zoom: int) -> tuple[Tensor, Tensor]:
    """(keys, counts) of the occupied tiles at `zoom` (`tile_keys`), sorted by key."""
    return torch.unique(tile_keys(lat, lon, zoom), return_counts=True)


@dataclass
class LevelCoverage:
    """Coverage of one zoom. Shares of tiles are of *all* 4**zoom tiles (a land-only world cannot
    reach most of them: read ``occupied`` and the quartiles then)."""

    zoom: int
    tiles: int  # 4**zoom
    occupied: int  # tiles with >= 1 training chip
    mean_per_tile: float  # training chips / 4**zoom
    share_ge: dict[int, float]  # threshold -> share of all tiles with >= threshold chips
    quartiles_occupied: tuple[float, float, float]  # chips per occupied tile: q25, median, q75
    chip_median: float  # median over training chips of their own tile's count (how shared a row is)
    val_seen: float | None  # share of validation chips whose tile holds >= 1 training chip

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def coverage(
    train_lat: Tensor,
    train_lon: Tensor,
    zooms: Sequence[int],
    val_lat: Tensor | None = None,
    val_lon: Tensor | None = None,
) -> list[LevelCoverage]:
    """Chips per tile at each of `zooms` for a training set, and how much of a validation set is seen."""
    if len(train_lat) == 0:
        raise ValueError("coverage needs at least one training chip")
    out = []
    for zoom in (check_zoom(z) for z in zooms):
        keys, counts = tile_counts(train_lat, train_lon, zoom)
        tiles = 4**zoom
        c = counts.double()
        q = torch.quantile(c, torch.tensor([0.25, 0.5, 0.75], dtype=torch.float64)).tolist()
        own = counts[torch.searchsorted(keys, tile_keys(train_lat, train_lon, zoom))].double()
        seen = None
        if val_lat is not None and val_lon is not None:
            vk = tile_keys(val_lat, val_lon, zoom)
            pos = torch.searchsorted(keys, vk).clamp_max(len(keys) - 1)
            seen = (keys[pos] == vk).double().mean().item()
        out.append(
            LevelCoverage(
                zoom=zoom,
                tiles=tiles,
                occupied=len(keys),
                mean_per_tile=len(train_lat) / tiles,
                share_ge={t: (counts >= t).sum().item() / tiles for t in THRESHOLDS},
                quartiles_occupied=(q[0], q[1], q[2]),
                chip_median=own.median().item(),
                val_seen=seen,
            )
        )
    return out


def row_area_shares(zoom: int) -> Tensor:
    """Share of the sphere of *one* tile in each row y of `zoom` (2**zoom rows, float64).

    Row y spans latitudes between the mercator edges; the first and last rows also take the polar
    caps beyond ±85.0511°, because the tile math clamps those latitudes into them.
    """
    n = 2 ** check_zoom(zoom)
    edges = torch.arange(n + 1, dtype=torch.float64) / n  # mercator y, 0 = north
    lat = torch.rad2deg(torch.atan(torch.sinh(math.pi * (1 - 2 * edges))))
    lat[0], lat[-1] = 90.0, -90.0
    sin = torch.sin(torch.deg2rad(lat))
    return (sin[:-1] - sin[1:]) / 2 / n


@dataclass
class UniformCoverage:
    """Expected coverage of `n` chips uniform on the sphere at one zoom (Binomial per tile)."""

    zoom: int
    n: int
    mean_per_tile: float
    share_ge: dict[int, float]  # expected share of all tiles with >= threshold chips
    val_seen: float  # probability that a fresh uniform chip's tile holds >= 1 of the n chips

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def expected_uniform_coverage(n: int, zooms: Sequence[int]) -> list[UniformCoverage]:
    """Closed-form coverage of `n` training chips uniform by area on the sphere."""
    if n < 1:
        raise ValueError(f"n={n!r} must be >= 1")
    out = []
    for zoom in zooms:
        p = row_area_shares(zoom).numpy()  # one tile per row; every tile of a row is alike
        share = {t: float(stats.binom.sf(t - 1, n, p).mean()) for t in THRESHOLDS}
        cols = 2**zoom
        seen = float((cols * p * -torch.expm1(n * torch.log1p(-torch.from_numpy(p))).numpy()).sum())
        out.append(UniformCoverage(zoom=zoom, n=n, mean_per_tile=n / 4**zoom, share_ge=share, val_seen=seen))
    return out


def clustered_locations(
    n: int, sites: int, site_zoom: int, seed: int = 0, offset: int = 0
) -> tuple[Tensor, Tensor]:
    """A *sites* sampling (prototype): `sites` centres uniform by area on the sphere, chip i in site
    ``i % sites``, uniform in web-mercator coordinates inside that site's tile at `site_zoom`.

    Coarse tiles then hold about ``n * (sites in the tile) / sites`` chips and each site tile
    ``n / sites``: e.g. 4,096 chips at 256 z6 sites give ~256 chips per z2 tile and 16 per z6 tile.
    `offset` shifts the chip ids (a validation set at the same sites: another offset).
    """
    if sites < 1 or n < 1:
        raise ValueError(f"n={n!r} and sites={sites!r} must be >= 1")
    zoom = check_zoom(site_zoom)
    s = torch.arange(sites)
    u = hash_uniform(seed, 101, s, dtype=torch.float64)
    v = hash_uniform(seed, 102, s, dtype=torch.float64)
    site_lat = torch.rad2deg(torch.asin((2.0 * u - 1.0).clamp(-0.99, 0.99)))
    site_lon = 360.0 * v - 180.0
    tx, ty = lonlat_to_tile(site_lon, site_lat, zoom)
    ids = torch.arange(n, dtype=torch.int64) + offset
    site = ids % sites
    fx = hash_uniform(seed, 103, ids, dtype=torch.float64)
    fy = hash_uniform(seed, 104, ids, dtype=torch.float64)
    # Inside the tile, away from its edges (a point exactly on an edge belongs to the next tile).
    mx = (tx[site] + 1e-6 + (1 - 2e-6) * fx) / 2**zoom
    my = (ty[site] + 1e-6 + (1 - 2e-6) * fy) / 2**zoom
    lon = 360.0 * mx - 180.0
    lat = torch.rad2deg(torch.atan(torch.sinh(math.pi * (1 - 2 * my))))
    return lat, lon


def level_alignment(world_levels: Sequence[int], encoding_levels: Sequence[int]) -> list[dict[str, Any]]:
    """For each world level: the encoding levels equal to it and the coarsest encoding level that
    can represent it (zoom >= the world's: each encoding tile inside one world tile), with how many
    encoding tiles then share one world tile's factors (4**dz: the rows that must each learn them)."""
    out = []
    for z in world_levels:
        finer = [e for e in encoding_levels if e >= z]
        coarsest = min(finer) if finer else None
        out.append(
            {
                "world_level": z,
                "exact": z in encoding_levels,
                "coarsest_encoding_level": coarsest,
                "rows_per_world_tile": 4 ** (coarsest - z) if coarsest is not None else None,
            }
        )
    return out


def set_locations(dm: Any, name: str) -> tuple[Tensor, Tensor]:
    """Latitude and longitude of the chips of set `name` (``train`` or a val set) of a datamodule:
    a generated world's (no pixels generated) or a raster datamodule's (`chip_locations`)."""
    if hasattr(dm, "chip_locations"):  # rasters (data=geotiff, scenes): the chips' footprint centres
        return dm.chip_locations(name)
    if hasattr(dm, "make_dataset"):
        ds = dm.make_dataset(name)
        return ds.locations(torch.arange(len(ds), dtype=torch.int64) + ds.offset)
    raise ValueError(f"coverage needs chip locations; {type(dm).__name__} gives none")
